//! The operator's admin key with `--database-url` (DESIGN §7): one key per database,
//! kept in a file, so that restarts, and other demos on the same database given the same
//! file, use one admin key instead of each minting another that lives for a year.
//!
//! Under the file's lock: the key in the file is reused while the database holds it
//! active (same digest, neither revoked nor expired, still granting
//! [`ADMIN_KEY_SCOPES`](crate::app::ADMIN_KEY_SCOPES)); otherwise a new one is minted
//! and replaces the file. A demo starting meanwhile waits for the lock, then finds the
//! new key and reuses it, so two demos starting together mint at most one key.
//!
//! One file belongs to one database: demos on different databases given the same file
//! would replace each other's key at every start.

use std::error::Error;
use std::path::Path;

use tower_apikey::record::KeyState;
use tower_apikey::{Clock, KeyManager, KeyRecord, KeyStoreAdmin, PlaintextKey, Scopes};

use crate::app;
use crate::key_file::KeyFile;

/// The admin key kept in `path`, reused or newly minted through `manager`.
pub async fn from_file<S: KeyStoreAdmin>(
    path: &Path,
    manager: &KeyManager<S>,
    clock: &dyn Clock,
) -> Result<PlaintextKey, Box<dyn Error>> {
    let file = KeyFile::lock(path).await?;
    let shown = file.path().display();
    if let Some(key) = file.read()? {
        let record = manager.store().get(key.id()).await?;
        match check_usable(record.as_ref(), &key, clock) {
            Ok(()) => {
                tracing::info!(
                    key_id = %key.id(),
                    file = %shown,
                    "reusing the admin key in the file"
                );
                return Ok(key);
            }
            Err(reason) => tracing::info!(
                key_id = %key.id(),
                file = %shown,
                reason,
                "minting a new admin key"
            ),
        }
    }
    let key = app::mint_admin_key(manager).await?;
    if let Err(error) = file.replace(&key) {
        // A key nobody can read must not stay valid for a year.
        if let Err(revoke) = manager.revoke(key.id()).await {
            tracing::error!(
                key_id = %key.id(),
                error = %revoke,
                "cannot revoke the admin key that could not be saved"
            );
        }
        return Err(error.into());
    }
    tracing::info!(
        key_id = %key.id(),
        file = %shown,
        "wrote a new admin key to the file"
    );
    Ok(key)
}

/// Why `key`, whose record in the database is `record`, cannot serve as the admin key
/// now.
fn check_usable(
    record: Option<&KeyRecord>,
    key: &PlaintextKey,
    clock: &dyn Clock,
) -> Result<(), &'static str> {
    let Some(record) = record else {
        return Err("the database has no such key");
    };
    if *record.digest() != key.digest() {
        return Err("the database's key with this id is another key");
    }
    match record.state_at(clock.now()) {
        KeyState::Active => {}
        KeyState::Revoked => return Err("the key is revoked"),
        KeyState::Expired => return Err("the key has expired"),
        KeyState::Ended => return Err("the key was ended by rotation"),
        _ => return Err("the key is not active"),
    }
    let scopes = Scopes::new(app::ADMIN_KEY_SCOPES).expect("the admin scopes are valid");
    if !record.scopes().grants_all(&scopes) {
        return Err("the key lacks the admin scopes");
    }
    Ok(())
}

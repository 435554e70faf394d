//! A file that holds one API key between runs, readable by its owner only.
//!
//! Several processes may share the file: [`KeyFile::lock`] takes an exclusive lock on a
//! sibling `<file>.lock` (never on the key file itself, which
//! [`KeyFile::replace`] swaps for a new inode), so that one process at a time reads,
//! decides and replaces. The lock file stays behind: removing it would let two
//! processes lock two different files. The operating system releases the lock when its
//! holder exits, however it exits.
//!
//! Reading refuses a file that others may read (as `ssh` does with private keys) and a
//! file that does not hold an API key, rather than overwriting what may be something
//! else given by mistake. Replacing writes a temporary file with mode 0600, flushes it
//! to disk and renames it over the old one, so that a crash leaves the old key or the
//! new one, never half of either.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::{Instant, sleep};
use tower_apikey::PlaintextKey;
use zeroize::Zeroizing;

/// How long [`KeyFile::lock`] waits for another process to finish with the file.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// How often it tries again meanwhile.
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// More than any key (at most 75 characters) and a line break; a longer file is
/// something else.
const MAX_FILE_BYTES: u64 = 1024;

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file (or its lock, or its temporary copy) could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What failed.
        #[source]
        error: io::Error,
    },
    /// Another process held the lock for [`LOCK_WAIT`].
    #[error(
        "{}: another process has held this lock for {}s; if no other demo is starting \
         with this key file, find the process holding it (`fuser {}`)",
        lock.display(),
        LOCK_WAIT.as_secs(),
        lock.display()
    )]
    Locked {
        /// The lock file.
        lock: PathBuf,
    },
    /// The file does not hold one API key.
    #[error(
        "{} does not hold an API key, so it is left as it is: give another path, or \
         delete the file to have a new key written there",
        path.display()
    )]
    NotAKey {
        /// The file.
        path: PathBuf,
    },
    /// Others than the owner may read or write the file.
    #[error(
        "{} has mode {mode:03o}, so others than its owner may read the key: if they may \
         have, revoke the key and delete the file (a new key is written at the next \
         start); otherwise run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// The key file, locked by this process until dropped.
#[derive(Debug)]
pub struct KeyFile {
    path: PathBuf,
    /// Holds the lock; closing it releases the lock.
    _lock: File,
}

impl KeyFile {
    /// Locks `path` for this process, waiting while another process holds it.
    // The demo builds with tower-apikey-postgres, whose sqlx needs Rust 1.94: std's file
    // locks (1.89) serve, although the crate's rust-version is 1.88.
    #[clippy::msrv = "1.94"]
    pub async fn lock(path: &Path) -> Result<Self, KeyFileError> {
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        let lock_path = PathBuf::from(name);
        let lock = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|error| io_error(&lock_path, error))?;
        let give_up = Instant::now() + LOCK_WAIT;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < give_up => {
                    sleep(LOCK_RETRY).await;
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(KeyFileError::Locked { lock: lock_path });
                }
                Err(TryLockError::Error(error)) => return Err(io_error(&lock_path, error)),
            }
        }
        Ok(Self {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key in the file, or `None` if there is no file.
    pub fn read(&self) -> Result<Option<PlaintextKey>, KeyFileError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error(&self.path, error)),
        };
        let metadata = file.metadata().map_err(|e| io_error(&self.path, e))?;
        if !metadata.is_file() {
            return Err(KeyFileError::NotAKey {
                path: self.path.clone(),
            });
        }
        #[cfg(unix)]
        {
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::TooOpen {
                    path: self.path.clone(),
                    mode,
                });
            }
        }
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(&self.path, e))?;
        let not_a_key = || KeyFileError::NotAKey {
            path: self.path.clone(),
        };
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(not_a_key());
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| not_a_key())?;
        PlaintextKey::parse(text.trim())
            .map(Some)
            .map_err(|_| not_a_key())
    }

    /// Replaces the file's content with `key` (and a line break), atomically.
    pub fn replace(&self, key: &PlaintextKey) -> Result<(), KeyFileError> {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".tmp");
        let temporary = PathBuf::from(name);
        // Left over if a previous holder of the lock crashed mid-write. Removed rather
        // than reused, so that the new file gets mode 0600 whatever the old one had.
        match fs::remove_file(&temporary) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                return Err(io_error(&temporary, error));
            }
            _ => {}
        }
        let written = write_new(&temporary, key)
            .and_then(|()| fs::rename(&temporary, &self.path).map_err(|e| io_error(&self.path, e)));
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written?;
        sync_directory(&self.path);
        Ok(())
    }
}

/// Creates `path` (which must not exist), readable by its owner only, holding `key`,
/// and flushes it to disk.
fn write_new(path: &Path, key: &PlaintextKey) -> Result<(), KeyFileError> {
    let mut file = private_options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    file.write_all(key.expose_secret().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))
}

/// Flushes the rename to disk, so that the new key survives a power cut. A failure
/// only weakens that, so it is logged rather than returned.
fn sync_directory(path: &Path) {
    #[cfg(unix)]
    {
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        if let Err(error) = File::open(directory).and_then(|d| d.sync_all()) {
            tracing::warn!(%error, directory = %directory.display(), "cannot flush the key file's directory");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Options that create files readable and writable by their owner only.
fn private_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    options.mode(0o600);
    options
}

fn io_error(path: &Path, error: io::Error) -> KeyFileError {
    KeyFileError::Io {
        path: path.to_owned(),
        error,
    }
}

//! Keys that are well-formed but wrong.
//!
//! A test of a refusal needs inputs that pass the format and checksum checks and fail
//! later: a wrong secret must reach the store and its constant-time comparison, not stop
//! at the checksum.
//!
//! ```
//! use tower_apikey::PlaintextKey;
//! use tower_apikey::key::{KeyFormatError, KeyPrefix};
//! use tower_apikey::testing::{with_bad_checksum, with_wrong_secret};
//!
//! let key = PlaintextKey::generate(&KeyPrefix::default());
//! let forged = with_wrong_secret(key.expose_secret());
//! assert_eq!(PlaintextKey::parse(forged.clone())?.id(), key.id()); // well-formed
//! assert_ne!(forged, key.expose_secret());
//! assert!(PlaintextKey::parse(with_bad_checksum(key.expose_secret())).is_err());
//! # Ok::<(), KeyFormatError>(())
//! ```

use crate::key::{self, CHECKSUM_LEN};

/// `key` with its last secret character changed and its checksum recomputed: the same
/// prefix and id, well-formed, and wrong.
///
/// # Panics
///
/// If `key` is not a well-formed key.
pub fn with_wrong_secret(key: &str) -> String {
    assert!(
        crate::PlaintextKey::parse(key).is_ok(),
        "with_wrong_secret takes a well-formed key"
    );
    let mut body = key[..key.len() - CHECKSUM_LEN].to_owned();
    let last = body.pop().expect("a key has a secret");
    body.push(if last == 'a' { 'b' } else { 'a' });
    let checksum = key::checksum(body.as_bytes());
    body.push_str(std::str::from_utf8(&checksum).expect("base62 is ASCII"));
    body
}

/// `key` with the last digit of its checksum changed (to the next base62 digit), so that
/// the format check refuses it and every such key differs from its right checksum in the
/// same place.
///
/// # Panics
///
/// If `key` does not end in a base62 digit.
pub fn with_bad_checksum(key: &str) -> String {
    let (body, last) = key.split_at(key.len() - 1);
    let digit = key::ALPHABET
        .iter()
        .position(|&c| c == last.as_bytes()[0])
        .expect("a key ends in a base62 digit");
    format!("{body}{}", char::from(key::ALPHABET[(digit + 1) % 62]))
}

//! The ApiKey-v2 key format: generation, parsing, checksum and digest.
//!
//! A key reads `<prefix>_<id>_<secret><checksum>`:
//!
//! | part | form |
//! |---|---|
//! | prefix | 1–8 chars of `[a-z0-9]`, default `mkc` |
//! | id | 16 base62 chars, random, public: the store's lookup key |
//! | secret | 43 base62 chars from the operating system's CSPRNG (≈256 bits) |
//! | checksum | CRC-32 of everything before it, 6 base62 digits, most significant first |
//!
//! The base62 alphabet is `0-9A-Za-z`. Because it has no `_`, a key parses by position,
//! and a secret scanner can check a candidate offline with the regex
//! `[a-z0-9]{1,8}_[0-9A-Za-z]{16}_[0-9A-Za-z]{49}` plus the checksum.
//!
//! Only the key's SHA-256 [`KeyDigest`] is stored. The plaintext exists once, as the
//! [`PlaintextKey`] returned when a key is created or rotated.
//!
//! ```
//! use tower_apikey::PlaintextKey;
//! use tower_apikey::key::KeyPrefix;
//!
//! let key = PlaintextKey::generate(&KeyPrefix::default());
//! // What a client would send, checked offline (format and checksum, no store):
//! let parsed = PlaintextKey::parse(key.expose_secret())?;
//! assert_eq!(parsed.id(), key.id());
//! // Debug and Display never show the secret.
//! assert!(!format!("{key:?} {key}").contains(key.expose_secret()));
//! # Ok::<(), tower_apikey::key::KeyFormatError>(())
//! ```

pub(crate) mod format;

// `KeyId` and `PlaintextKey` are named from the crate root; the crate's own code imports
// them, and the format's helpers, from here.
pub(crate) use format::*;
pub use format::{KeyDigest, KeyFormatError, KeyIdError, KeyPrefix, PrefixError};

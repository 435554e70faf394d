//! **Not a stable API.** The crate's private parsers, exposed for the cargo-fuzz targets
//! in `fuzz/` behind the non-default `fuzzing` feature.
//!
//! Nothing here is covered by semantic versioning: names, signatures and the module
//! itself may change or disappear in any release. Applications use
//! [`PlaintextKey::parse`](crate::PlaintextKey::parse) and the middleware instead.

use http::HeaderMap;

use crate::header::{self, HeaderError};
use crate::key::{self, KeyFormatError, KeyId, KeyPrefix};

/// The longest `Authorization` value the parser looks at.
pub const MAX_HEADER_LEN: usize = header::MAX_HEADER_LEN;

/// The token of the single `ApiKey-v2` `Authorization` field of `headers`, checked as
/// the middleware checks it: the field, then (when the key check fails) token68.
pub fn credentials(headers: &HeaderMap) -> Result<&[u8], HeaderError> {
    header::credentials(headers).and_then(|token| {
        if header::is_token68(token) {
            Ok(token)
        } else {
            Err(HeaderError::Malformed)
        }
    })
}

/// Splits one `Authorization` value into `ApiKey-v2` and its token68.
pub fn token(value: &[u8]) -> Result<&[u8], HeaderError> {
    header::token(value)
}

/// Checks a key text's format and checksum by position, as the middleware does; with
/// `expected_prefix`, the prefix must be exactly that one.
pub fn parse_key(
    text: &[u8],
    expected_prefix: Option<&KeyPrefix>,
) -> Result<KeyId, KeyFormatError> {
    key::parse(text, expected_prefix).map(|parsed| parsed.id)
}

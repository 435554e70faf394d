//! Reading the credentials out of the `Authorization` header.
//!
//! The header must be exactly one field of the form `ApiKey-v2 <token68>`: the scheme
//! name matched case-insensitively (RFC 9110 §11.1), one or more spaces, then a token68
//! (RFC 9110 §11.2). The length cap is checked before anything else, so an oversized
//! header costs one comparison.

use http::HeaderMap;
use http::header::AUTHORIZATION;

/// The authentication scheme this crate implements.
pub(crate) const SCHEME: &str = "ApiKey-v2";

/// The longest `Authorization` value looked at. The longest key (an 8-char prefix)
/// plus the scheme and a generous run of spaces fits well within it.
pub(crate) const MAX_HEADER_LEN: usize = 256;

/// Why a request carries no usable ApiKey-v2 credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// No `Authorization` header.
    #[error("the request has no Authorization header")]
    Missing,
    /// More than one `Authorization` field: ambiguous, so refused.
    #[error("the request has more than one Authorization header")]
    Multiple,
    /// The value is longer than any ApiKey-v2 credential can be.
    #[error("the Authorization header is longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
    /// Another scheme, such as `Bearer`.
    #[error("the Authorization header does not use the ApiKey-v2 scheme")]
    OtherScheme,
    /// The scheme is right but what follows is not `<spaces><token68>`.
    #[error("the Authorization header must be `ApiKey-v2 <key>`")]
    Malformed,
}

/// What follows `ApiKey-v2 ` in the single `Authorization` field, without allocating.
///
/// The token's characters are *not* checked here: the key check that follows is
/// stricter than token68, so a valid key needs no second pass, and only a token that
/// fails it is asked [`is_token68`] to tell a malformed header from a malformed key.
pub(crate) fn credentials(headers: &HeaderMap) -> Result<&[u8], HeaderError> {
    let mut fields = headers.get_all(AUTHORIZATION).iter();
    let value = fields.next().ok_or(HeaderError::Missing)?;
    if fields.next().is_some() {
        return Err(HeaderError::Multiple);
    }
    split(value.as_bytes())
}

/// Splits `ApiKey-v2 <token68>` and checks both halves: the whole header grammar, as the
/// middleware applies it in two steps.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn token(value: &[u8]) -> Result<&[u8], HeaderError> {
    split(value).and_then(|token| {
        if is_token68(token) {
            Ok(token)
        } else {
            Err(HeaderError::Malformed)
        }
    })
}

/// Checks the length, the scheme and the spaces; returns the (unchecked) token.
fn split(value: &[u8]) -> Result<&[u8], HeaderError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(HeaderError::TooLong);
    }
    let scheme_len = SCHEME.len();
    let Some((scheme, rest)) = value.split_at_checked(scheme_len) else {
        return Err(scheme_error(value));
    };
    if !scheme.eq_ignore_ascii_case(SCHEME.as_bytes()) {
        return Err(HeaderError::OtherScheme);
    }
    let token = match rest.iter().position(|&b| b != b' ') {
        // The scheme name must end at a space: `ApiKey-v2x` is another scheme.
        Some(0) => return Err(HeaderError::OtherScheme),
        Some(start) => &rest[start..],
        None => return Err(HeaderError::Malformed),
    };
    Ok(token)
}

/// A value too short to hold the scheme: the bare scheme name is a malformed attempt,
/// anything else is another scheme.
fn scheme_error(value: &[u8]) -> HeaderError {
    let head = value.split(|&b| b == b' ').next().unwrap_or_default();
    if head.eq_ignore_ascii_case(SCHEME.as_bytes()) {
        HeaderError::Malformed
    } else {
        HeaderError::OtherScheme
    }
}

/// `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
pub(crate) fn is_token68(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    body_len > 0
        && token[..body_len]
            .iter()
            .all(|&b| TOKEN68_CHARS[usize::from(b)])
}

/// The characters of a token68 before its `=` padding (RFC 9110 §11.2): one table
/// lookup per byte, on the path of every malformed header.
static TOKEN68_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn one(value: &'static str) -> Result<Vec<u8>, HeaderError> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
        // As the middleware reads it: the field, then the token's characters.
        credentials(&headers)
            .and_then(|t| {
                if is_token68(t) {
                    Ok(t)
                } else {
                    Err(HeaderError::Malformed)
                }
            })
            .map(<[u8]>::to_vec)
    }

    #[test]
    fn scheme_is_matched_case_insensitively() {
        for value in [
            "ApiKey-v2 abc",
            "apikey-v2 abc",
            "APIKEY-V2 abc",
            "aPiKeY-V2 abc",
        ] {
            assert_eq!(one(value).unwrap(), b"abc", "{value}");
        }
    }

    #[test]
    fn one_or_more_spaces_separate_scheme_and_key() {
        assert_eq!(one("ApiKey-v2    abc").unwrap(), b"abc");
        assert_eq!(one("ApiKey-v2abc"), Err(HeaderError::OtherScheme));
        assert_eq!(one("ApiKey-v2\tabc"), Err(HeaderError::OtherScheme));
    }

    #[test]
    fn missing_header_is_missing() {
        assert_eq!(credentials(&HeaderMap::new()), Err(HeaderError::Missing));
    }

    #[test]
    fn several_authorization_headers_are_refused() {
        let mut headers = HeaderMap::new();
        headers.append(AUTHORIZATION, HeaderValue::from_static("ApiKey-v2 a"));
        headers.append(AUTHORIZATION, HeaderValue::from_static("ApiKey-v2 a"));
        assert_eq!(credentials(&headers), Err(HeaderError::Multiple));
    }

    #[test]
    fn other_schemes_are_not_ours() {
        assert_eq!(one("Bearer abc"), Err(HeaderError::OtherScheme));
        assert_eq!(one("Basic"), Err(HeaderError::OtherScheme));
        assert_eq!(one("ApiKey abc"), Err(HeaderError::OtherScheme));
        assert_eq!(one(""), Err(HeaderError::OtherScheme));
    }

    #[test]
    fn scheme_without_a_key_is_malformed() {
        assert_eq!(one("ApiKey-v2"), Err(HeaderError::Malformed));
        assert_eq!(one("ApiKey-v2   "), Err(HeaderError::Malformed));
    }

    #[test]
    fn only_token68_is_accepted() {
        assert_eq!(one("ApiKey-v2 a=b"), Err(HeaderError::Malformed));
        assert_eq!(one("ApiKey-v2 a b"), Err(HeaderError::Malformed));
        assert_eq!(one("ApiKey-v2 ==="), Err(HeaderError::Malformed));
        assert_eq!(one("ApiKey-v2 a\"b"), Err(HeaderError::Malformed));
        assert_eq!(one("ApiKey-v2 abc== ").unwrap_err(), HeaderError::Malformed);
        assert_eq!(one("ApiKey-v2 a-._~+/b==").unwrap(), b"a-._~+/b==");
    }

    #[test]
    fn opaque_bytes_are_malformed_not_a_panic() {
        let value = HeaderValue::from_bytes(b"ApiKey-v2 \xff\xfe").unwrap();
        assert_eq!(token(value.as_bytes()), Err(HeaderError::Malformed));
        assert_eq!(token(b"\xffpiKey-v2 abc"), Err(HeaderError::OtherScheme));
        assert_eq!(token(b"ApiKey-v\xff"), Err(HeaderError::OtherScheme));
    }

    #[test]
    fn oversized_headers_are_refused_first() {
        let long = format!("ApiKey-v2 {}", "a".repeat(MAX_HEADER_LEN));
        assert_eq!(token(long.as_bytes()), Err(HeaderError::TooLong));
        let long_other = "x".repeat(MAX_HEADER_LEN + 1);
        assert_eq!(token(long_other.as_bytes()), Err(HeaderError::TooLong));
    }
}

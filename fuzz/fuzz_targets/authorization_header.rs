//! The `Authorization` header parser against a plain reading of its grammar.
//!
//! Invariants: it never panics; it accepts exactly the values the grammar accepts
//! (`ApiKey-v2`, any case, then one or more spaces, then a token68, at most
//! `MAX_HEADER_LEN` bytes) and returns the token68 unchanged; a header map holding the
//! value answers the same, and one holding it twice is refused.

#![no_main]

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tower_apikey::middleware::HeaderError;
use tower_apikey::fuzzing::{MAX_HEADER_LEN, credentials, token};

/// The grammar, written as plainly as possible and independently of the parser.
fn expected(value: &[u8]) -> Option<&[u8]> {
    if value.len() > MAX_HEADER_LEN || value.len() < 9 {
        return None;
    }
    let (scheme, rest) = value.split_at(9);
    if !scheme.eq_ignore_ascii_case(b"ApiKey-v2") {
        return None;
    }
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    if spaces == 0 {
        return None;
    }
    let token = &rest[spaces..];
    let padding = token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..token.len() - padding];
    let token68 = |b: &u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(b);
    (!body.is_empty() && body.iter().all(token68)).then_some(token)
}

fuzz_target!(|value: &[u8]| {
    let parsed = token(value);
    match (parsed, expected(value)) {
        (Ok(got), Some(want)) => assert_eq!(got, want),
        (Err(_), None) => {}
        (got, want) => panic!("parser says {got:?}, grammar says {want:?}"),
    }
    if value.len() > MAX_HEADER_LEN {
        assert_eq!(parsed, Err(HeaderError::TooLong));
    }
    // Through a header map, as the middleware reads it.
    if let Ok(header) = HeaderValue::from_bytes(value) {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, header.clone());
        assert_eq!(credentials(&headers), parsed);
        headers.append(AUTHORIZATION, header);
        assert_eq!(credentials(&headers), Err(HeaderError::Multiple));
    }
});

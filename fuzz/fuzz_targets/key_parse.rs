//! The key parser against a plain reading of the DESIGN §2 format.
//!
//! Invariants: it never panics; it accepts exactly the texts of the form
//! `<1-8 of [a-z0-9]>_<16 base62>_<43 base62><6 base62 CRC-32>` whose checksum matches,
//! and returns the id at its position; the middleware's prefix check and the public
//! `PlaintextKey::parse` agree with it; errors carry nothing of the text but its length;
//! `Debug` and `Display` of a parsed key never show its secret. Every input is parsed
//! twice: as given (the checksum almost always fails) and with its checksum repaired, so
//! that the accepting path is fuzzed as hard as the refusing one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_apikey::fuzzing::parse_key;
use tower_apikey::{KeyId, PlaintextKey};
use tower_apikey::key::{KeyFormatError, KeyPrefix};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The CRC-32 of `signed` as six base62 digits, most significant first.
fn checksum(signed: &[u8]) -> [u8; 6] {
    let mut value = crc32fast::hash(signed);
    let mut out = [b'0'; 6];
    for digit in out.iter_mut().rev() {
        *digit = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// The format, written as plainly as possible and independently of the parser.
fn expected(text: &[u8]) -> Option<KeyId> {
    let prefix_len = text.len().checked_sub(67)?;
    if !(1..=8).contains(&prefix_len) {
        return None;
    }
    let (prefix, rest) = text.split_at(prefix_len);
    let base62 = |part: &[u8]| part.iter().all(|b| ALPHABET.contains(b));
    let prefix_ok = prefix
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let shape_ok =
        rest[0] == b'_' && base62(&rest[1..17]) && rest[17] == b'_' && base62(&rest[18..]);
    let (signed, given) = text.split_at(text.len() - 6);
    if !(prefix_ok && shape_ok && checksum(signed) == given) {
        return None;
    }
    Some(KeyId::new(std::str::from_utf8(&rest[1..17]).ok()?).expect("16 base62 chars"))
}

fn check(text: &[u8]) {
    let parsed = parse_key(text, None);
    match (&parsed, expected(text)) {
        (Ok(got), Some(want)) => assert_eq!(*got, want),
        (Err(error), None) => match *error {
            // The only thing an error may carry is the length.
            KeyFormatError::Length(n) => assert_eq!(n, text.len()),
            KeyFormatError::Prefix
            | KeyFormatError::Separator
            | KeyFormatError::Alphabet
            | KeyFormatError::Checksum => {}
            other => panic!("a new error kind: {other:?}"),
        },
        (got, want) => panic!("parser says {got:?}, format says {want:?}"),
    }

    // The middleware's check: the same answer, and only for its own prefix.
    let mkc = parse_key(text, Some(&KeyPrefix::default()));
    match &parsed {
        Ok(id) if text.starts_with(b"mkc_") => assert_eq!(mkc, Ok(*id)),
        _ => assert!(mkc.is_err()),
    }

    // The public parser agrees, and a parsed key never shows its secret.
    if let Ok(text) = std::str::from_utf8(text) {
        match (PlaintextKey::parse(text), &parsed) {
            (Ok(key), Ok(id)) => {
                assert_eq!(key.id(), id);
                assert_eq!(key.expose_secret(), text);
                let secret = &text[text.len() - 49..];
                for shown in [format!("{key:?}"), format!("{key}"), format!("{key:#?}")] {
                    assert!(!shown.contains(secret), "{shown}");
                }
            }
            (Err(public), Err(private)) => assert_eq!(public, *private),
            (public, private) => panic!("public {public:?}, private {private:?}"),
        }
    }
}

fuzz_target!(|text: &[u8]| {
    check(text);
    if let Some(body_len) = text.len().checked_sub(6) {
        let mut repaired = text[..body_len].to_vec();
        repaired.extend_from_slice(&checksum(&text[..body_len]));
        check(&repaired);
    }
});

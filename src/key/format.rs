//! The key format, its parts and their checks: what [`key`](super) documents.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The base62 alphabet, in digit order.
pub(crate) const ALPHABET: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Length of the public id.
pub(crate) const ID_LEN: usize = 16;
/// Length of the random secret.
const SECRET_LEN: usize = 43;
/// Length of the base62 CRC-32 checksum.
pub(crate) const CHECKSUM_LEN: usize = 6;
/// Longest allowed prefix.
const PREFIX_MAX: usize = 8;
/// Everything but the prefix: `_` + id + `_` + secret + checksum.
const BODY_LEN: usize = 1 + ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;
/// The longest key text any configuration can produce.
pub(crate) const KEY_MAX_LEN: usize = PREFIX_MAX + BODY_LEN;

/// Why a text is not a well-formed ApiKey-v2 key.
///
/// Messages describe the defect, never the text itself: a malformed key may still be
/// somebody's real key with a typo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFormatError {
    /// The text is not `prefix + 67` characters long for any valid prefix.
    #[error("an ApiKey-v2 key is its prefix plus 67 characters; this one has {0} characters")]
    Length(usize),
    /// The prefix is not 1–8 characters of `[a-z0-9]`, or not the prefix this service uses.
    #[error("the key's prefix is not the one this service issues (1-8 characters of [a-z0-9])")]
    Prefix,
    /// A `_` is missing where the format puts one.
    #[error("the key's parts must be separated as <prefix>_<16-char id>_<49 chars>")]
    Separator,
    /// A character outside `0-9A-Za-z` in the id, secret or checksum.
    #[error("the key's id, secret and checksum must be base62 characters (0-9, A-Z, a-z)")]
    Alphabet,
    /// The checksum does not match the rest of the key: a typo or a truncated copy.
    #[error("the key's checksum does not match; check that it was copied whole")]
    Checksum,
}

/// Why a text is not a valid key prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a key prefix is 1 to 8 characters of [a-z0-9]")]
pub struct PrefixError;

/// The recognisable start of every key a deployment issues, such as `mkc`.
///
/// Secret scanners and people use it to recognise a key and its issuer. It is 1–8
/// characters of `[a-z0-9]`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyPrefix {
    bytes: [u8; PREFIX_MAX],
    len: u8,
}

impl KeyPrefix {
    /// Checks and wraps a prefix.
    ///
    /// ```
    /// use tower_apikey::key::KeyPrefix;
    /// assert!(KeyPrefix::new("acme").is_ok());
    /// assert!(KeyPrefix::new("Acme").is_err());
    /// ```
    pub fn new(prefix: &str) -> Result<Self, PrefixError> {
        let raw = prefix.as_bytes();
        if raw.is_empty()
            || raw.len() > PREFIX_MAX
            || !raw
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(PrefixError);
        }
        let mut bytes = [0; PREFIX_MAX];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(Self {
            bytes,
            len: raw.len() as u8,
        })
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        ascii_str(self.as_bytes())
    }

    /// The prefix's ASCII bytes, without the UTF-8 check of [`as_str`](Self::as_str).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Default for KeyPrefix {
    /// `mkc`.
    fn default() -> Self {
        Self {
            bytes: *b"mkc\0\0\0\0\0",
            len: 3,
        }
    }
}

impl FromStr for KeyPrefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Debug for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a text is not a key id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a key id is exactly 16 base62 characters (0-9, A-Z, a-z)")]
pub struct KeyIdError;

/// The public part of a key: 16 base62 characters, the store's lookup key.
///
/// An id is safe to log, show and put in URLs; it proves nothing on its own.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; ID_LEN]);

impl KeyId {
    /// Checks and wraps an id, for example one read back from a database.
    pub fn new(id: &str) -> Result<Self, KeyIdError> {
        let raw: [u8; ID_LEN] = id.as_bytes().try_into().map_err(|_| KeyIdError)?;
        if raw.iter().all(|&b| is_base62(b)) {
            Ok(Self(raw))
        } else {
            Err(KeyIdError)
        }
    }

    /// A fresh uniformly random id from the operating system's CSPRNG.
    pub(crate) fn generate() -> Self {
        let mut raw = [0; ID_LEN];
        fill_base62(&mut raw);
        Self(raw)
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        ascii_str(&self.0)
    }

    /// The id's ASCII bytes, without the UTF-8 check of [`as_str`](Self::as_str).
    pub(crate) fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = KeyIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.as_str())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SHA-256 digest of a whole key text: what a store keeps instead of the key.
///
/// Equality is constant-time ([`subtle`]), and `Debug` never shows the bytes. The bytes
/// are reachable only through [`KeyDigest::as_bytes`], for stores that persist them.
#[derive(Clone, Copy)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The digest of a key text (all of it, checksum included).
    pub fn of(key: &str) -> Self {
        Self::of_bytes(key.as_bytes())
    }

    pub(crate) fn of_bytes(key: &[u8]) -> Self {
        Self(Sha256::digest(key).into())
    }

    /// Wraps digest bytes read back from storage.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes, for a store to persist. Never log them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A digest that matches no key, compared against when an id is unknown so that an
    /// unknown id costs the same work as a wrong secret.
    pub(crate) const DUMMY: Self = Self([0x5a; 32]);

    /// Constant-time comparison.
    pub(crate) fn matches(&self, other: &Self) -> bool {
        // As four machine words: subtle compares slices element by element behind an
        // optimisation barrier each, so words cost a quarter of what bytes would.
        self.words().ct_eq(&other.words()).into()
    }

    fn words(&self) -> [u64; 4] {
        std::array::from_fn(|i| {
            let mut word = [0; 8];
            word.copy_from_slice(&self.0[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(word)
        })
    }
}

impl PartialEq for KeyDigest {
    /// Constant time: the comparison never stops at the first differing byte.
    fn eq(&self, other: &Self) -> bool {
        self.matches(other)
    }
}

impl Eq for KeyDigest {}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(<redacted>)")
    }
}

/// A full plaintext key: shown once, when it is created.
///
/// `Debug` and `Display` show only the public id; the text is zeroed when the value is
/// dropped; there is no `Serialize`. Read the text with [`PlaintextKey::expose_secret`]
/// at the one place it is handed to its owner.
pub struct PlaintextKey {
    text: Zeroizing<String>,
    id: KeyId,
}

impl PlaintextKey {
    /// A new random key with the given prefix.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails. On the platforms Rust
    /// supports this happens only on a broken system, where no key could be generated
    /// safely anyway.
    pub fn generate(prefix: &KeyPrefix) -> Self {
        let id = KeyId::generate();
        let mut text = Zeroizing::new(String::with_capacity(KEY_MAX_LEN));
        text.push_str(prefix.as_str());
        text.push('_');
        text.push_str(id.as_str());
        text.push('_');
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        fill_base62(&mut secret[..]);
        text.push_str(ascii_str(&secret[..]));
        let checksum = checksum(text.as_bytes());
        text.push_str(ascii_str(&checksum));
        Self { text, id }
    }

    /// Checks a key text (format and checksum; no store is asked) and keeps it.
    ///
    /// Any prefix of the right form is accepted; the middleware additionally requires
    /// its configured prefix.
    pub fn parse(text: impl Into<String>) -> Result<Self, KeyFormatError> {
        let text = Zeroizing::new(text.into());
        let id = parse(text.as_bytes(), None)?.id;
        Ok(Self { text, id })
    }

    /// The key's public id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The whole key text. Hand it to its owner once; never log it.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// The digest to store.
    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.text)
    }
}

impl fmt::Debug for PlaintextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaintextKey")
            .field("id", &self.id)
            .field("secret", &format_args!("<redacted>"))
            .finish()
    }
}

impl fmt::Display for PlaintextKey {
    /// The id with the secret elided, safe for logs: `<id>_<redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_<redacted>", self.id)
    }
}

/// A key text that passed the format and checksum checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParsedKey {
    pub(crate) id: KeyId,
}

/// Checks a key's format and checksum by position, without allocating.
///
/// With `expected` set, the prefix must be exactly that one.
pub(crate) fn parse(
    text: &[u8],
    expected: Option<&KeyPrefix>,
) -> Result<ParsedKey, KeyFormatError> {
    let len = text.len();
    if !(1 + BODY_LEN..=KEY_MAX_LEN).contains(&len) {
        return Err(KeyFormatError::Length(len));
    }
    let prefix_len = len - BODY_LEN;
    let (prefix, body) = text.split_at(prefix_len);
    match expected {
        Some(expected) if prefix != expected.as_bytes() => {
            return Err(KeyFormatError::Prefix);
        }
        Some(_) => {}
        None => {
            if !prefix
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                return Err(KeyFormatError::Prefix);
            }
        }
    }
    // body = "_" id "_" secret checksum
    if body[0] != b'_' || body[1 + ID_LEN] != b'_' {
        return Err(KeyFormatError::Separator);
    }
    let id_bytes = &body[1..=ID_LEN];
    let tail = &body[ID_LEN + 2..];
    if !(all_bytes(id_bytes, is_base62) & all_bytes(tail, is_base62)) {
        return Err(KeyFormatError::Alphabet);
    }
    let (signed, given) = text.split_at(len - CHECKSUM_LEN);
    if !checksum_matches(signed, given) {
        return Err(KeyFormatError::Checksum);
    }
    let mut id = [0; ID_LEN];
    id.copy_from_slice(id_bytes);
    Ok(ParsedKey { id: KeyId(id) })
}

/// CRC-32 (zlib polynomial) of `signed`, as 6 base62 digits, most significant first.
pub(crate) fn checksum(signed: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut value = crc32fast::hash(signed);
    let mut out = [b'0'; CHECKSUM_LEN];
    // 62^6 > 2^32, so six digits always suffice.
    for digit in out.iter_mut().rev() {
        *digit = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// Whether `given` (6 base62 characters, already checked to be in the alphabet) is the
/// checksum of `signed`. It reads the digits as a number and compares it with the
/// CRC-32, which costs less than writing the CRC-32's digits (six divisions) and comparing
/// text; a value of 2^32 or more (possible in six digits) matches nothing.
fn checksum_matches(signed: &[u8], given: &[u8]) -> bool {
    let value = given.iter().fold(0u64, |value, &b| {
        value * 62 + u64::from(BASE62_VALUE[usize::from(b)])
    });
    value == u64::from(crc32fast::hash(signed))
}

/// Each base62 character's digit value (0 for any other byte; callers check the alphabet
/// first).
static BASE62_VALUE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut digit = 0;
    while digit < ALPHABET.len() {
        table[ALPHABET[digit] as usize] = digit as u8;
        digit += 1;
    }
    table
};

/// Fills `out` with characters drawn uniformly from the base62 alphabet, using bytes
/// from the operating system's CSPRNG.
///
/// Rejection sampling keeps the draw unbiased: 248 = 4 × 62, so a byte below 248 maps
/// onto the alphabet by `% 62` with every character equally likely, and the rest
/// (8 in 256) are thrown away. Bytes come 64 at a time, one system call for a whole
/// key in almost every case.
///
/// # Panics
///
/// If the operating system's random number generator fails.
fn fill_base62(out: &mut [u8]) {
    let mut pool = Zeroizing::new([0u8; 64]);
    let mut next = pool.len();
    for slot in out {
        *slot = loop {
            if next == pool.len() {
                getrandom::fill(&mut pool[..]).expect("the operating system's CSPRNG failed");
                next = 0;
            }
            let byte = pool[next];
            next += 1;
            if byte < 248 {
                break ALPHABET[usize::from(byte % 62)];
            }
        };
    }
}

fn is_base62(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Whether `test` holds for every byte. It looks at every byte, without stopping at the
/// first failure, so that the compiler can check many bytes per instruction: these
/// checks run on every request, and an early exit would save nothing on valid input.
#[inline]
pub(crate) fn all_bytes(bytes: &[u8], test: impl Fn(u8) -> bool) -> bool {
    bytes.iter().fold(true, |all, &b| all & test(b))
}

/// Views bytes this module has checked to be ASCII as a `str`.
fn ascii_str(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        // Every caller passes bytes checked (or generated) to be ASCII.
        Err(_) => unreachable!("key parts are ASCII by construction"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: [(&str, u32); 3] = [
        (
            "mkc_0000000000000000_00000000000000000000000000000000000000000003HMsUU",
            0xb31d683a,
        ),
        (
            "mkc_7Fq2LxW9aZ3kPm4R_q8w7e6r5t4y3u2i1o0pAsDfGhJkLzXcVbNm123456780vSonp",
            0x329c8989,
        ),
        (
            "acme_zzzzzzzzzzzzzzzz_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ02Ui0q",
            0x02329e14,
        ),
    ];

    #[test]
    fn design_test_vectors_parse_and_their_crc_matches() {
        for (key, crc) in VECTORS {
            assert_eq!(crc32fast::hash(&key.as_bytes()[..key.len() - 6]), crc);
            let parsed = PlaintextKey::parse(key).expect(key);
            assert_eq!(parsed.id().as_str(), &key[key.len() - 66..key.len() - 50]);
        }
    }

    #[test]
    fn reading_the_checksum_digits_agrees_with_writing_them() {
        let prefix = KeyPrefix::default();
        let keys = (0..200).map(|_| PlaintextKey::generate(&prefix).expose_secret().to_owned());
        for key in VECTORS.iter().map(|(k, _)| k.to_string()).chain(keys) {
            let (signed, given) = key.as_bytes().split_at(key.len() - CHECKSUM_LEN);
            assert_eq!(checksum(signed), given);
            assert!(checksum_matches(signed, given), "{key}");
            // Any other digit in any position is another number, so no match.
            for at in 0..CHECKSUM_LEN {
                for &other in ALPHABET.iter().filter(|&&c| c != given[at]) {
                    let mut changed = given.to_vec();
                    changed[at] = other;
                    assert!(!checksum_matches(signed, &changed));
                }
            }
        }
        // Six base62 digits reach past 2^32; such a value matches no CRC-32.
        assert!(!checksum_matches(b"", b"zzzzzz"));
    }

    #[test]
    fn design_test_vector_digest() {
        let digest = KeyDigest::of(VECTORS[0].0);
        let hex: String = digest
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "6cddf45d15e6b5bf1ff53366270eb263ce339525d9adb1a25637f60b1aa51aea"
        );
    }

    #[test]
    fn generated_keys_have_the_pinned_shape() {
        let prefix = KeyPrefix::new("acme").unwrap();
        let key = PlaintextKey::generate(&prefix);
        let text = key.expose_secret();
        assert_eq!(text.len(), 4 + 67);
        assert!(text.starts_with("acme_"));
        assert_eq!(&text[5..21], key.id().as_str());
        assert_eq!(text.as_bytes()[21], b'_');
        assert!(text[22..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(parse(text.as_bytes(), Some(&prefix)).unwrap().id, *key.id());
        assert_eq!(
            PlaintextKey::generate(&KeyPrefix::default())
                .expose_secret()
                .len(),
            70
        );
    }

    #[test]
    fn generated_keys_differ() {
        let a = PlaintextKey::generate(&KeyPrefix::default());
        let b = PlaintextKey::generate(&KeyPrefix::default());
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn every_base62_character_appears_in_generated_secrets() {
        // 200 keys × 43 chars: each of the 62 characters is expected ~139 times, so a
        // missing character means a broken alphabet, not bad luck.
        let mut seen = [false; 128];
        for _ in 0..200 {
            let key = PlaintextKey::generate(&KeyPrefix::default());
            for b in key.expose_secret()[21..64].bytes() {
                seen[usize::from(b)] = true;
            }
        }
        for &c in ALPHABET {
            assert!(seen[usize::from(c)], "{} never drawn", c as char);
        }
    }

    #[test]
    fn malformed_keys_are_refused_with_the_specific_error() {
        let good = VECTORS[1].0;
        assert_eq!(parse(b"", None).unwrap_err(), KeyFormatError::Length(0));
        // Dropping the first character still parses by position (prefix "kc"), so only
        // the checksum can catch it.
        assert_eq!(
            parse(&good.as_bytes()[1..], None).unwrap_err(),
            KeyFormatError::Checksum
        );
        assert_eq!(
            parse(&[b'a'; 80], None).unwrap_err(),
            KeyFormatError::Length(80)
        );
        let mut bad_sep = good.as_bytes().to_vec();
        bad_sep[3] = b'-';
        assert_eq!(
            parse(&bad_sep, None).unwrap_err(),
            KeyFormatError::Separator
        );
        let mut bad_char = good.as_bytes().to_vec();
        bad_char[30] = b'+';
        assert_eq!(
            parse(&bad_char, None).unwrap_err(),
            KeyFormatError::Alphabet
        );
        let mut typo = good.as_bytes().to_vec();
        typo[30] = if typo[30] == b'a' { b'b' } else { b'a' };
        assert_eq!(parse(&typo, None).unwrap_err(), KeyFormatError::Checksum);
        let other = KeyPrefix::new("acme").unwrap();
        assert_eq!(
            parse(good.as_bytes(), Some(&other)).unwrap_err(),
            KeyFormatError::Prefix
        );
        let upper = good.replacen("mkc", "MKC", 1);
        assert_eq!(
            parse(upper.as_bytes(), None).unwrap_err(),
            KeyFormatError::Prefix
        );
    }

    #[test]
    fn format_errors_never_echo_the_key() {
        let good = VECTORS[1].0;
        let mut typo = good.to_string();
        typo.replace_range(30..31, "Q");
        let err = PlaintextKey::parse(typo.clone()).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(&typo[4..]));
    }

    #[test]
    fn plaintext_key_debug_and_display_redact_the_secret() {
        let key = PlaintextKey::generate(&KeyPrefix::default());
        let secret = &key.expose_secret()[21..];
        for shown in [format!("{key:?}"), format!("{key}"), format!("{key:#?}")] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains(key.id().as_str()));
        }
        let digest = key.digest();
        let shown = format!("{digest:?}");
        assert_eq!(shown, "KeyDigest(<redacted>)");
    }

    #[test]
    fn digests_compare_by_value() {
        let a = KeyDigest::of(VECTORS[0].0);
        assert_eq!(a, KeyDigest::from_bytes(*a.as_bytes()));
        assert_ne!(a, KeyDigest::of(VECTORS[1].0));
        assert_ne!(a, KeyDigest::DUMMY);
    }

    #[test]
    fn prefixes_and_ids_validate() {
        assert!(KeyPrefix::new("").is_err());
        assert!(KeyPrefix::new("abcdefghi").is_err());
        assert!(KeyPrefix::new("ab_c").is_err());
        assert_eq!(KeyPrefix::new("abcdefgh").unwrap().as_str(), "abcdefgh");
        assert_eq!(KeyPrefix::default().as_str(), "mkc");
        assert!(KeyId::new("7Fq2LxW9aZ3kPm4R").is_ok());
        assert!(KeyId::new("7Fq2LxW9aZ3kPm4").is_err());
        assert!(KeyId::new("7Fq2LxW9aZ3kPm4_").is_err());
    }
}

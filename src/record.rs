//! What a store keeps about a key: everything but the key itself.
//!
//! [`KeyRecord`] (at the crate root) is the record; this module holds
//! what its fields are made of: the key's [`KeyName`], who acted ([`ActorName`]), its
//! per-key limits and restrictions ([`RateLimit`], [`Quota`], [`AllowedIps`], DESIGN §12),
//! the addresses it was lately used from ([`RecentIps`]), the [`KeyState`] it is in at a
//! given time, and the limits of each. [`ApiKeyIdentity`], what
//! the middleware hands a request, is made from a record.
//!
//! # Which checks read a clock
//!
//! [`KeyRecord::state_at`](crate::KeyRecord::state_at) decides whether a key may be
//! used. A revocation is a state: any `revoked_at` refuses the key, whatever that time
//! says compared with the clock that judges it, so neither clock skew between instances
//! nor a clock step can delay or undo a revocation. Expiry (`expires_at`) and a
//! rotation's scheduled end (`ends_at`) are times, and they are the only checks that read
//! a clock: an instance whose clock runs `s` behind the one that wrote the time accepts
//! the key `s` longer, and one that runs ahead refuses it `s` sooner. With
//! NTP-synchronised clocks `s` is milliseconds; choose rotation overlaps of minutes or
//! more, and they tolerate any skew below that.

mod actor_name;
mod hidden_text;
pub(crate) mod identity;
pub(crate) mod key_record;
mod limits;
mod name_text;
mod recent_ips;
mod record_data;
mod tenant_id;

use std::fmt;
use std::sync::Arc;

// `ApiKeyIdentity` and `KeyRecord` are named from the crate root; the crate's own code
// also imports them from here.
pub(crate) use identity::ApiKeyIdentity;
pub(crate) use key_record::KeyRecord;
pub(crate) use limits::Limits;
pub use limits::{
    AllowedIps, LimitError, MAX_ALLOWED_IPS, MAX_RATE_WINDOW_SECS, Quota, QuotaPeriod, RateLimit,
};
pub use recent_ips::{MAX_RECENT_IPS, RecentIps};

pub use actor_name::{ActorName, ActorNameError, MAX_ACTOR_CHARS};
pub(crate) use hidden_text::first_hidden;
use name_text::{NameFault, check_name};
pub use tenant_id::{MAX_TENANT_CHARS, TenantId, TenantIdError};

/// The longest key name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// Why a text is not a valid key name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyNameError {
    /// Empty, or only white space.
    #[error("a key name cannot be empty")]
    Empty,
    /// Longer than [`MAX_NAME_CHARS`] characters.
    #[error("a key name is at most {MAX_NAME_CHARS} characters; this one has {0}")]
    TooLong(usize),
    /// Holds a control character (a newline, a tab, …), which would break logs and tables.
    #[error("a key name cannot contain control characters")]
    ControlCharacter,
    /// Starts or ends with white space.
    #[error("a key name cannot start or end with white space")]
    Untrimmed,
    /// Holds a character that is invisible or reorders the text around it: a
    /// bidirectional control, a zero-width character, a line or paragraph separator or
    /// another default-ignorable code point. Such a name can read as another one, in the
    /// panel's confirmations as in logs.
    #[error(
        "a key name cannot contain U+{:04X}, an invisible or text-reordering character",
        u32::from(*.0)
    )]
    HiddenCharacter(char),
}

/// A key's human-readable name, such as `billing-sync (prod)`.
///
/// 1 to 128 characters, no control characters, no leading or trailing white space, and
/// nothing that is invisible or reorders the text (bidirectional controls, zero-width
/// characters, line separators, other default-ignorable code points), so that a name
/// always reads as what it is.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyName(Arc<str>);

impl KeyName {
    /// The code points a name refuses besides control characters, as sorted inclusive
    /// ranges: invisible characters and those that move other text (see
    /// [`KeyNameError::HiddenCharacter`]). For a schema or a client that checks a name
    /// before sending it, such as an admin API's OpenAPI document.
    pub const HIDDEN_CHARACTERS: &'static [(char, char)] = hidden_text::HIDDEN;

    /// Checks and wraps a name.
    pub fn new(name: &str) -> Result<Self, KeyNameError> {
        check_name(name, MAX_NAME_CHARS).map_err(|fault| match fault {
            NameFault::Empty => KeyNameError::Empty,
            NameFault::TooLong(chars) => KeyNameError::TooLong(chars),
            NameFault::ControlCharacter => KeyNameError::ControlCharacter,
            NameFault::HiddenCharacter(c) => KeyNameError::HiddenCharacter(c),
            NameFault::Untrimmed => KeyNameError::Untrimmed,
        })?;
        Ok(Self(Arc::from(name)))
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a key stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyState {
    /// Accepted.
    Active,
    /// Refused: at or after `expires_at`.
    Expired,
    /// Refused: at or after `ends_at`, the end a rotation scheduled for the key it
    /// replaced (before `expires_at`).
    Ended,
    /// Refused: revoked. Any revocation, whatever time it records.
    Revoked,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert_eq!(KeyName::new("").unwrap_err(), KeyNameError::Empty);
        assert_eq!(KeyName::new("   ").unwrap_err(), KeyNameError::Empty);
        assert_eq!(KeyName::new(" a").unwrap_err(), KeyNameError::Untrimmed);
        assert_eq!(
            KeyName::new("a\nb").unwrap_err(),
            KeyNameError::ControlCharacter
        );
        assert_eq!(
            KeyName::new(&"é".repeat(MAX_NAME_CHARS + 1)).unwrap_err(),
            KeyNameError::TooLong(MAX_NAME_CHARS + 1)
        );
        assert_eq!(
            KeyName::new(&"é".repeat(MAX_NAME_CHARS))
                .unwrap()
                .as_str()
                .chars()
                .count(),
            MAX_NAME_CHARS
        );
        assert_eq!(
            KeyName::new("billing sync (prod)").unwrap().as_str(),
            "billing sync (prod)"
        );
    }

    #[test]
    fn names_refuse_invisible_and_reordering_characters() {
        // "billing<U+202E>txt.exe" would read as "billingexe.txt" in the panel's "Revoke …?".
        for (name, hidden) in [
            ("billing\u{202E}txt.exe", '\u{202E}'),
            ("a\u{2066}b\u{2069}", '\u{2066}'),
            ("prod\u{200B}", '\u{200B}'),
            ("line\u{2028}break", '\u{2028}'),
            ("para\u{2029}graph", '\u{2029}'),
            ("soft\u{00AD}hyphen", '\u{00AD}'),
            ("\u{FEFF}bom", '\u{FEFF}'),
        ] {
            assert_eq!(
                KeyName::new(name).unwrap_err(),
                KeyNameError::HiddenCharacter(hidden),
                "{name:?}"
            );
        }
        let error = KeyName::new("x\u{202E}").unwrap_err().to_string();
        assert!(error.contains("U+202E"), "{error}");
        assert!(KeyName::new("Überweisung — 日本").is_ok());
    }
}

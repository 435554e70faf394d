//! What a store keeps about a key: everything but the key itself.
//!
//! # Which checks read a clock
//!
//! [`KeyRecord::state_at`] decides whether a key may be used. A revocation is a state:
//! any `revoked_at` refuses the key, whatever that time says compared with the clock
//! that judges it, so neither clock skew between instances nor a clock step can delay or
//! undo a revocation. Expiry (`expires_at`) and a rotation's scheduled end (`ends_at`)
//! are times, and they are the only checks that read a clock: an instance whose clock
//! runs `s` behind the one that wrote the time accepts the key `s` longer, and one that
//! runs ahead refuses it `s` sooner. With NTP-synchronised clocks `s` is milliseconds;
//! choose rotation overlaps of minutes or more, and they tolerate any skew below that.

mod actor_name;
mod hidden_text;
mod identity;
mod limits;
mod recent_ips;

pub use identity::ApiKeyIdentity;
pub(crate) use limits::Limits;
pub use limits::{
    AllowedIps, LimitError, MAX_ALLOWED_IPS, MAX_RATE_WINDOW_SECS, Quota, QuotaPeriod, RateLimit,
};
pub use recent_ips::{MAX_RECENT_IPS, RecentIps};

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::key::{KeyDigest, KeyId};
use crate::scope::Scopes;

pub use actor_name::{ActorName, ActorNameError, MAX_ACTOR_CHARS};
pub(crate) use hidden_text::first_hidden;

/// The longest key name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// Why a text is not a valid key name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
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
    /// [`NameError::HiddenCharacter`]). For a schema or a client that checks a name
    /// before sending it, such as an admin API's OpenAPI document.
    pub const HIDDEN_CHARACTERS: &'static [(char, char)] = hidden_text::HIDDEN;

    /// Checks and wraps a name.
    pub fn new(name: &str) -> Result<Self, NameError> {
        if name.trim().is_empty() {
            return Err(NameError::Empty);
        }
        let chars = name.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(NameError::TooLong(chars));
        }
        if name.chars().any(char::is_control) {
            return Err(NameError::ControlCharacter);
        }
        if let Some(hidden) = first_hidden(name) {
            return Err(NameError::HiddenCharacter(hidden));
        }
        if name.trim() != name {
            return Err(NameError::Untrimmed);
        }
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

/// Everything a store keeps about one key: the digest and metadata, never the key.
///
/// Cloning is cheap: the identity part is shared. `Debug` redacts the digest.
///
/// A store for your own database builds records with [`KeyRecord::new`] and the
/// `with_*` methods:
///
/// ```
/// # use std::time::{Duration, SystemTime};
/// # use tower_apikey::*;
/// # fn row() -> (String, String, Vec<String>, [u8; 32]) {
/// #   ("7Fq2LxW9aZ3kPm4R".into(), "billing".into(), vec!["reports:read".into()], [0; 32]) }
/// let (id, name, scopes, digest) = row();
/// let created = SystemTime::now();
/// let record = KeyRecord::new(
///     KeyId::new(&id)?,
///     KeyName::new(&name)?,
///     Scopes::new(&scopes)?,
///     KeyDigest::from_bytes(digest),
///     created,
///     created + Duration::from_secs(86_400),
/// )
/// .with_last_used_at(None);
/// assert!(!format!("{record:?}").contains("0, 0, 0"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct KeyRecord(Arc<RecordData>);

/// A record's fields, shared by the record and the [`ApiKeyIdentity`] made from it, so
/// that a lookup copies one pointer and an accepted request allocates nothing for it.
#[derive(Clone)]
pub(crate) struct RecordData {
    pub(crate) id: KeyId,
    pub(crate) name: KeyName,
    pub(crate) scopes: Scopes,
    pub(crate) digest: KeyDigest,
    pub(crate) created_at: SystemTime,
    pub(crate) expires_at: SystemTime,
    pub(crate) revoked_at: Option<SystemTime>,
    pub(crate) ends_at: Option<SystemTime>,
    pub(crate) last_used_at: Option<SystemTime>,
    pub(crate) rotated_from: Option<KeyId>,
    pub(crate) created_by: Option<ActorName>,
    pub(crate) revoked_by: Option<ActorName>,
    pub(crate) limits: Limits,
    /// Set on the successor of an `until_first_use` rotation: its first use ends the
    /// key it replaced this long after.
    pub(crate) predecessor_grace: Option<Duration>,
    pub(crate) recent_ips: RecentIps,
}

impl KeyRecord {
    /// A record that is not revoked, has no scheduled end, was never used, is not a
    /// rotation and was created by the application itself (no actor).
    pub fn new(
        id: KeyId,
        name: KeyName,
        scopes: Scopes,
        digest: KeyDigest,
        created_at: SystemTime,
        expires_at: SystemTime,
    ) -> Self {
        Self(Arc::new(RecordData {
            id,
            name,
            scopes,
            digest,
            created_at,
            expires_at,
            revoked_at: None,
            ends_at: None,
            last_used_at: None,
            rotated_from: None,
            created_by: None,
            revoked_by: None,
            limits: Limits::default(),
            predecessor_grace: None,
            recent_ips: RecentIps::new(),
        }))
    }

    /// The fields, to change: copied first if another record or identity shares them.
    fn data_mut(&mut self) -> &mut RecordData {
        Arc::make_mut(&mut self.0)
    }

    /// Sets the key's name (a rename, [`KeyUpdate::name`](crate::KeyUpdate::name)).
    pub fn with_name(mut self, name: KeyName) -> Self {
        self.data_mut().name = name;
        self
    }

    /// Sets when the key was revoked; `Some` revokes it, whatever the time.
    pub fn with_revoked_at(mut self, at: Option<SystemTime>) -> Self {
        self.data_mut().revoked_at = at;
        self
    }

    /// Sets when the key was last used.
    pub fn with_last_used_at(mut self, at: Option<SystemTime>) -> Self {
        self.data_mut().last_used_at = at;
        self
    }

    /// Sets the key this one replaced.
    pub fn with_rotated_from(mut self, from: Option<KeyId>) -> Self {
        self.data_mut().rotated_from = from;
        self
    }

    /// Sets who created the key: `None` when the application itself did.
    pub fn with_created_by(mut self, by: Option<ActorName>) -> Self {
        self.data_mut().created_by = by;
        self
    }

    /// Sets who revoked the key: `None` when the application itself did, or when it is
    /// not revoked.
    pub fn with_revoked_by(mut self, by: Option<ActorName>) -> Self {
        self.data_mut().revoked_by = by;
        self
    }

    /// Sets when the key expires.
    pub fn with_expires_at(mut self, at: SystemTime) -> Self {
        self.data_mut().expires_at = at;
        self
    }

    /// Sets the end a rotation scheduled for the key, if any.
    pub fn with_ends_at(mut self, at: Option<SystemTime>) -> Self {
        self.data_mut().ends_at = at;
        self
    }

    /// Sets how long after this key's first use the key it replaced ends, for the
    /// successor of an `until_first_use` rotation ([`predecessor_grace`](Self::predecessor_grace)).
    pub fn with_predecessor_grace(mut self, grace: Option<Duration>) -> Self {
        self.data_mut().predecessor_grace = grace;
        self
    }

    /// Sets the key's rate limit (DESIGN §12); `None` for none.
    pub fn with_rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.data_mut().limits.rate_limit = limit;
        self
    }

    /// Sets the key's quota per UTC day or month; `None` for none.
    pub fn with_quota(mut self, quota: Option<Quota>) -> Self {
        self.data_mut().limits.quota = quota;
        self
    }

    /// Sets the addresses the key may be used from; `None` for any.
    pub fn with_allowed_ips(mut self, ips: Option<AllowedIps>) -> Self {
        self.data_mut().limits.allowed_ips = ips;
        self
    }

    /// The key's rate limit, if it has one.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.0.limits.rate_limit
    }

    /// The key's quota, if it has one.
    pub fn quota(&self) -> Option<Quota> {
        self.0.limits.quota
    }

    /// The addresses the key may be used from, if it is restricted.
    pub fn allowed_ips(&self) -> Option<&AllowedIps> {
        self.0.limits.allowed_ips.as_ref()
    }

    /// Sets the last client addresses the key was used from, newest first.
    pub fn with_recent_ips(mut self, ips: RecentIps) -> Self {
        self.data_mut().recent_ips = ips;
        self
    }

    /// The last [`MAX_RECENT_IPS`] distinct client addresses of the key's proven
    /// requests, newest first, as last-used tracking wrote them.
    pub fn recent_ips(&self) -> &RecentIps {
        &self.0.recent_ips
    }

    pub(crate) fn with_limits(mut self, limits: Limits) -> Self {
        self.data_mut().limits = limits;
        self
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// The key's public id.
    pub fn id(&self) -> &KeyId {
        &self.0.id
    }

    /// The key's name.
    pub fn name(&self) -> &KeyName {
        &self.0.name
    }

    /// What the key may do.
    pub fn scopes(&self) -> &Scopes {
        &self.0.scopes
    }

    /// The SHA-256 digest of the key text, for the store to persist. Never log it.
    pub fn digest(&self) -> &KeyDigest {
        &self.0.digest
    }

    /// When the key was created.
    pub fn created_at(&self) -> SystemTime {
        self.0.created_at
    }

    /// When the key expires: the lifetime it was created with. A rotation never changes
    /// it; see [`ends_at`](Self::ends_at).
    pub fn expires_at(&self) -> SystemTime {
        self.0.expires_at
    }

    /// When the key was revoked, if it was. It is a record of when: a key with any
    /// `revoked_at` is refused.
    pub fn revoked_at(&self) -> Option<SystemTime> {
        self.0.revoked_at
    }

    /// When the key ends because a rotation with an overlap replaced it, if one did.
    /// Always before [`expires_at`](Self::expires_at) when stores set it.
    pub fn ends_at(&self) -> Option<SystemTime> {
        self.0.ends_at
    }

    /// When the key stops working unless it is revoked first: the earlier of
    /// [`ends_at`](Self::ends_at) and [`expires_at`](Self::expires_at).
    pub fn stops_at(&self) -> SystemTime {
        self.0.stops_at()
    }

    /// For the successor of an `until_first_use` rotation (DESIGN §11): how long after
    /// this key's first proven use the key it replaced ([`rotated_from`](Self::rotated_from))
    /// ends. The store applies it when it records that first use: the old key's
    /// `ends_at` becomes the recorded use plus this grace, unless it stops sooner
    /// anyway. `None` for every other key. The field stays after the end is applied,
    /// as a record of how the rotation was made.
    pub fn predecessor_grace(&self) -> Option<Duration> {
        self.0.predecessor_grace
    }

    /// The latest recorded use, written periodically rather than on every request.
    pub fn last_used_at(&self) -> Option<SystemTime> {
        self.0.last_used_at
    }

    /// The key this one replaced, if it came from a rotation.
    pub fn rotated_from(&self) -> Option<&KeyId> {
        self.0.rotated_from.as_ref()
    }

    /// Who created the key: the acting key's id or a signed-in person's name, or `None`
    /// when the application itself did (through [`KeyManager`](crate::KeyManager)'s own
    /// methods rather than [`KeyManager::acting_as`](crate::KeyManager::acting_as)).
    pub fn created_by(&self) -> Option<&ActorName> {
        self.0.created_by.as_ref()
    }

    /// Who revoked the key, as [`created_by`](Self::created_by) says who created it.
    /// `None` for a key that is not revoked, or that the application revoked. A rotation
    /// that revokes the old key at once records the rotation's actor.
    pub fn revoked_by(&self) -> Option<&ActorName> {
        self.0.revoked_by.as_ref()
    }

    /// What a caller proven to hold this key is, as request extensions carry it.
    pub fn identity(&self) -> ApiKeyIdentity {
        ApiKeyIdentity::from_data(Arc::clone(&self.0))
    }

    pub(crate) fn into_identity(self) -> ApiKeyIdentity {
        ApiKeyIdentity::from_data(self.0)
    }

    /// Where the key stands at `now`.
    ///
    /// Revoked if it has any `revoked_at`, without comparing that time with `now`: a
    /// revocation holds whatever the clocks of the instance that made it and the one
    /// asking say. Otherwise ended or expired at and after the earlier of `ends_at` and
    /// `expires_at` (expired when both are the same time), else active.
    pub fn state_at(&self, now: SystemTime) -> KeyState {
        if self.0.revoked_at.is_some() {
            return KeyState::Revoked;
        }
        match self.0.ends_at {
            Some(end) if end < self.0.expires_at && now >= end => KeyState::Ended,
            _ if now >= self.0.expires_at => KeyState::Expired,
            _ => KeyState::Active,
        }
    }
}

impl RecordData {
    /// The earlier of `ends_at` and `expires_at`.
    pub(crate) fn stops_at(&self) -> SystemTime {
        self.ends_at
            .map_or(self.expires_at, |end| end.min(self.expires_at))
    }
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("id", self.id())
            .field("name", self.name())
            .field("scopes", self.scopes())
            .field("digest", self.digest())
            .field("created_at", &self.created_at())
            .field("expires_at", &self.expires_at())
            .field("revoked_at", &self.revoked_at())
            .field("ends_at", &self.ends_at())
            .field("last_used_at", &self.last_used_at())
            .field("rotated_from", &self.rotated_from())
            .field("created_by", &self.created_by())
            .field("revoked_by", &self.revoked_by())
            .field("rate_limit", &self.rate_limit())
            .field("quota", &self.quota())
            .field("allowed_ips", &self.allowed_ips())
            .field("predecessor_grace", &self.predecessor_grace())
            .field("recent_ips", self.recent_ips())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn names_are_validated() {
        assert_eq!(KeyName::new("").unwrap_err(), NameError::Empty);
        assert_eq!(KeyName::new("   ").unwrap_err(), NameError::Empty);
        assert_eq!(KeyName::new(" a").unwrap_err(), NameError::Untrimmed);
        assert_eq!(
            KeyName::new("a\nb").unwrap_err(),
            NameError::ControlCharacter
        );
        assert_eq!(
            KeyName::new(&"é".repeat(MAX_NAME_CHARS + 1)).unwrap_err(),
            NameError::TooLong(MAX_NAME_CHARS + 1)
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
                NameError::HiddenCharacter(hidden),
                "{name:?}"
            );
        }
        let error = KeyName::new("x\u{202E}").unwrap_err().to_string();
        assert!(error.contains("U+202E"), "{error}");
        assert!(KeyName::new("Überweisung — 日本").is_ok());
    }

    fn record_at(t0: SystemTime) -> KeyRecord {
        KeyRecord::new(
            KeyId::new("0000000000000000").unwrap(),
            KeyName::new("n").unwrap(),
            Scopes::empty(),
            KeyDigest::DUMMY,
            t0,
            t0 + Duration::from_secs(10),
        )
    }

    #[test]
    fn a_revocation_holds_whatever_time_it_records() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        // Recorded by a clock running ahead of the one asking, or asked after the
        // asking clock stepped back: revoked either way.
        let revoked = record_at(t0).with_revoked_at(Some(t0 + Duration::from_secs(120)));
        for now in [
            t0,
            t0 + Duration::from_secs(5),
            t0 + Duration::from_secs(200),
        ] {
            assert_eq!(revoked.state_at(now), KeyState::Revoked);
        }
        let ended = record_at(t0)
            .with_ends_at(Some(t0 + Duration::from_secs(5)))
            .with_revoked_at(Some(t0));
        assert_eq!(
            ended.state_at(t0 + Duration::from_secs(20)),
            KeyState::Revoked
        );
    }

    #[test]
    fn a_scheduled_end_ends_the_key_at_exactly_ends_at() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let ending = record_at(t0).with_ends_at(Some(t0 + Duration::from_secs(5)));
        assert_eq!(ending.stops_at(), t0 + Duration::from_secs(5));
        assert_eq!(
            ending.state_at(t0 + Duration::from_secs(5) - Duration::from_nanos(1)),
            KeyState::Active
        );
        assert_eq!(
            ending.state_at(t0 + Duration::from_secs(5)),
            KeyState::Ended
        );
        assert_eq!(
            ending.state_at(t0 + Duration::from_secs(20)),
            KeyState::Ended,
            "it ended before it expired"
        );
        // An end at or after the expiry changes nothing: the key expires.
        for end in [10, 15] {
            let late = record_at(t0).with_ends_at(Some(t0 + Duration::from_secs(end)));
            assert_eq!(late.stops_at(), t0 + Duration::from_secs(10));
            assert_eq!(late.state_at(t0 + Duration::from_secs(9)), KeyState::Active);
            assert_eq!(
                late.state_at(t0 + Duration::from_secs(12)),
                KeyState::Expired
            );
        }
    }

    #[test]
    fn a_key_is_expired_at_exactly_expires_at_and_revocation_wins() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let record = KeyRecord::new(
            KeyId::new("0000000000000000").unwrap(),
            KeyName::new("n").unwrap(),
            Scopes::empty(),
            KeyDigest::DUMMY,
            t0,
            t0 + Duration::from_secs(10),
        );
        assert_eq!(
            record.state_at(t0 + Duration::from_secs(9)),
            KeyState::Active
        );
        assert_eq!(
            record.state_at(t0 + Duration::from_secs(10)),
            KeyState::Expired
        );
        let revoked = record.with_revoked_at(Some(t0 + Duration::from_secs(5)));
        assert_eq!(
            revoked.state_at(t0 + Duration::from_secs(4)),
            KeyState::Revoked
        );
        assert_eq!(
            revoked.state_at(t0 + Duration::from_secs(20)),
            KeyState::Revoked
        );
    }
}

//! What the tracker hands a sink in one flush, and what the sink reports back.

use std::fmt;
use std::time::SystemTime;

use crate::key::KeyId;
use crate::usage::KeyUsage;

/// A batch's id: random, so that a sink can tell a retried batch (same id) from a new
/// one and never count the same requests twice.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsageBatchId([u8; 16]);

impl UsageBatchId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut bytes = [0; 16];
        // Without the OS's randomness, a clock-and-counter id still never repeats
        // within this process, which is what a retry needs.
        if getrandom::fill(&mut bytes).is_err() {
            use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            bytes[..8].copy_from_slice(&nanos.to_le_bytes());
            bytes[8..].copy_from_slice(&NEXT.fetch_add(1, Relaxed).to_le_bytes());
        }
        Self(bytes)
    }

    /// The id as 32 lowercase hex digits.
    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for UsageBatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UsageBatchId({})", self.to_hex())
    }
}

impl fmt::Display for UsageBatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// One flush: its id and each key's usage, each key at most once. A batch that failed
/// (or timed out) is sent again with the same id and the same counts.
#[derive(Debug, Clone, Copy)]
pub struct UsageBatch<'a> {
    id: UsageBatchId,
    usages: &'a [KeyUsage],
}

impl<'a> UsageBatch<'a> {
    /// The batch `id` of `usages`.
    pub fn new(id: UsageBatchId, usages: &'a [KeyUsage]) -> Self {
        Self { id, usages }
    }

    /// The id.
    pub fn id(&self) -> UsageBatchId {
        self.id
    }

    /// The keys' usage.
    pub fn usages(&self) -> &'a [KeyUsage] {
        self.usages
    }
}

/// What a sink's write changed, for the tracker to report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsageOutcome {
    /// Keys whose stored `last_used_at` this write moved from none: their first use.
    pub first_used: Vec<KeyId>,
    /// The ends this write set: old keys of `until_first_use` rotations
    /// ([`OldKeyEnd::UntilFirstUse`](crate::OldKeyEnd::UntilFirstUse)) whose successor's
    /// first use it stored. A cache in front of the store evicts them; the tracker
    /// records each as a `rotated` event.
    pub ended: Vec<RotationEnd>,
}

impl UsageOutcome {
    /// An outcome reporting `first_used`.
    pub fn new(first_used: Vec<KeyId>) -> Self {
        Self {
            first_used,
            ended: Vec::new(),
        }
    }

    /// Also reports `ended`.
    pub fn with_ended(mut self, ended: Vec<RotationEnd>) -> Self {
        self.ended = ended;
        self
    }
}

/// An old key's end, set by its successor's first use (an `until_first_use` rotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RotationEnd {
    /// The old key, which now ends.
    pub key_id: KeyId,
    /// The successor whose first use ended it.
    pub successor: KeyId,
    /// The old key's `ends_at`: the successor's recorded use plus the grace.
    pub ends_at: SystemTime,
}

impl RotationEnd {
    /// `key_id` ends at `ends_at` because `successor` was first used.
    pub fn new(key_id: KeyId, successor: KeyId, ends_at: SystemTime) -> Self {
        Self {
            key_id,
            successor,
            ends_at,
        }
    }
}

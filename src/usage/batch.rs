//! What the tracker hands a sink in one flush, and what the sink reports back.

use std::fmt;

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
}

impl UsageOutcome {
    /// An outcome reporting `first_used`.
    pub fn new(first_used: Vec<KeyId>) -> Self {
        Self { first_used }
    }
}

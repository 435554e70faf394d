//! What the tracker hands a sink in one flush, and what the sink reports back.

use std::fmt;
use std::time::SystemTime;

use crate::event::{EventDetail, EventType, KeyEvent, NewEvent};
use crate::key::KeyId;
use crate::usage::key_usage::KeyUsage;

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
            let nanos = crate::time::epoch_nanos(std::time::SystemTime::now());
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
    events: bool,
}

impl<'a> UsageBatch<'a> {
    /// The batch `id` of `usages`, asking for no events.
    pub fn new(id: UsageBatchId, usages: &'a [KeyUsage]) -> Self {
        Self {
            id,
            usages,
            events: false,
        }
    }

    /// Asks the sink to store, in the same write, the events of what it changes
    /// ([`events_of`](Self::events_of)), when `events` is true: the tracker does when
    /// it keeps an audit trail ([`UsageTrackerBuilder::events`](crate::usage::UsageTrackerBuilder::events)).
    pub fn events(mut self, events: bool) -> Self {
        self.events = events;
        self
    }

    #[deprecated(note = "use UsageBatch::events")]
    #[doc(hidden)]
    pub fn with_events(self, events: bool) -> Self {
        self.events(events)
    }

    /// Whether the sink should store the events of what it changes with the write
    /// (DESIGN §10: no change without its event) and report them in
    /// [`UsageOutcome::events`]. A sink that cannot may leave them out: the tracker
    /// then records them itself, after the write.
    pub fn wants_events(&self) -> bool {
        self.events
    }

    /// The events of a write that stored the first uses `first_used` and set the ends
    /// `ended`: a `first_used` for each first use, at the use, and a `rotated` for each
    /// end (an `until_first_use` rotation's old key), at its successor's use, naming the
    /// successor and the end. What a sink stores when [`wants_events`](Self::wants_events).
    pub fn events_of(&self, first_used: &[KeyId], ended: &[RotationEnd]) -> Vec<NewEvent> {
        let used_at = |id: &KeyId| {
            self.usages
                .iter()
                .find(|u| u.key_id == *id)
                .map_or(SystemTime::UNIX_EPOCH, |u| u.last_used_at)
        };
        let first = first_used
            .iter()
            .map(|id| NewEvent::new(EventType::FirstUsed, *id, used_at(id)));
        // The old key of an `until_first_use` rotation now ends: its trail says when, as
        // a rotation with an overlap says it.
        let ends = ended.iter().map(|end| {
            let detail = EventDetail::default()
                .with_related_key_id(Some(end.successor))
                .with_ends_at(Some(end.ends_at));
            NewEvent::new(EventType::Rotated, end.key_id, used_at(&end.successor))
                .with_detail(detail)
        });
        first.chain(ends).collect()
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
    /// ([`OldKeyEnd::UntilFirstUse`](crate::store::OldKeyEnd::UntilFirstUse)) whose successor's
    /// first use it stored. A cache in front of the store evicts them; the tracker
    /// records each as a `rotated` event.
    pub ended: Vec<RotationEnd>,
    /// The events the sink stored in the same write, when the batch
    /// [wants them](UsageBatch::wants_events): those of
    /// [`UsageBatch::events_of`]. Empty from a sink that stores none; the tracker then
    /// records the events of `first_used` and `ended` itself.
    pub events: Vec<KeyEvent>,
}

impl UsageOutcome {
    /// An outcome reporting `first_used`.
    pub fn new(first_used: Vec<KeyId>) -> Self {
        Self {
            first_used,
            ended: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Also reports `ended`.
    pub fn with_ended(mut self, ended: Vec<RotationEnd>) -> Self {
        self.ended = ended;
        self
    }

    /// Also reports the events stored with the write.
    pub fn with_events(mut self, events: Vec<KeyEvent>) -> Self {
        self.events = events;
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

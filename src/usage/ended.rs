//! Proven attempts with keys that were revoked or ended by rotation, gathered between
//! flushes: each flush turns them into one warning line and one `ended_key_used` event
//! per key, however many requests there were.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use crate::key::KeyId;

/// The most distinct ended keys held between two flushes; attempts with further keys
/// are counted in [`EndedUses::dropped`] only. Such attempts are rare (an integration
/// that never switched, a leaked copy), so a lock is fine here: it is off the path of
/// every good request.
pub(crate) const MAX_ENDED_KEYS: usize = 1024;

#[derive(Default)]
pub(crate) struct EndedUses {
    keys: Mutex<HashMap<KeyId, (u64, SystemTime), foldhash::fast::RandomState>>,
    pub(crate) dropped: AtomicU64,
}

impl EndedUses {
    pub(crate) fn record(&self, id: &KeyId, at: SystemTime) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let held = keys.len();
        match keys.get_mut(id) {
            Some((n, latest)) => {
                *n += 1;
                *latest = (*latest).max(at);
            }
            None if held < MAX_ENDED_KEYS => {
                keys.insert(*id, (1, at));
            }
            None => {
                self.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Everything gathered since the last call: key, attempts, latest attempt.
    pub(crate) fn take(&self) -> Vec<(KeyId, u64, SystemTime)> {
        let taken = std::mem::take(&mut *self.keys.lock().unwrap_or_else(PoisonError::into_inner));
        let mut out: Vec<_> = taken.into_iter().map(|(id, (n, at))| (id, n, at)).collect();
        out.sort_by_key(|&(_, _, at)| at);
        out
    }
}

//! Last-used tracking: [`UsageSink`] receives batches of last-used times;
//! [`UsageTracker`] debounces between the request path and the sink.
//!
//! A sink is handed [`KeyUsage`]s (per key: the latest use, recent addresses, requests
//! per [`UsageDay`]) in a [`UsageBatch`], answers with a [`UsageOutcome`] (first uses,
//! the [`RotationEnd`]s they set) or a [`UsageSinkError`]; [`TracingUsageSink`] only
//! logs them.
//!
//! A *use* is a request whose key was proven (secret matched, not expired, not revoked),
//! whatever the scope check said. The tracker keeps each key's latest use in memory and
//! writes it about every five minutes: at most one write per key per period, times only
//! moving forward, and nothing on the request path ever waits for the sink.
//!
//! ```
//! use std::time::Duration;
//! use tower_apikey::{ApiKeyV2Layer, InMemoryKeyStore};
//! use tower_apikey::usage::UsageTracker;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let store = InMemoryKeyStore::new();
//! let tracker = UsageTracker::builder(store.clone())
//!     .period(Duration::from_secs(300))
//!     .build();
//! // The application owns the flush loop: spawn it, and stop it with `shutdown`.
//! let flushing = tokio::spawn(tracker.run());
//! let layer = ApiKeyV2Layer::new(store).usage_tracker(tracker.clone());
//! // … serve requests through `layer` …
//! tracker.shutdown().await?; // writes everything pending, then the loop ends
//! flushing.await.unwrap();
//! # Ok::<(), tower_apikey::usage::UsageSinkError>(())
//! # }).unwrap();
//! ```

pub(crate) mod batch;
pub(crate) mod counts;
mod ended;
mod recent;
pub(crate) mod sink;
mod slot;
mod striped;
mod tracing_sink;
pub(crate) mod tracker;

pub use batch::{RotationEnd, UsageBatch, UsageBatchId, UsageOutcome};
pub use counts::UsageDay;
// `UsageSink` is named from the crate root; the crate's own code imports it from here.
pub(crate) use sink::*;
pub use sink::{KeyUsage, MAX_DAYS_PER_USAGE, UsageSinkError};
pub use tracing_sink::TracingUsageSink;
pub use tracker::{UsageTracker, UsageTrackerBuilder, UsageTrackerStats};

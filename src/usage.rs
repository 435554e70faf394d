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
//! A [`KeyManager`](crate::KeyManager) does all of it: its [layer](crate::KeyManager::layer)
//! records uses in its tracker, its [background](crate::KeyManager::background) writes
//! them every period, and its [shutdown](crate::KeyManager::shutdown) writes the last
//! ones. Where they go is the store, or what
//! [`KeyManagerBuilder::usage_sink`](crate::KeyManagerBuilder::usage_sink) names:
//!
//! ```
//! use std::time::Duration;
//! use tower_apikey::{InMemoryKeyStore, KeyManager};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let manager = KeyManager::builder(InMemoryKeyStore::new())
//!     .usage_flush_period(Duration::from_secs(300))
//!     .build();
//! let running = tokio::spawn(manager.background()); // the flush loop, among others
//! let layer = manager.layer();
//! // … serve requests through `layer`, until the server has stopped …
//! manager.shutdown().await?; // writes everything pending, then the loops end
//! running.await.unwrap();
//! # Ok::<(), tower_apikey::ShutdownError>(())
//! # }).unwrap();
//! ```
//!
//! A layer built without a manager ([`ApiKeyV2Layer::new`](crate::ApiKeyV2Layer::new))
//! records nothing unless given a tracker
//! ([`ApiKeyV2Layer::usage_tracker`](crate::ApiKeyV2Layer::usage_tracker)), whose
//! [`run`](UsageTracker::run) and [`shutdown`](UsageTracker::shutdown) are then the
//! application's to call.

pub(crate) mod batch;
pub(crate) mod counts;
mod ended;
pub(crate) mod key_usage;
mod recent;
pub(crate) mod sink;
mod slot;
mod striped;
mod tracing_sink;
pub(crate) mod tracker;
pub(crate) mod usage_counts;

pub use batch::{RotationEnd, UsageBatch, UsageBatchId, UsageOutcome};
pub use counts::UsageDay;
// `UsageSink` is named from the crate root; the crate's own code imports it from here.
pub use key_usage::{KeyUsage, MAX_DAYS_PER_USAGE};
pub use sink::UsageSinkError;
pub(crate) use sink::*;
pub use tracing_sink::TracingUsageSink;
pub use tracker::{UsageTracker, UsageTrackerBuilder, UsageTrackerStats};
pub use usage_counts::{UsageCounts, requests_per_day};

//! Last-used tracking: [`UsageSink`] receives batches of last-used times;
//! [`UsageTracker`] debounces between the request path and the sink.
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

// The types are named from the crate root (`tower_apikey::UsageTracker`); this module
// documents last-used tracking. The crate's own code imports them from here.
pub(crate) mod batch;
pub(crate) mod counts;
mod ended;
mod recent;
pub(crate) mod sink;
mod slot;
mod striped;
pub(crate) mod tracing_sink;
pub(crate) mod tracker;

pub(crate) use batch::{RotationEnd, UsageBatch, UsageBatchId, UsageOutcome};
pub(crate) use counts::UsageDay;
pub(crate) use sink::*;
pub(crate) use tracker::UsageTracker;

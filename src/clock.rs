//! The time source for expiry and last-used times.
//!
//! Everything that reads the wall clock goes through [`Clock`], so tests can move time
//! with a `ManualClock` (feature `test-util`) instead of sleeping.
//!
//! ```
//! # #[cfg(feature = "test-util")] {
//! use std::time::{Duration, SystemTime};
//! use tower_apikey::Clock;
//! use tower_apikey::testing::ManualClock;
//!
//! let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
//! clock.advance(Duration::from_secs(60));
//! assert_eq!(clock.now(), SystemTime::UNIX_EPOCH + Duration::from_secs(60));
//! # }
//! ```

#[cfg(any(test, feature = "test-util"))]
pub(crate) mod manual;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

// Public as `testing::ManualClock`; the crate's own tests import it from here.
#[cfg(test)]
pub(crate) use manual::ManualClock;

/// A source of wall-clock time.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A shared clock, so that one `Arc<dyn Clock>` can serve a manager and a layer.
impl<T: Clock + ?Sized> Clock for Arc<T> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}

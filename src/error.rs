//! What the crate's error types share: a boxed backend error, the cause behind
//! [`StoreError::Unavailable`](crate::StoreError::Unavailable) and
//! [`UsageSinkError::Sink`](crate::usage::UsageSinkError::Sink). In a module of its own so that stores
//! and usage tracking, which both carry one, do not depend on each other for it.

use std::error::Error as StdError;

/// An error from a backend (a database driver, an HTTP client), boxed.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

//! Scopes: what a key may do, and what a route requires.
//!
//! # Grammar
//!
//! A scope is one or more segments joined by `:`, such as `reports:read` or
//! `admin:keys`. A segment is 1 or more of `a-z`, `0-9`, `-`, `_` and `.`; a whole scope
//! is at most 128 bytes. The last segment may instead be `*`, a wildcard.
//!
//! # Granting
//!
//! - A scope grants itself.
//! - A wildcard `p:*` grants every scope *under* `p`: `reports:*` grants `reports:read`
//!   and `reports:read:eu`, but not `reports` itself.
//! - Nothing grants upwards (`reports:read` does not grant `reports`) or sideways
//!   (`reports:read` does not grant `reports:write`). There is no bare `*`: a key that
//!   may do everything is made by naming what it may do.
//! - A requirement is a set, and all of it is needed.
//!
//! Scopes are case-sensitive and limited to lowercase, so `Reports:Read` is refused
//! rather than silently treated as another scope.
//!
//! ```
//! use tower_apikey::{Scope, Scopes};
//!
//! let granted = Scopes::new(["reports:*", "admin:keys"])?;
//! assert!(granted.grants(&Scope::new("reports:read")?));
//! assert!(!granted.grants(&Scope::new("reports")?));
//! let required = Scopes::new(["reports:read", "billing:read"])?;
//! let missing: Vec<_> = granted.missing(&required).map(Scope::as_str).collect();
//! assert_eq!(missing, ["billing:read"]);
//! # Ok::<(), tower_apikey::scope::ScopeError>(())
//! ```

/// The longest scope, in bytes.
pub const MAX_SCOPE_LEN: usize = 128;
/// The most scopes one key or one requirement may hold.
pub const MAX_SCOPES: usize = 64;
/// The [grammar](self#grammar) as a regular expression (ECMAScript and Python syntax),
/// for schemas and other tools that check scopes before sending them: segments of
/// `a-z 0-9 - _ .` joined by `:`, the last one possibly `*`, never a bare `*`.
/// [`Scope::new`](crate::Scope::new) checks the same grammar (and [`MAX_SCOPE_LEN`]);
/// a change to one is a change to both.
pub const SCOPE_PATTERN: &str = r"^[a-z0-9._-]+(?::[a-z0-9._-]+)*(?::\*)?$";

pub(crate) mod scopes;

// `Scope` and `Scopes` are named from the crate root; the crate's own code imports them
// from here.
pub use scopes::ScopeError;
pub(crate) use scopes::*;

//! The `until_first_use` part of a rotate request (DESIGN §11):
//!
//! ```text
//! {"until_first_use": true, "grace_secs": 300}   // grace_secs optional, at most 7 days
//! ```
//!
//! Each problem is a 422 naming its field; `overlap_secs` with it is refused, since the
//! two say different things about when the old key ends.

use std::time::Duration;

use serde_json::{Map, Value};

use super::problem::FieldError;
use tower_apikey::manager::{DEFAULT_FIRST_USE_GRACE, MAX_FIRST_USE_GRACE};

/// The field names this module reads.
pub(super) const FIELDS: &[&str] = &["until_first_use", "grace_secs"];

/// What `object` asks: `Some(grace)` for `"until_first_use": true` (the grace defaults
/// to [`DEFAULT_FIRST_USE_GRACE`]), `None` when absent, `null` or `false`. Adds a
/// field-named error for each problem.
pub(super) fn parse(object: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Duration> {
    let wanted = match object.get("until_first_use") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(wanted)) => *wanted,
        Some(_) => {
            errors.push(FieldError::new(
                "until_first_use",
                "until_first_use must be true (end the old key after the new key's first \
                 use) or false",
            ));
            return None;
        }
    };
    let grace = match object.get("grace_secs") {
        None | Some(Value::Null) => None,
        Some(value) => match super::body::whole_number(value) {
            Some(secs) if secs <= MAX_FIRST_USE_GRACE.as_secs() => Some(Duration::from_secs(secs)),
            Some(_) => {
                errors.push(FieldError::new(
                    "grace_secs",
                    format!(
                        "grace_secs is at most {} (7 days): the old key should not outlive \
                         the new key's first use by longer",
                        MAX_FIRST_USE_GRACE.as_secs()
                    ),
                ));
                return None;
            }
            None => {
                errors.push(FieldError::new(
                    "grace_secs",
                    "grace_secs must be a whole number of seconds, such as 300",
                ));
                return None;
            }
        },
    };
    if !wanted {
        if grace.is_some() {
            errors.push(FieldError::new(
                "grace_secs",
                "grace_secs applies only with \"until_first_use\": true; add it, or leave \
                 grace_secs out",
            ));
        }
        return None;
    }
    if object.get("overlap_secs").is_some_and(|v| !v.is_null()) {
        errors.push(FieldError::new(
            "until_first_use",
            "until_first_use and overlap_secs cannot be combined: send until_first_use \
             (with grace_secs) to end the old key after the new key's first use, or \
             overlap_secs to end it at a fixed time",
        ));
        return None;
    }
    Some(grace.unwrap_or(DEFAULT_FIRST_USE_GRACE))
}

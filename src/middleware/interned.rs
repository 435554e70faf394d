//! The texts of the layer's prebuilt answers, kept for the life of the process, once
//! each: a refusal then hands out `'static` header values and bodies, whose clones and
//! drops touch no reference count (a shared `Bytes` costs two atomic operations per
//! refusal for each value it carries).
//!
//! What is kept is configuration: one set of challenges per distinct realm, one
//! missing-scope answer per distinct (realm, required scopes), the fixed problem
//! documents. Building a layer again with the same settings finds them and keeps
//! nothing more, so memory grows with the number of distinct configurations, never with
//! requests.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use http::HeaderValue;

/// `text`, kept for the life of the process (found, if it was kept before).
pub(crate) fn text(text: String) -> &'static str {
    static TEXTS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    // A panic while holding the lock leaves the set whole (insert is the only change).
    let mut texts = TEXTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&kept) = texts.get(text.as_str()) {
        return kept;
    }
    let kept: &'static str = Box::leak(text.into_boxed_str());
    texts.insert(kept);
    kept
}

/// `value` as a header value over kept bytes, or `None` if it cannot be one.
pub(crate) fn header_value(value: String) -> Option<HeaderValue> {
    HeaderValue::from_str(&value).ok()?;
    // Checked just above, so `from_static` cannot panic.
    Some(HeaderValue::from_static(text(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_kept_once() {
        let a = text(format!("kept-{}", 42));
        let b = text(String::from("kept-42"));
        assert!(std::ptr::eq(a, b));
    }

    #[test]
    fn a_header_value_must_be_valid() {
        assert!(header_value("a\nb".to_owned()).is_none());
        assert_eq!(header_value("ok".to_owned()).unwrap(), "ok");
    }
}

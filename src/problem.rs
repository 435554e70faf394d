//! RFC 9457 problem documents for the middleware's refusals, and the one `Retry-After`
//! it sends with a 503 (public, so that an admin API says the same).
//!
//! The core has no serde: a refusal's document is a flat object of strings and one
//! number, so a small writer with RFC 8259 escaping does.

use std::fmt::Write as _;

use http::{HeaderValue, StatusCode};

/// The media type of a problem document.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// Seconds a client is told to wait after a 503 (the store failed or timed out): the
/// `Retry-After` the middleware sends, public so that an admin API says the same.
pub const RETRY_AFTER_SECS: &str = "5";

/// `Retry-After` of a 503.
pub(crate) fn retry_after() -> HeaderValue {
    HeaderValue::from_static(RETRY_AFTER_SECS)
}

/// A problem document being written: `type` (`about:blank`: the status and `detail` say
/// it all), `title` (the status's reason phrase), `status` and `detail`, then any
/// extension members, in the order they are added.
#[derive(Debug)]
pub(crate) struct Problem {
    json: String,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, detail: &str) -> Self {
        let mut json = String::with_capacity(128 + detail.len());
        json.push_str(r#"{"type":"about:blank","title":"#);
        write_string(&mut json, status.canonical_reason().unwrap_or(""));
        let _ = write!(json, r#","status":{},"detail":"#, status.as_u16());
        write_string(&mut json, detail);
        Self { json }
    }

    /// Adds `"name": "value"`.
    pub(crate) fn string(mut self, name: &str, value: &str) -> Self {
        self.key(name);
        write_string(&mut self.json, value);
        self
    }

    /// The finished document.
    pub(crate) fn finish(mut self) -> String {
        self.json.push('}');
        self.json
    }

    fn key(&mut self, name: &str) {
        self.json.push(',');
        write_string(&mut self.json, name);
        self.json.push(':');
    }
}

/// `value` as a JSON string (RFC 8259 §7): quotes, backslashes and control characters
/// escaped, everything else as it is (UTF-8).
fn write_string(out: &mut String, value: &str) {
    out.push('"');
    let mut rest = value;
    while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
        out.push_str(&rest[..at]);
        let c = rest.as_bytes()[at];
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            other => {
                let _ = write!(out, "\\u{other:04x}");
            }
        }
        // Every character found is ASCII, one byte.
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_json_reads_them() {
        for text in [
            "plain",
            "a \"quoted\" word",
            "back\\slash",
            "line\nbreak\r\ttab",
            "bell\u{7}nul\u{0}esc\u{1b}",
            "ünïcødé and \u{2028} and emoji 🦀",
            "",
        ] {
            let mut out = String::new();
            write_string(&mut out, text);
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(back, text, "{out}");
        }
    }

    #[test]
    fn a_document_has_the_standard_members_then_the_extensions() {
        let json = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "see \"errors\"")
            .string("field", "name")
            .finish();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "type": "about:blank",
                "title": "Unprocessable Entity",
                "status": 422,
                "detail": "see \"errors\"",
                "field": "name",
            })
        );
        assert!(
            json.starts_with(
                r#"{"type":"about:blank","title":"Unprocessable Entity","status":422,"#
            )
        );
    }
}

//! Reading the admin router's JSON request bodies into a `serde_json` object: the
//! leaf under every body (see [`wire`](super::wire) for the pass that fills a body's
//! wire type from it).
//!
//! Two limits keep a hostile body from making a large or ambiguous answer: a field
//! given twice is refused (JSON leaves duplicates undefined, and `serde_json` would keep
//! the last, so `{"overlap_secs": 0, "overlap_secs": null}` would read as "keep the old
//! key"), and at most [`MAX_LISTED_FIELDS`] unknown or repeated fields are listed, each
//! name cut to [`MAX_SHOWN_NAME_CHARS`] characters.

use std::fmt;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::problem::{AdminError, FieldError};

pub(super) type Object = Map<String, Value>;

/// The most unknown (or repeated) fields one answer lists.
pub(super) const MAX_LISTED_FIELDS: usize = 20;

/// The most characters of a field name an answer repeats.
pub(super) const MAX_SHOWN_NAME_CHARS: usize = 64;

/// A body that must be a JSON object.
pub(super) fn read_json(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Object, AdminError> {
    if !is_json(headers) {
        return Err(AdminError::UnsupportedMediaType);
    }
    parse_object(&body.map_err(AdminError::Body)?)
}

/// A body that may be absent (empty), or else must be a JSON object.
pub(super) fn read_optional_json(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<Object>, AdminError> {
    let body = body.map_err(AdminError::Body)?;
    if body.is_empty() {
        return Ok(None);
    }
    if !is_json(headers) {
        return Err(AdminError::UnsupportedMediaType);
    }
    parse_object(&body).map(Some)
}

/// `application/json` or `application/*+json`, with any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<mime::Mime>().ok())
        .is_some_and(|mime| {
            mime.type_() == mime::APPLICATION
                && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
        })
}

pub(super) fn parse_object(body: &[u8]) -> Result<Object, AdminError> {
    match serde_json::from_slice(body).map_err(AdminError::Syntax)? {
        TopLevel::Object { object, repeated } if repeated.is_empty() => Ok(object),
        TopLevel::Object { repeated, .. } => {
            let mut errors = Vec::new();
            list_fields(repeated.iter(), &mut errors, |_| {
                "the field is given more than once; give it once".to_owned()
            });
            Err(AdminError::Invalid(errors))
        }
        TopLevel::Other => Err(AdminError::NotAnObject),
    }
}

/// A body's top level: an object, with the names of the fields it repeats, or anything
/// else.
enum TopLevel {
    Object {
        object: Object,
        repeated: Vec<String>,
    },
    Other,
}

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut object = Object::new();
        let mut repeated = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if object.contains_key(&key) {
                if !repeated.contains(&key) {
                    repeated.push(key);
                }
            } else {
                object.insert(key, value);
            }
        }
        Ok(TopLevel::Object { object, repeated })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopLevel, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_unit<E>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }
}

/// One error per field name, for at most [`MAX_LISTED_FIELDS`] of them; the last one
/// listed says how many more there are.
pub(super) fn list_fields<'a>(
    names: impl ExactSizeIterator<Item = &'a String>,
    errors: &mut Vec<FieldError>,
    detail: impl Fn(&str) -> String,
) {
    let total = names.len();
    for (n, name) in names.take(MAX_LISTED_FIELDS).enumerate() {
        let mut text = detail(name);
        if n + 1 == MAX_LISTED_FIELDS && total > MAX_LISTED_FIELDS {
            text.push_str(&format!(
                " ({} more such fields are not listed)",
                total - MAX_LISTED_FIELDS
            ));
        }
        errors.push(FieldError::new(shown_name(name), text));
    }
}

/// A field name as an answer repeats it: cut to [`MAX_SHOWN_NAME_CHARS`] characters.
fn shown_name(name: &str) -> String {
    match name.char_indices().nth(MAX_SHOWN_NAME_CHARS) {
        Some((cut, _)) => format!("{}…", &name[..cut]),
        None => name.to_owned(),
    }
}

/// A whole number of `value`: `300`, and also `300.0` or `3e2`, which JSON (and JSON
/// Schema's `integer`) count as the same number, so a client whose JSON library writes
/// numbers as floats is not refused. Fractions and negatives are `None`; a whole number
/// beyond 2^53, where a float is no longer exact, saturates, so range checks refuse it as
/// too large.
pub(super) fn whole_number(value: &Value) -> Option<u64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let float = value.as_f64()?;
    if float.fract() != 0.0 || float < 0.0 {
        return None;
    }
    // `as` saturates; below 2^53 it is exact.
    Some(if float <= EXACT {
        float as u64
    } else {
        u64::MAX
    })
}

/// What the body modules' tests share.
#[cfg(test)]
pub(super) mod testing {
    use super::{AdminError, Object, Value};

    /// The object a test writes with `json!`.
    pub(crate) fn object(json: Value) -> Object {
        match json {
            Value::Object(object) => object,
            _ => unreachable!("tests pass objects"),
        }
    }

    /// The fields a 422 names, in order.
    pub(crate) fn fields(error: AdminError) -> Vec<String> {
        match error {
            AdminError::Invalid(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected invalid fields, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use testing::fields;

    fn json_headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        headers
    }

    #[test]
    fn json_content_types_are_recognised_with_parameters_and_suffixes() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(is_json(&json_headers(ok)), "{ok}");
        }
        for bad in ["text/json", "application/x-www-form-urlencoded", "json", ""] {
            assert!(!is_json(&json_headers(bad)), "{bad}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn a_field_given_twice_is_refused_whatever_its_values() {
        for body in [
            &br#"{"overlap_secs":0,"overlap_secs":null}"#[..],
            br#"{"overlap_secs":null,"overlap_secs":0}"#,
            br#"{"name":"a","scopes":[],"name":"a"}"#,
        ] {
            let error = parse_object(body).unwrap_err();
            let named = fields(error);
            assert_eq!(named.len(), 1, "{}", String::from_utf8_lossy(body));
            assert!(["overlap_secs", "name"].contains(&named[0].as_str()));
        }
        // Equal names inside a nested value are that value's business: it is refused
        // for its type anyway.
        assert!(parse_object(br#"{"a":{"b":1,"b":2}}"#).is_ok());
        assert!(matches!(
            parse_object(br#"[{"a":1}]"#),
            Err(AdminError::NotAnObject)
        ));
        assert!(matches!(
            parse_object(b"null"),
            Err(AdminError::NotAnObject)
        ));
        assert!(matches!(
            parse_object(b"\"x\""),
            Err(AdminError::NotAnObject)
        ));
    }

    #[test]
    fn bodies_must_be_json_objects() {
        let ok = json_headers("application/json");
        assert!(matches!(
            read_json(&json_headers("text/plain"), Ok(Bytes::from_static(b"{}"))),
            Err(AdminError::UnsupportedMediaType)
        ));
        assert!(matches!(
            read_json(&ok, Ok(Bytes::from_static(b"{\"name\":"))),
            Err(AdminError::Syntax(_))
        ));
        assert!(matches!(
            read_json(&ok, Ok(Bytes::from_static(b"[1]"))),
            Err(AdminError::NotAnObject)
        ));
        assert!(matches!(
            read_optional_json(&HeaderMap::new(), Ok(Bytes::new())),
            Ok(None)
        ));
        assert!(matches!(
            read_optional_json(&HeaderMap::new(), Ok(Bytes::from_static(b"{}"))),
            Err(AdminError::UnsupportedMediaType)
        ));
    }
}

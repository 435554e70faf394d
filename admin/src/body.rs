//! Reading and checking the admin router's JSON request bodies.
//!
//! Bodies are read into a `serde_json` object and checked field by field rather than
//! derived, so that one answer can name *every* missing, unknown, mistyped or invalid
//! field, each under its own name.
//!
//! Two limits keep a hostile body from making a large or ambiguous answer: a field
//! given twice is refused (JSON leaves duplicates undefined, and `serde_json` would keep
//! the last, so `{"overlap_secs": 0, "overlap_secs": null}` would read as "keep the old
//! key"), and at most [`MAX_LISTED_FIELDS`] unknown or repeated fields are listed, each
//! name cut to [`MAX_SHOWN_NAME_CHARS`] characters.

use std::fmt;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::MAX_OVERLAP;
use super::first_use_body;
use super::limits_body::{self, LimitsRequest};
use super::problem::{AdminError, FieldError};
use tower_apikey::KeyManager;
use tower_apikey::KeyStoreAdmin;
use tower_apikey::Scopes;
use tower_apikey::manager::OldKeyPlan;
use tower_apikey::record::KeyName;

pub(super) type Object = Map<String, Value>;

/// The most unknown (or repeated) fields one answer lists.
const MAX_LISTED_FIELDS: usize = 20;

/// The most characters of a field name an answer repeats.
const MAX_SHOWN_NAME_CHARS: usize = 64;

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

fn parse_object(body: &[u8]) -> Result<Object, AdminError> {
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
fn list_fields<'a>(
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

/// Unknown fields, named one by one (at most [`MAX_LISTED_FIELDS`]).
pub(super) fn unknown_fields(object: &Object, known: &[&str], errors: &mut Vec<FieldError>) {
    let unknown: Vec<&String> = object
        .keys()
        .filter(|f| !known.contains(&f.as_str()))
        .collect();
    list_fields(unknown.into_iter(), errors, |_| {
        format!("unknown field; the fields are {}", known.join(", "))
    });
}

/// A checked create request: `{"name", "scopes", "expires_at"?}` and the optional
/// limits (`rate_limit`, `quota`, `allowed_ips`, see [`limits_body`]).
#[derive(Debug)]
pub(super) struct CreateRequest {
    pub(super) name: KeyName,
    pub(super) scopes: Scopes,
    pub(super) expires_at: Option<SystemTime>,
    pub(super) limits: LimitsRequest,
}

/// The fields of a create request besides the limits ([`limits_body::FIELDS`]).
pub(super) const CREATE_FIELDS: &[&str] = &["name", "scopes", "expires_at"];

/// The fields of a rotate request besides `until_first_use` ([`first_use_body::FIELDS`]).
pub(super) const ROTATE_FIELDS: &[&str] = &["overlap_secs"];

impl CreateRequest {
    /// Checks every field, with the manager's clock for `expires_at`, and reports every
    /// problem at once.
    pub(super) fn parse<S: KeyStoreAdmin>(
        object: Object,
        manager: &KeyManager<S>,
    ) -> Result<Self, AdminError> {
        let mut errors = Vec::new();

        let name = match object.get("name") {
            None | Some(Value::Null) => {
                errors.push(FieldError::new(
                    "name",
                    "name is required: what uses the key, such as \"billing-sync (prod)\"",
                ));
                None
            }
            Some(Value::String(name)) => match KeyName::new(name) {
                Ok(name) => Some(name),
                Err(error) => {
                    errors.push(FieldError::name(&error));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new("name", "name must be a string"));
                None
            }
        };

        let scopes = match object.get("scopes") {
            None | Some(Value::Null) => {
                errors.push(FieldError::new(
                    "scopes",
                    "scopes is required: an array such as [\"reports:read\"], or [] for a key that only authenticates",
                ));
                None
            }
            Some(Value::Array(items)) => {
                let strings: Option<Vec<String>> = items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect();
                match strings {
                    None => {
                        errors.push(FieldError::new(
                            "scopes",
                            "scopes must be an array of strings",
                        ));
                        None
                    }
                    Some(strings) => match Scopes::new(&strings) {
                        Ok(scopes) => Some(scopes),
                        Err(error) => {
                            errors.push(FieldError::scopes(&error));
                            None
                        }
                    },
                }
            }
            Some(_) => {
                errors.push(FieldError::new(
                    "scopes",
                    "scopes must be an array of strings",
                ));
                None
            }
        };

        let expires_at = match object.get("expires_at") {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(text)) => match OffsetDateTime::parse(text, &Rfc3339) {
                // RFC 3339 years are 0000–9999, which a `SystemTime` always holds.
                Ok(at) => match manager.check_expires_at(SystemTime::from(at)) {
                    Ok(at) => Some(Some(at)),
                    Err(error) => {
                        errors.push(FieldError::expires_at(&error));
                        None
                    }
                },
                Err(_) => {
                    errors.push(not_rfc3339());
                    None
                }
            },
            Some(_) => {
                errors.push(not_rfc3339());
                None
            }
        };

        let limits = LimitsRequest::parse(&object, &mut errors);

        let known: Vec<&str> = CREATE_FIELDS
            .iter()
            .chain(limits_body::FIELDS)
            .copied()
            .collect();
        unknown_fields(&object, &known, &mut errors);
        match (name, scopes, expires_at) {
            (Some(name), Some(scopes), Some(expires_at)) if errors.is_empty() => Ok(Self {
                name,
                scopes,
                expires_at,
                limits,
            }),
            _ => Err(AdminError::Invalid(errors)),
        }
    }
}

fn not_rfc3339() -> FieldError {
    FieldError::new(
        "expires_at",
        "expires_at must be an RFC 3339 time such as \"2026-12-31T00:00:00Z\", or left out for the 365-day maximum",
    )
}

/// A checked rotate request: `{"overlap_secs"?}` or `{"until_first_use"?, "grace_secs"?}`.
#[derive(Debug)]
pub(super) struct RotateRequest {
    /// `None`: the old key keeps working until revoked.
    pub(super) overlap: Option<Duration>,
    /// `Some(grace)`: the old key ends `grace` after the new key's first use.
    pub(super) until_first_use: Option<Duration>,
    /// Whether the body said anything about the old key's end (`overlap_secs`, even
    /// `null`, or `until_first_use`), or leaves it to the route's default.
    pub(super) end_given: bool,
}

impl RotateRequest {
    /// The plan the body asks for, or `default` when it asks for none.
    pub(super) fn plan(body: Option<Self>, default: OldKeyPlan) -> OldKeyPlan {
        match body {
            Some(Self {
                until_first_use: Some(grace),
                ..
            }) => OldKeyPlan::UntilFirstUse(grace),
            Some(Self {
                overlap,
                end_given: true,
                ..
            }) => OldKeyPlan::Overlap(overlap),
            _ => default,
        }
    }

    pub(super) fn parse(object: Object) -> Result<Self, AdminError> {
        let mut errors = Vec::new();
        let overlap = match object.get("overlap_secs") {
            None | Some(Value::Null) => None,
            Some(value) => match whole_number(value) {
                Some(secs) if secs <= MAX_OVERLAP.as_secs() => Some(Duration::from_secs(secs)),
                Some(_) => {
                    errors.push(FieldError::new(
                        "overlap_secs",
                        format!(
                            "overlap_secs is at most {} (365 days), the longest a key lives",
                            MAX_OVERLAP.as_secs()
                        ),
                    ));
                    None
                }
                None => {
                    errors.push(FieldError::new(
                        "overlap_secs",
                        "overlap_secs must be a whole number of seconds: 0 revokes the old key at once; leave it out to keep the old key until it is revoked",
                    ));
                    None
                }
            },
        };
        let until_first_use = first_use_body::parse(&object, &mut errors);
        let end_given = object.contains_key("overlap_secs") || until_first_use.is_some();
        let known: Vec<&str> = ROTATE_FIELDS
            .iter()
            .chain(first_use_body::FIELDS)
            .copied()
            .collect();
        unknown_fields(&object, &known, &mut errors);
        if errors.is_empty() {
            Ok(Self {
                overlap,
                until_first_use,
                end_given,
            })
        } else {
            Err(AdminError::Invalid(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use tower_apikey::InMemoryKeyStore;
    use tower_apikey::testing::ManualClock;

    fn manager() -> KeyManager<InMemoryKeyStore> {
        // 2026-05-01T12:00:00Z
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_777_636_800));
        KeyManager::builder(InMemoryKeyStore::new())
            .clock(clock)
            .build()
    }

    fn object(json: serde_json::Value) -> Object {
        match json {
            Value::Object(object) => object,
            _ => unreachable!("tests pass objects"),
        }
    }

    fn fields(error: AdminError) -> Vec<String> {
        match error {
            AdminError::Invalid(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected invalid fields, got {other:?}"),
        }
    }

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
    fn a_valid_create_request_is_accepted() {
        let request = CreateRequest::parse(
            object(serde_json::json!({
                "name": "billing-sync",
                "scopes": ["reports:read"],
                "expires_at": "2026-06-01T00:00:00+02:00",
            })),
            &manager(),
        )
        .unwrap();
        assert_eq!(request.name.as_str(), "billing-sync");
        assert_eq!(request.scopes.to_string(), "reports:read");
        assert_eq!(
            request.expires_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_264_800))
        );
    }

    #[test]
    fn every_invalid_create_field_is_named_at_once() {
        let error = CreateRequest::parse(
            object(serde_json::json!({
                "name": "",
                "scopes": ["Reports"],
                "expires_at": "2020-01-01T00:00:00Z",
                "expires": "tomorrow",
            })),
            &manager(),
        )
        .unwrap_err();
        assert_eq!(fields(error), ["name", "scopes", "expires_at", "expires"]);
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
    fn at_most_twenty_unknown_fields_are_listed_with_short_names() {
        let mut body = serde_json::Map::new();
        body.insert("name".into(), "n".into());
        body.insert("scopes".into(), serde_json::json!([]));
        for i in 0..500 {
            body.insert(format!("{i:03}{}", "x".repeat(100)), Value::Null);
        }
        let error = CreateRequest::parse(body, &manager()).unwrap_err();
        let AdminError::Invalid(errors) = error else {
            panic!("expected invalid fields");
        };
        assert_eq!(errors.len(), MAX_LISTED_FIELDS);
        assert!(
            errors
                .iter()
                .all(|e| e.field.chars().count() <= MAX_SHOWN_NAME_CHARS + 1)
        );
        assert!(errors[0].field.ends_with('…'));
        assert!(
            errors
                .last()
                .unwrap()
                .detail
                .contains("480 more such fields are not listed"),
            "{:?}",
            errors.last()
        );
    }

    #[test]
    fn missing_and_mistyped_create_fields_are_named() {
        let m = manager();
        assert_eq!(
            fields(CreateRequest::parse(object(serde_json::json!({})), &m).unwrap_err()),
            ["name", "scopes"]
        );
        assert_eq!(
            fields(
                CreateRequest::parse(
                    object(
                        serde_json::json!({"name": 7, "scopes": "reports:read", "expires_at": 5})
                    ),
                    &m
                )
                .unwrap_err()
            ),
            ["name", "scopes", "expires_at"]
        );
        assert_eq!(
            fields(
                CreateRequest::parse(
                    object(serde_json::json!({"name": "n", "scopes": ["a:b", 3]})),
                    &m
                )
                .unwrap_err()
            ),
            ["scopes"]
        );
    }

    #[test]
    fn expires_at_beyond_365_days_or_not_rfc3339_is_refused() {
        let m = manager();
        for bad in ["2027-05-01T12:00:01Z", "2026-05-01", "next week"] {
            let error = CreateRequest::parse(
                object(serde_json::json!({"name": "n", "scopes": [], "expires_at": bad})),
                &m,
            )
            .unwrap_err();
            assert_eq!(fields(error), ["expires_at"], "{bad}");
        }
        // Exactly 365 days is the maximum, and allowed.
        CreateRequest::parse(
            object(serde_json::json!({"name": "n", "scopes": [], "expires_at": "2027-05-01T12:00:00Z"})),
            &m,
        )
        .unwrap();
    }

    #[test]
    fn rotate_overlap_is_optional_whole_and_bounded() {
        let parse = |json| RotateRequest::parse(object(json));
        assert_eq!(parse(serde_json::json!({})).unwrap().overlap, None);
        assert_eq!(
            parse(serde_json::json!({"overlap_secs": null}))
                .unwrap()
                .overlap,
            None
        );
        assert_eq!(
            parse(serde_json::json!({"overlap_secs": 0}))
                .unwrap()
                .overlap,
            Some(Duration::ZERO)
        );
        // Found by Schemathesis: JSON Schema's `integer` includes `60.0`.
        assert_eq!(
            parse(serde_json::json!({"overlap_secs": 60.0, "until_first_use": false}))
                .unwrap()
                .overlap,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse(serde_json::json!({"until_first_use": true, "grace_secs": 6e1}))
                .unwrap()
                .until_first_use,
            Some(Duration::from_secs(60))
        );
        for bad in [
            serde_json::json!({"overlap_secs": -1}),
            serde_json::json!({"overlap_secs": -1.0}),
            serde_json::json!({"overlap_secs": 1e300}),
            serde_json::json!({"overlap_secs": 1.5}),
            serde_json::json!({"overlap_secs": "60"}),
            serde_json::json!({"overlap_secs": u64::MAX}),
        ] {
            assert_eq!(
                fields(parse(bad.clone()).unwrap_err()),
                ["overlap_secs"],
                "{bad}"
            );
        }
        assert_eq!(
            fields(parse(serde_json::json!({"overlap": 60})).unwrap_err()),
            ["overlap"]
        );
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

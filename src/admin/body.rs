//! Reading and checking the admin router's JSON request bodies.
//!
//! Bodies are read into a `serde_json` object and checked field by field rather than
//! derived, so that one answer can name *every* missing, unknown, mistyped or invalid
//! field, each under its own name.

use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::MAX_OVERLAP;
use super::problem::{AdminError, FieldError};
use crate::{KeyManager, KeyName, KeyStoreAdmin, Scopes};

type Object = Map<String, Value>;

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
        Value::Object(object) => Ok(object),
        _ => Err(AdminError::NotAnObject),
    }
}

/// Unknown fields, named one by one.
fn unknown_fields(object: &Object, known: &[&str], errors: &mut Vec<FieldError>) {
    for field in object.keys().filter(|f| !known.contains(&f.as_str())) {
        errors.push(FieldError::new(
            field.as_str(),
            format!("unknown field; the fields are {}", known.join(", ")),
        ));
    }
}

/// A checked create request: `{"name", "scopes", "expires_at"?}`.
#[derive(Debug)]
pub(super) struct CreateRequest {
    pub(super) name: String,
    pub(super) scopes: Vec<String>,
    pub(super) expires_at: Option<SystemTime>,
}

impl CreateRequest {
    const FIELDS: &[&str] = &["name", "scopes", "expires_at"];

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
                Ok(_) => Some(name.clone()),
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
                        Ok(_) => Some(strings),
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

        unknown_fields(&object, Self::FIELDS, &mut errors);
        match (name, scopes, expires_at) {
            (Some(name), Some(scopes), Some(expires_at)) if errors.is_empty() => Ok(Self {
                name,
                scopes,
                expires_at,
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

/// A checked rotate request: `{"overlap_secs"?}`.
#[derive(Debug)]
pub(super) struct RotateRequest {
    /// `None`: the old key keeps working until revoked.
    pub(super) overlap: Option<Duration>,
}

impl RotateRequest {
    const FIELDS: &[&str] = &["overlap_secs"];

    pub(super) fn parse(object: Object) -> Result<Self, AdminError> {
        let mut errors = Vec::new();
        let overlap = match object.get("overlap_secs") {
            None | Some(Value::Null) => None,
            Some(value) => match value.as_u64() {
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
        unknown_fields(&object, Self::FIELDS, &mut errors);
        if errors.is_empty() {
            Ok(Self { overlap })
        } else {
            Err(AdminError::Invalid(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryKeyStore, ManualClock};
    use axum::http::HeaderValue;

    fn manager() -> KeyManager<InMemoryKeyStore> {
        // 2026-05-01T12:00:00Z
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_777_636_800));
        KeyManager::new(InMemoryKeyStore::new()).with_clock(clock)
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
        assert_eq!(request.name, "billing-sync");
        assert_eq!(request.scopes, ["reports:read"]);
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
        for bad in [
            serde_json::json!({"overlap_secs": -1}),
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

//! The body of `PATCH /keys/{id}`: `{"name"?, "rate_limit"?, "quota"?, "allowed_ips"?}`.
//!
//! A field left out stays as it is; `null` removes a limit (a name cannot be removed).
//! Scopes cannot be patched: a key's scopes are what it was created (and granted) with,
//! so a change of scopes is a new key (rotate, or create and revoke).

use serde_json::Value;

use super::body::{Object, unknown_fields};
use super::limits_body;
use super::problem::{AdminError, FieldError};
use tower_apikey::record::KeyName;
use tower_apikey::store::KeyUpdate;

/// The fields a PATCH may carry.
pub(super) const FIELDS: &[&str] = &["name", "rate_limit", "quota", "allowed_ips"];

/// Checks every field of a PATCH body and reports every problem at once.
pub(super) fn parse(object: &Object) -> Result<KeyUpdate, AdminError> {
    let mut errors = Vec::new();
    let mut update = KeyUpdate::new();

    match object.get("name") {
        None => {}
        Some(Value::String(name)) => match KeyName::new(name) {
            Ok(name) => update = update.name(name),
            Err(error) => errors.push(FieldError::name(&error)),
        },
        Some(Value::Null) => errors.push(FieldError::new(
            "name",
            "name cannot be removed; send a new name, or leave name out to keep it",
        )),
        Some(_) => errors.push(FieldError::new("name", "name must be a string")),
    }

    // Present, even as `null`, means "change". An invalid value also parses as `None`,
    // but then it adds an error and nothing is stored.
    if let Some(value) = object.get("rate_limit") {
        let limit = limits_body::rate_limit(Some(value), &mut errors);
        update = update.rate_limit(limit);
    }
    if let Some(value) = object.get("quota") {
        let quota = limits_body::quota(Some(value), &mut errors);
        update = update.quota(quota);
    }
    if let Some(value) = object.get("allowed_ips") {
        let ips = limits_body::allowed_ips(Some(value), &mut errors);
        update = update.allowed_ips(ips);
    }

    if object.contains_key("scopes") {
        errors.push(FieldError::new(
            "scopes",
            "scopes cannot be changed: a key keeps the scopes it was created with; \
             create a key with the new scopes (or rotate for the same ones) and revoke \
             this one",
        ));
    }
    let known: Vec<&str> = FIELDS.iter().copied().chain(["scopes"]).collect();
    unknown_fields(object, &known, &mut errors);
    if errors.is_empty() {
        Ok(update)
    } else {
        Err(AdminError::Invalid(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_apikey::record::{Quota, QuotaPeriod, RateLimit};

    fn object(json: Value) -> Object {
        match json {
            Value::Object(object) => object,
            _ => unreachable!("tests pass objects"),
        }
    }

    fn fields(json: Value) -> Vec<String> {
        match parse(&object(json)) {
            Err(AdminError::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected invalid fields, got {other:?}"),
        }
    }

    #[test]
    fn absent_fields_stay_null_clears_and_values_set() {
        let update = parse(&object(serde_json::json!({
            "name": "renamed",
            "rate_limit": null,
            "quota": {"requests": 10, "per": "day"},
        })))
        .unwrap();
        assert_eq!(update.name_change().unwrap().as_str(), "renamed");
        assert_eq!(update.rate_limit_change(), Some(None), "null clears");
        assert_eq!(
            update.quota_change(),
            Some(Some(Quota::new(10, QuotaPeriod::Day).unwrap()))
        );
        assert!(update.allowed_ips_change().is_none(), "absent stays");
        let update = parse(&object(serde_json::json!({
            "rate_limit": {"requests": 5, "per_secs": 1},
            "allowed_ips": ["192.0.2.1"],
        })))
        .unwrap();
        assert_eq!(
            update.rate_limit_change(),
            Some(Some(RateLimit::new(5, 1).unwrap()))
        );
        assert!(update.name_change().is_none());
        assert!(parse(&object(serde_json::json!({}))).unwrap().is_empty());
    }

    #[test]
    fn every_bad_field_is_named_and_scopes_cannot_be_patched() {
        assert_eq!(
            fields(serde_json::json!({
                "name": null,
                "rate_limit": {"requests": 0, "per_secs": 1},
                "quota": {"requests": 1, "per": "week"},
                "allowed_ips": [],
                "scopes": ["admin:keys"],
                "expires_at": "2030-01-01T00:00:00Z",
            })),
            [
                "name",
                "rate_limit.requests",
                "quota.per",
                "allowed_ips",
                "scopes",
                "expires_at"
            ]
        );
        assert_eq!(fields(serde_json::json!({"name": 7})), ["name"]);
        assert_eq!(fields(serde_json::json!({"nmae": "x"})), ["nmae"]);
    }
}

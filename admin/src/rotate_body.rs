//! The rotate body, declared once (`POST /keys/{id}/rotate`, `POST /self/rotate`):
//! either a fixed end for the old key, or an end after the new key's first use
//! (DESIGN §11).
//!
//! ```text
//! {"overlap_secs": 60}                           // 0 revokes at once; null keeps it
//! {"until_first_use": true, "grace_secs": 300}   // grace_secs optional, at most 7 days
//! ```
//!
//! [`RotateBody`] is both the OpenAPI schema (`oneOf` the two ends, derived) and what
//! the handlers read, filled by the [`wire`] pass. `overlap_secs` with
//! `until_first_use` is refused, since the two say different things about when the old
//! key ends.

use std::time::Duration;

use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::Schema;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};

use super::MAX_OVERLAP;
use super::json::{Object, whole_number};
use super::problem::{AdminError, FieldError};
use super::wire::{self, At, Change, Context, Field, Fields, Wire};
use tower_apikey::manager::{DEFAULT_FIRST_USE_GRACE, MAX_FIRST_USE_GRACE, OldKeyPlan};

/// The rotate body: one of the two ways the old key may end.
#[derive(Debug, ToSchema)]
#[serde(untagged)]
pub(super) enum RotateBody {
    /// A fixed end, or none.
    Overlap(OverlapEnd),
    /// An end after the new key's first use.
    UntilFirstUse(FirstUseEnd),
}

/// The old key ends at a fixed time, or is kept until revoked.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(title = "Overlap")]
pub(super) struct OverlapEnd {
    /// End the old key this many seconds from now; `0` revokes it at once (a leaked key).
    /// Left out or `null`: it keeps working until revoked
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 31_536_000, required = false)]
    overlap_secs: Change<Overlap>,
    #[serde(rename = "until_first_use")]
    #[schema(schema_with = false_or_null, required = false)]
    _until_first_use: (),
    #[serde(rename = "grace_secs")]
    #[schema(schema_with = null, required = false)]
    _grace_secs: (),
}

/// The old key ends `grace_secs` after the new key's first use.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(title = "UntilFirstUse")]
pub(super) struct FirstUseEnd {
    #[serde(rename = "until_first_use")]
    #[schema(schema_with = always_true)]
    _until_first_use: (),
    /// Seconds of grace, at most 7 days; default 300
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 604_800)]
    grace_secs: Option<Grace>,
    #[serde(rename = "overlap_secs")]
    #[schema(schema_with = null, required = false)]
    _overlap_secs: (),
}

// The schema's bounds are the parsers' own.
const _: () = {
    assert!(MAX_OVERLAP.as_secs() == 31_536_000);
    assert!(MAX_FIRST_USE_GRACE.as_secs() == 604_800);
};

impl Wire for RotateBody {
    fn fill(fields: &mut Fields<'_>) -> Option<Self> {
        let overlap = fields.read::<Change<Overlap>>("overlap_secs");
        let wanted = fields.read::<Option<UntilFirstUse>>("until_first_use");
        let grace = fields.read::<Option<Grace>>("grace_secs");
        // The two ends exclude each other: checked on the fields that were read.
        let first_use = matches!(wanted, Some(Some(UntilFirstUse(true))));
        if wanted.is_some() && !first_use && matches!(grace, Some(Some(_))) {
            fields.refuse(FieldError::new(
                "grace_secs",
                "grace_secs applies only with \"until_first_use\": true; add it, or leave \
                 grace_secs out",
            ));
            return None;
        }
        if first_use && matches!(overlap, Some(Change(Some(Some(_))))) {
            fields.refuse(FieldError::new(
                "until_first_use",
                "until_first_use and overlap_secs cannot be combined: send until_first_use \
                 (with grace_secs) to end the old key after the new key's first use, or \
                 overlap_secs to end it at a fixed time",
            ));
            return None;
        }
        let (overlap, grace) = (overlap?, grace?);
        if !first_use {
            wanted?;
            return Some(Self::Overlap(OverlapEnd {
                overlap_secs: overlap,
                _until_first_use: (),
                _grace_secs: (),
            }));
        }
        Some(Self::UntilFirstUse(FirstUseEnd {
            _until_first_use: (),
            grace_secs: grace,
            _overlap_secs: (),
        }))
    }
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
        Ok(
            match wire::fill::<RotateBody>(&object, Context::default())? {
                RotateBody::Overlap(OverlapEnd { overlap_secs, .. }) => Self {
                    end_given: overlap_secs.0.is_some(),
                    overlap: overlap_secs.0.flatten().map(|o| o.0),
                    until_first_use: None,
                },
                RotateBody::UntilFirstUse(FirstUseEnd { grace_secs, .. }) => Self {
                    overlap: None,
                    until_first_use: Some(grace_secs.map_or(DEFAULT_FIRST_USE_GRACE, |g| g.0)),
                    end_given: true,
                },
            },
        )
    }
}

/// `overlap_secs`: whole seconds, at most 365 days.
#[derive(Debug)]
pub(super) struct Overlap(Duration);

impl Field for Overlap {
    fn read(value: &Value, at: &mut At<'_>) -> Option<Self> {
        let max = MAX_OVERLAP.as_secs();
        let too_long = format!("overlap_secs is at most {max} (365 days), the longest a key lives");
        let not_whole = "overlap_secs must be a whole number of seconds: 0 revokes the old key at once; leave it out to keep the old key until it is revoked";
        seconds(value, at, max, too_long, not_whole).map(Self)
    }
}

/// `grace_secs`: whole seconds, at most 7 days.
#[derive(Debug)]
pub(super) struct Grace(Duration);

impl Field for Grace {
    fn read(value: &Value, at: &mut At<'_>) -> Option<Self> {
        let max = MAX_FIRST_USE_GRACE.as_secs();
        let too_long = format!(
            "grace_secs is at most {max} (7 days): the old key should not outlive the new key's \
             first use by longer"
        );
        let not_whole = "grace_secs must be a whole number of seconds, such as 300";
        seconds(value, at, max, too_long, not_whole).map(Self)
    }
}

/// A whole number of seconds up to `max`, refused as `too_long` beyond it and as
/// `not_whole` when it is not one.
fn seconds(
    value: &Value,
    at: &mut At<'_>,
    max: u64,
    too_long: String,
    not_whole: &str,
) -> Option<Duration> {
    match whole_number(value) {
        Some(secs) if secs <= max => Some(Duration::from_secs(secs)),
        Some(_) => at.refuse(too_long),
        None => at.refuse(not_whole),
    }
}

/// `until_first_use`: `true` or `false`.
#[derive(Debug, Clone, Copy)]
pub(super) struct UntilFirstUse(bool);

impl Field for UntilFirstUse {
    fn read(value: &Value, at: &mut At<'_>) -> Option<Self> {
        match value {
            Value::Bool(wanted) => Some(Self(*wanted)),
            _ => at.refuse(
                "until_first_use must be true (end the old key after the new key's first use) \
                 or false",
            ),
        }
    }
}

/// A member the other end leaves out: `null` at most.
fn null() -> Schema {
    ObjectBuilder::new().schema_type(Type::Null).into()
}

fn false_or_null() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Boolean, Type::Null]))
        .enum_values(Some([Value::Bool(false), Value::Null]))
        .into()
}

fn always_true() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([true]))
        .description(Some(
            "End the old key `grace_secs` after the new key's first proven use (409 where no \
             usage tracker writes the store)",
        ))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::testing::{fields, object};

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
}

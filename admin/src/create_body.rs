//! `POST /keys`'s body, declared once: `{"name", "scopes", "expires_at"?}` and the
//! optional limits (`rate_limit`, `quota`, `allowed_ips`, see [`limits_body`](super::limits_body)).
//!
//! [`CreateKeyBody`] is both the OpenAPI schema (derived) and what the handler reads,
//! filled by the [`wire`] pass. The name and scope rules a schema states
//! are built from the core's own: `KeyName::HIDDEN_CHARACTERS` and
//! `tower_apikey::scope::SCOPE_PATTERN`.

use std::time::SystemTime;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

use super::json::Object;
use super::limits_body::IpNetwork;
use super::problem::{AdminError, FieldError};
use super::view::{QuotaView, RateLimitView};
use super::wire::{self, At, Context, Field, Required, wire_struct};
use tower_apikey::KeyManager;
use tower_apikey::KeyStoreAdmin;
use tower_apikey::NewKey;
use tower_apikey::Scopes;
use tower_apikey::record::{AllowedIps, KeyName, MAX_NAME_CHARS, Quota, RateLimit, TenantId};
use tower_apikey::scope::{MAX_SCOPE_LEN, MAX_SCOPES, SCOPE_PATTERN};

wire_struct! {
    /// `POST /keys`'s body.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct CreateKeyBody {
        #[schema(schema_with = name_schema)]
        pub(super) name: Required<KeyName>,
        #[schema(schema_with = scopes_schema)]
        pub(super) scopes: Required<Scopes>,
        /// RFC 3339, any offset: in the future, at most 365 days ahead (422 otherwise).
        /// Left out or `null`: the 365-day maximum
        #[schema(value_type = Option<String>, format = DateTime)]
        pub(super) expires_at: Option<SystemTime>,
        /// `requests` per `per_secs` seconds (GCRA, burst `requests`); `null` for none. No
        /// looser than the acting key's own, if it has one (403, `too_loose`)
        #[schema(value_type = Option<RateLimitView>)]
        pub(super) rate_limit: Option<RateLimit>,
        /// `requests` per UTC calendar day or month; `null` for none. No looser than the
        /// acting key's own, if it has one (403, `too_loose`)
        #[schema(value_type = Option<QuotaView>)]
        pub(super) quota: Option<Quota>,
        /// The addresses and CIDR networks the key is accepted from (1 to 64); `null` for
        /// any. Inside the acting key's own, if it has one (403, `too_loose`)
        #[schema(value_type = Option<Vec<IpNetwork>>, min_items = 1, max_items = 64)]
        pub(super) allowed_ips: Option<AllowedIps>,
        /// The tenant the key belongs to (DESIGN §14): 1 to 64 of `A-Z a-z 0-9 . _ : -`.
        /// Left out: the acting actor's own tenant (none for an operator). An actor of one
        /// tenant naming another is refused (403)
        #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9._:-]{1,64}$")]
        pub(super) tenant: Option<TenantId>,
    }
}

impl CreateKeyBody {
    /// Checks every field, with the manager's clock for `expires_at`, and reports every
    /// problem at once.
    pub(super) fn parse<S: KeyStoreAdmin>(
        object: Object,
        manager: &KeyManager<S>,
    ) -> Result<Self, AdminError> {
        let expiry = |at| manager.check_expires_at(at);
        wire::fill(
            &object,
            Context {
                expiry: Some(&expiry),
            },
        )
    }

    /// The key this body asks for.
    pub(super) fn into_new_key(self) -> NewKey {
        let mut new = NewKey::from_parts(self.name.0, self.scopes.0);
        if let Some(at) = self.expires_at {
            new = new.expires_at(at);
        }
        if let Some(limit) = self.rate_limit {
            new = new.rate_limit(limit);
        }
        if let Some(quota) = self.quota {
            new = new.quota(quota);
        }
        if let Some(ips) = self.allowed_ips {
            new = new.allowed_ips(ips);
        }
        if let Some(tenant) = self.tenant {
            new = new.tenant(tenant);
        }
        new
    }
}

impl Field for KeyName {
    const REQUIRED: &'static str = "what uses the key, such as \"billing-sync (prod)\"";

    fn read(value: &Value, at: &mut At<'_>) -> Option<Self> {
        match value {
            Value::String(name) => at.checked(KeyName::new(name), FieldError::name),
            _ => at.refuse(format!("{} must be a string", at.field)),
        }
    }
}

impl Field for Scopes {
    const REQUIRED: &'static str =
        "an array such as [\"reports:read\"], or [] for a key that only authenticates";

    fn read(value: &Value, at: &mut At<'_>) -> Option<Self> {
        let strings: Option<Vec<&str>> = match value {
            Value::Array(items) => items.iter().map(Value::as_str).collect(),
            _ => None,
        };
        match strings {
            Some(strings) => at.checked(Scopes::new(&strings), FieldError::scopes),
            None => at.refuse(format!("{} must be an array of strings", at.field)),
        }
    }
}

impl Field for TenantId {
    fn read(value: &Value, at: &mut At<'_>) -> Option<Self> {
        match value {
            Value::String(tenant) => match TenantId::new(tenant) {
                Ok(tenant) => Some(tenant),
                Err(error) => at.refuse(error.to_string()),
            },
            _ => at.refuse(format!("{} must be a string", at.field)),
        }
    }
}

/// `expires_at`: an RFC 3339 time, checked against the manager's expiry rule.
impl Field for SystemTime {
    fn read(value: &Value, at: &mut At<'_>) -> Option<Self> {
        let Some(Ok(time)) = value
            .as_str()
            .map(|text| OffsetDateTime::parse(text, &Rfc3339))
        else {
            return at.push(not_rfc3339());
        };
        // RFC 3339 years are 0000–9999, which a `SystemTime` always holds.
        let time = SystemTime::from(time);
        match at.cx.expiry {
            Some(check) => at.checked(check(time), FieldError::expires_at),
            None => Some(time),
        }
    }
}

fn not_rfc3339() -> FieldError {
    FieldError::new(
        "expires_at",
        "expires_at must be an RFC 3339 time such as \"2026-12-31T00:00:00Z\", or left out for the 365-day maximum",
    )
}

/// `name`'s schema: the rule of `KeyName::new` (see [`name_pattern`]).
pub(super) fn name_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_CHARS))
        .pattern(Some(name_pattern()))
        .description(Some(
            "What uses the key, such as `billing-sync (prod)`: 1 to 128 characters, no control \
             characters, no invisible or text-reordering characters, no white space at either end",
        ))
        .into()
}

/// `scopes`' schema: the core's scope grammar (a catalogue replaces the items with its
/// `enum` when the document is served).
fn scopes_schema() -> Schema {
    let item = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_SCOPE_LEN))
        .pattern(Some(SCOPE_PATTERN));
    ArrayBuilder::new()
        .items(RefOr::T(Schema::Object(item.build())))
        .description(Some(format!(
            "The scopes the key holds (at most {MAX_SCOPES} distinct); `[]` for a key that only \
             authenticates. Each must be one the acting key's scopes grant (403 otherwise) and, \
             with a catalogue, one it declares (422)"
        )))
        .into()
}

/// The name rule of `KeyName::new` as a pattern: no control or hidden character
/// anywhere, no white space at either end. Python's and ECMAScript's regular
/// expressions both read `\uXXXX`; code points beyond the BMP are written as themselves.
fn name_pattern() -> String {
    fn escaped(out: &mut String, c: char) {
        if (c as u32) < 0x10000 {
            out.push_str(&format!("\\u{:04X}", c as u32));
        } else {
            out.push(c);
        }
    }
    fn class_item(out: &mut String, (low, high): (char, char)) {
        escaped(out, low);
        if high != low {
            out.push('-');
            escaped(out, high);
        }
    }
    // `char::is_control` (Cc), then the hidden characters' table.
    let mut refused = String::new();
    for range in [('\u{0000}', '\u{001F}'), ('\u{007F}', '\u{009F}')]
        .into_iter()
        .chain(KeyName::HIDDEN_CHARACTERS.iter().copied())
    {
        class_item(&mut refused, range);
    }
    // White space (Unicode White_Space, as `str::trim` reads it) that is neither a
    // control nor hidden, so not already refused everywhere.
    let mut spaces = String::new();
    for range in [
        (' ', ' '),
        ('\u{00A0}', '\u{00A0}'),
        ('\u{1680}', '\u{1680}'),
        ('\u{2000}', '\u{200A}'),
        ('\u{202F}', '\u{202F}'),
        ('\u{205F}', '\u{205F}'),
        ('\u{3000}', '\u{3000}'),
    ] {
        class_item(&mut spaces, range);
    }
    format!("^[^{refused}{spaces}](?:[^{refused}]*[^{refused}{spaces}])?$")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::testing::{fields, object};
    use crate::json::{MAX_LISTED_FIELDS, MAX_SHOWN_NAME_CHARS};
    use std::time::Duration;
    use tower_apikey::InMemoryKeyStore;
    use tower_apikey::testing::ManualClock;

    fn manager() -> KeyManager<InMemoryKeyStore> {
        // 2026-05-01T12:00:00Z
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_777_636_800));
        KeyManager::builder(InMemoryKeyStore::new())
            .clock(clock)
            .build()
    }

    /// A create body, checked at the manager's clock.
    fn create(json: serde_json::Value) -> Result<CreateKeyBody, AdminError> {
        CreateKeyBody::parse(object(json), &manager())
    }

    #[test]
    fn a_valid_create_request_is_accepted() {
        let request = create(serde_json::json!({
            "name": "billing-sync",
            "scopes": ["reports:read"],
            "expires_at": "2026-06-01T00:00:00+02:00",
        }))
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
        let error = create(serde_json::json!({
            "name": "",
            "scopes": ["Reports"],
            "expires_at": "2020-01-01T00:00:00Z",
            "expires": "tomorrow",
        }))
        .unwrap_err();
        assert_eq!(fields(error), ["name", "scopes", "expires_at", "expires"]);
    }

    #[test]
    fn at_most_twenty_unknown_fields_are_listed_with_short_names() {
        let mut body = serde_json::Map::new();
        body.insert("name".into(), "n".into());
        body.insert("scopes".into(), serde_json::json!([]));
        for i in 0..500 {
            body.insert(format!("{i:03}{}", "x".repeat(100)), Value::Null);
        }
        let error = CreateKeyBody::parse(body, &manager()).unwrap_err();
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
            fields(CreateKeyBody::parse(object(serde_json::json!({})), &m).unwrap_err()),
            ["name", "scopes"]
        );
        assert_eq!(
            fields(
                CreateKeyBody::parse(
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
                CreateKeyBody::parse(
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
            let error = CreateKeyBody::parse(
                object(serde_json::json!({"name": "n", "scopes": [], "expires_at": bad})),
                &m,
            )
            .unwrap_err();
            assert_eq!(fields(error), ["expires_at"], "{bad}");
        }
        // Exactly 365 days is the maximum, and allowed.
        CreateKeyBody::parse(
            object(serde_json::json!({"name": "n", "scopes": [], "expires_at": "2027-05-01T12:00:00Z"})),
            &m,
        )
        .unwrap();
    }

    #[test]
    fn the_name_pattern_agrees_with_the_name_rule() {
        // The pattern is for other tools; Rust has no regex here, so check its shape and
        // that it names each refused range.
        let pattern = name_pattern();
        assert!(
            pattern.starts_with("^[^\\u0000-\\u001F\\u007F-\\u009F\\u00AD"),
            "{pattern}"
        );
        assert!(pattern.contains("\\u202A-\\u202E"));
        assert!(pattern.contains('\u{E0000}'));
        assert!(pattern.ends_with("])?$"));
    }
}

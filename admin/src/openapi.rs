//! `GET /openapi.json`: an OpenAPI 3.1 document of the admin router (DESIGN §13).
//!
//! It is generated from the code, in three parts that cannot drift apart:
//!
//! - each handler carries its own `#[utoipa::path]` (method, path, parameters, body,
//!   success answer), and the router registers every route through [`Documented`],
//!   which takes the path and methods from that same attribute: a route is served
//!   where, and only where, its documentation says;
//! - the answers' schemas are derived (`ToSchema`) from the serde views the handlers
//!   serialise ([`KeyView`](super::view::KeyView) and the rest);
//! - the request bodies are parsed by hand, field by field, so that one 422 names
//!   every bad field; their schemas are written here, beside the parsers' field lists,
//!   and a test compares the two. The name and scope rules are written as patterns
//!   built from the same tables the parsers use.
//!
//! The refusals each operation can answer (problem documents) are in one table,
//! [`PROBLEMS`], and the guard's own (401, 403, 429, 503) are added to every operation
//! that needs a key. Rules a schema cannot state (an `expires_at` in the future and at
//! most 365 days ahead, a scope the actor may grant, a cursor made for this `sort`,
//! a key that may still be rotated) are described, and their 422, 403 or 409 listed.
//!
//! The document is built once per router, when [`AdminRouter::into_router`](super::AdminRouter::into_router)
//! runs (with the router's scope catalogue as the scopes' `enum`), not per request.

use std::sync::LazyLock;

use axum::Router;
use axum::body::Bytes;
use axum::handler::Handler;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use serde_json::{Map, Value, json};
use utoipa::openapi::HttpMethod;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{IntoParams, OpenApi, PartialSchema, ToSchema};

use super::MAX_OVERLAP;
#[cfg(test)]
use super::{first_use_body, limits_body, patch_body};
use tower_apikey::manager::{MAX_FIRST_USE_GRACE, MAX_LIFETIME, ScopeCatalogue};
use tower_apikey::record::{KeyName, MAX_ALLOWED_IPS, MAX_NAME_CHARS, MAX_RATE_WINDOW_SECS};
use tower_apikey::scope::{MAX_SCOPE_LEN, MAX_SCOPES};
use tower_apikey::store::{KeyFilter, MAX_SEARCH_CHARS};
use tower_apikey::store::{MAX_CURSOR_CHARS, MAX_PAGE_LIMIT};

/// The security scheme's name in the document.
const SCHEME: &str = "ApiKeyV2";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tower-apikey admin API",
        description = "Key management for ApiKey-v2 API keys. Paths are relative to where the \
            application mounts the admin router (the demo: `/admin`). Every error is an RFC 9457 \
            problem document (`application/problem+json`) whose `detail` says what to do; \
            nothing is stored when a request fails.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        super::create,
        super::list::list,
        super::show,
        super::update,
        super::revoke,
        super::heirs::heirs,
        super::rotate,
        super::self_rotate::rotate_self,
        super::scopes,
        super::events::list,
        super::events::of_key,
        super::events::usage,
        openapi_json,
        super::panel::page,
        super::panel::script,
        super::panel::style,
        super::panel::history,
        super::panel::limits,
    ),
    components(schemas(Problem, FieldProblem)),
    tags(
        (name = "keys", description = "Create, list, change, rotate and revoke keys"),
        (name = "events", description = "The audit trail and usage counts"),
        (name = "meta", description = "This document"),
        (name = "panel", description = "The key-management page for people and its assets"),
    ),
)]
struct AdminApi;

/// The document without a router's particulars, as JSON: built on first use.
static BASE: LazyLock<Value> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(AdminApi::openapi()).expect("an OpenAPI document is JSON");
    finish(&mut doc);
    doc
});

/// The document of a router whose manager declares `catalogue` (if any), serialised
/// once: the scopes a key may be given are then the catalogue's.
pub(super) fn document(catalogue: Option<&ScopeCatalogue>) -> Bytes {
    let mut doc = BASE.clone();
    if let Some(catalogue) = catalogue {
        let declared: Vec<Value> = catalogue
            .iter()
            .map(|entry| Value::from(entry.scope().as_str()))
            .collect();
        let items =
            &mut doc["components"]["schemas"]["CreateKeyBody"]["properties"]["scopes"]["items"];
        *items = json!({
            "type": "string",
            "enum": declared,
            "description": "A scope the application declares (GET /scopes lists them)",
        });
    }
    Bytes::from(serde_json::to_vec(&doc).expect("a JSON value serialises"))
}

/// `GET /openapi.json`
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApi",
    tag = "meta",
    summary = "This document: OpenAPI 3.1",
    description = "Behind the same guard as the API it describes: it names no key, but it maps \
        a key-management endpoint, which is nobody's business without a key. An application \
        that wants it public serves `AdminRouter::openapi_json` on a route of its own.",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object,
        content_type = "application/json")),
)]
pub(super) fn openapi_json(document: Bytes) -> Response {
    let mut response = document.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Routes registered with the path and methods their `#[utoipa::path]` documents, so
/// that the router serves exactly what the document describes.
pub(super) struct Documented<S> {
    router: Router<S>,
    served: Vec<(String, HttpMethod)>,
}

impl<S: Clone + Send + Sync + 'static> Documented<S> {
    pub(super) fn new() -> Self {
        Self {
            router: Router::new(),
            served: Vec::new(),
        }
    }

    /// Serves `handler` where `P` (the `__path_…` type `#[utoipa::path]` writes) says.
    pub(super) fn route<P, H, T>(mut self, _documented: P, handler: H) -> Self
    where
        P: utoipa::Path,
        H: Handler<T, S>,
        T: 'static,
    {
        let path = P::path();
        let mut filter: Option<MethodFilter> = None;
        for method in P::methods() {
            let one = method_filter(&method);
            filter = Some(filter.map_or(one, |f| f.or(one)));
            self.served.push((path.clone(), method));
        }
        let filter = filter.expect("`#[utoipa::path]` names a method");
        self.router = self.router.route(&path, on(filter, handler));
        self
    }

    /// Adds the routes of `other`.
    pub(super) fn merge(mut self, other: Self) -> Self {
        self.router = self.router.merge(other.router);
        self.served.extend(other.served);
        self
    }

    /// Applies `f` to the router (layers), keeping what it serves.
    pub(super) fn map(mut self, f: impl FnOnce(Router<S>) -> Router<S>) -> Self {
        self.router = f(self.router);
        self
    }

    /// The router, and the `(path, method)` pairs it serves.
    pub(super) fn into_parts(self) -> (Router<S>, Vec<(String, HttpMethod)>) {
        (self.router, self.served)
    }
}

fn method_filter(method: &HttpMethod) -> MethodFilter {
    match method {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Delete => MethodFilter::DELETE,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Head => MethodFilter::HEAD,
        HttpMethod::Options => MethodFilter::OPTIONS,
        HttpMethod::Trace => MethodFilter::TRACE,
    }
}

// ---- parameters -----------------------------------------------------------------------

/// The key id in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only its description is used; the handlers read the path themselves.
pub(super) struct KeyIdParam {
    /// The key's id: 16 base62 characters. Anything else names no key (404).
    #[param(pattern = "^[0-9A-Za-z]{16}$")]
    id: String,
}

/// `limit` and `cursor`, as every list takes them.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only its description is used; the handlers read the query themselves.
pub(super) struct PageParams {
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where the page starts: the value a `Link` gave; opaque. Anything else is 422.
    #[param(min_length = 1, max_length = 256, pattern = "^[0-9A-Za-z_.-]+$")]
    cursor: Option<String>,
}

/// `GET /events`'s parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only its description is used; the handler reads the query itself.
pub(super) struct EventsParams {
    /// Only this key's events.
    #[param(pattern = "^[0-9A-Za-z]{16}$")]
    key_id: Option<String>,
    /// Events per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where the page starts: the value a `Link` gave; opaque. Anything else is 422.
    #[param(min_length = 1, max_length = 256, pattern = "^[0-9A-Za-z_.-]+$")]
    cursor: Option<String>,
}

/// `GET /keys/{id}/usage`'s parameter.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only its description is used; the handler reads the query itself.
pub(super) struct UsageParams {
    /// Days to answer, ending today (UTC), 1 to 90 (default 30).
    #[param(minimum = 1, maximum = 90)]
    days: Option<u32>,
}

/// `GET /keys`'s parameters (DESIGN §13).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only its description is used; the handler reads the query itself.
pub(super) struct ListKeysParams {
    /// Keys per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where the page starts: the value a `Link` gave, for the same `sort`; opaque.
    /// Anything else is 422.
    #[param(min_length = 1, max_length = 256, pattern = "^[0-9A-Za-z_.-]+$")]
    cursor: Option<String>,
    /// `active`; `expiring` (active, ending within 30 days); `expired` (past its expiry
    /// or a rotation's end); `revoked`; `dormant` (active, and last used more than 30
    /// days ago, or never used and created more than 7 days ago).
    #[param(value_type = Option<String>)]
    state: Option<String>,
    /// Name or id contains this, ignoring case; at most 128 characters.
    #[param(max_length = 128)]
    q: Option<String>,
    /// Keys whose scopes grant this one (`reports:*` grants `reports:read`).
    #[param(max_length = 128)]
    scope: Option<String>,
    /// `created`, `last_used` or `expires`, `-` first for descending; default `-created`.
    #[param(value_type = Option<String>)]
    sort: Option<String>,
}

// ---- problem documents ----------------------------------------------------------------

/// An RFC 9457 problem document, as every refusal answers it.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used: `tower_apikey::Problem` writes the JSON.
pub(super) struct Problem {
    /// Always `about:blank`: the status and `detail` say it all.
    #[schema(rename = "type")]
    type_: String,
    /// The status's reason phrase.
    title: String,
    /// The HTTP status.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// What went wrong, and what to do.
    detail: String,
    /// The middleware's refusal code: `invalid_request`, `invalid_token`,
    /// `insufficient_scope`, `address_not_allowed`, `rate_limited`, `quota_exceeded`, ….
    #[schema(nullable = false)]
    error: Option<String>,
    /// `insufficient_scope`: the scopes missing, space-separated.
    #[schema(nullable = false)]
    scope: Option<String>,
    /// 422: the first invalid field (or query parameter).
    #[schema(nullable = false)]
    field: Option<String>,
    /// 422: every invalid field, at most 20 unknown ones.
    #[schema(nullable = false)]
    errors: Option<Vec<FieldProblem>>,
    /// 403: the scopes the actor may not grant.
    #[schema(nullable = false)]
    not_grantable: Option<Vec<String>>,
    /// 403: the fields (`rate_limit`, `quota`, `allowed_ips`) that would leave the key
    /// less restricted than the acting key, or loosen the acting key itself; `detail`
    /// says the loosest value each may have.
    #[schema(nullable = false)]
    too_loose: Option<Vec<String>>,
}

/// One invalid field of a request, and what to do about it.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used.
pub(super) struct FieldProblem {
    /// The field, `rate_limit.requests` for a member, or the query parameter.
    field: String,
    detail: String,
}

/// The problems an operation can answer besides the guard's, by operation id. One row per
/// operation; every operation of the document has one (a test checks).
const PROBLEMS: &[(&str, &[u16])] = &[
    ("createKey", &[400, 403, 413, 415, 422]),
    ("listKeys", &[422]),
    ("getKey", &[404]),
    ("updateKey", &[400, 403, 404, 413, 415, 422]),
    ("revokeKey", &[403, 404]),
    ("listKeyHeirs", &[404]),
    ("rotateKey", &[400, 403, 404, 409, 413, 415, 422]),
    ("rotateSelf", &[400, 403, 409, 413, 415, 422]),
    ("listScopes", &[]),
    ("listEvents", &[404, 422]),
    ("listKeyEvents", &[404, 422]),
    ("getKeyUsage", &[404, 422]),
    ("getOpenApi", &[]),
    ("panelPage", &[]),
    ("panelScript", &[]),
    ("panelStyle", &[]),
    ("panelHistoryScript", &[]),
    ("panelLimitsScript", &[]),
];

/// What a status means, across the admin API.
fn problem_description(status: u16) -> &'static str {
    match status {
        400 => "The body is not well-formed JSON",
        401 => {
            "No key, a malformed, unknown, wrong, expired or revoked key (from the guard, \
                with `WWW-Authenticate`); behind the application's login, no signed-in person"
        }
        403 => {
            "The key lacks the route's scope (`insufficient_scope`, from the guard), the \
                client's address is not in the key's allowlist, the actor may not grant \
                the scopes asked for or held by the key (`not_grantable`), or the key would \
                be less restricted than the acting key, or the acting key would loosen its \
                own restrictions (`too_loose`); behind a login, an unsafe request from \
                another site"
        }
        404 => {
            "No key has this id (a path segment that is not a key id included), or the \
                application keeps no event log"
        }
        409 => {
            "The key cannot be rotated: revoked, expired or ended, it has a live \
                successor, it replaced a key that still works (self-rotation), or \
                `until_first_use` was asked where no usage tracker writes the store"
        }
        413 => "The body is larger than 16 KiB",
        415 => {
            "The body is not declared as JSON (`content-type: application/json` or \
                `application/*+json`)"
        }
        422 => {
            "Fields or parameters are missing, unknown, repeated, of the wrong type or \
                invalid, each named in `errors`. This includes what the schema cannot say: \
                an `expires_at` not in the future or more than 365 days ahead, a scope the \
                catalogue does not declare, more than 64 distinct scopes, `until_first_use` \
                with `overlap_secs`, a `cursor` no `Link` gave for this `sort`"
        }
        429 => {
            "Too many wrong keys from the client's address (with a failure throttle), or the \
                admin key's own rate limit or quota"
        }
        503 => "The key store is unavailable; try again after `Retry-After`",
        _ => "A problem",
    }
}

/// The guard's refusals, on every operation that needs a key.
const GUARD: &[u16] = &[401, 403, 429, 503];

fn problem_response(status: u16) -> Value {
    let mut response = json!({
        "description": problem_description(status),
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    });
    let header =
        |description: &str| json!({"description": description, "schema": {"type": "string"}});
    match status {
        401 => {
            response["headers"] = json!({
                "WWW-Authenticate": header("`ApiKey-v2 realm=\"…\"`, with `error` and `error_description` for a key that was refused"),
            });
        }
        429 | 503 => {
            response["headers"] = json!({"Retry-After": header("Seconds to wait")});
        }
        _ => {}
    }
    response
}

// ---- request bodies -------------------------------------------------------------------

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

/// The scope grammar (`tower_apikey::scope`): segments of `a-z 0-9 - _ .` joined by `:`, the
/// last one possibly `*`, never a bare `*`.
const SCOPE_PATTERN: &str = r"^[a-z0-9._-]+(?::[a-z0-9._-]+)*(?::\*)?$";

fn name_schema() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_NAME_CHARS,
        "pattern": name_pattern(),
        "description": "What uses the key, such as `billing-sync (prod)`: 1 to 128 characters, \
            no control characters, no invisible or text-reordering characters, no white \
            space at either end",
    })
}

fn nullable_ref(name: &str, description: &str) -> Value {
    json!({
        "anyOf": [{"$ref": format!("#/components/schemas/{name}")}, {"type": "null"}],
        "description": description,
    })
}

fn limits_properties() -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert(
        "rate_limit".into(),
        nullable_ref(
            "RateLimit",
            "`requests` per `per_secs` seconds (GCRA, burst `requests`); `null` for none. No \
             looser than the acting key's own, if it has one (403, `too_loose`)",
        ),
    );
    properties.insert(
        "quota".into(),
        nullable_ref(
            "Quota",
            "`requests` per UTC calendar day or month; `null` for none. No looser than the \
             acting key's own, if it has one (403, `too_loose`)",
        ),
    );
    properties.insert(
        "allowed_ips".into(),
        json!({
            "anyOf": [
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_ALLOWED_IPS,
                    "items": {"$ref": "#/components/schemas/IpNetwork"},
                },
                {"type": "null"},
            ],
            "description": "The addresses and CIDR networks the key is accepted from (1 to 64); \
                `null` for any. Inside the acting key's own, if it has one (403, `too_loose`)",
        }),
    );
    properties
}

fn ip_network_schema() -> Value {
    const OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
    // The IPv6 forms without an embedded IPv4 address: eight groups, or fewer around `::`.
    const IPV6: &str = "(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:|\
        (?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,5}(?::[0-9A-Fa-f]{1,4}){1,2}|\
        (?:[0-9A-Fa-f]{1,4}:){1,4}(?::[0-9A-Fa-f]{1,4}){1,3}|(?:[0-9A-Fa-f]{1,4}:){1,3}(?::[0-9A-Fa-f]{1,4}){1,4}|\
        (?:[0-9A-Fa-f]{1,4}:){1,2}(?::[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(?::[0-9A-Fa-f]{1,4}){1,6}|\
        :(?:(?::[0-9A-Fa-f]{1,4}){1,7}|:))";
    json!({
        "type": "string",
        "description": "An IP address or a CIDR network, such as `203.0.113.7`, \
            `203.0.113.0/24`, `2001:db8::1` or `2001:db8::/32`",
        "anyOf": [
            {"format": "ipv4"},
            {"format": "ipv6"},
            {"pattern": format!("^{OCTET}(?:\\.{OCTET}){{3}}/(?:3[0-2]|[12]?[0-9])$")},
            {"pattern": format!("^{IPV6}/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9])$")},
        ],
    })
}

/// `POST /keys`'s body (read by `body::CreateRequest::parse`).
pub(super) struct CreateKeyBody;

fn create_key_body() -> Value {
    {
        let mut properties = Map::new();
        properties.insert("name".into(), name_schema());
        properties.insert(
            "scopes".into(),
            json!({
                "type": "array",
                "items": {"type": "string", "maxLength": MAX_SCOPE_LEN, "pattern": SCOPE_PATTERN},
                "description": format!("The scopes the key holds (at most {MAX_SCOPES} distinct); \
                    `[]` for a key that only authenticates. Each must be one the acting key's \
                    scopes grant (403 otherwise) and, with a catalogue, one it declares (422)"),
            }),
        );
        properties.insert(
            "expires_at".into(),
            json!({
                "type": ["string", "null"],
                "format": "date-time",
                "description": "RFC 3339, any offset: in the future, at most 365 days ahead \
                    (422 otherwise). Left out or `null`: the 365-day maximum",
            }),
        );
        properties.extend(limits_properties());
        json!({
            "type": "object",
            "required": ["name", "scopes"],
            "properties": properties,
            "additionalProperties": false,
        })
    }
}

impl PartialSchema for CreateKeyBody {
    fn schema() -> RefOr<Schema> {
        placeholder()
    }
}

impl ToSchema for CreateKeyBody {}

/// `PATCH /keys/{id}`'s body (read by `patch_body::parse`).
pub(super) struct UpdateKeyBody;

fn update_key_body() -> Value {
    {
        let mut properties = Map::new();
        let mut name = name_schema();
        name["description"] = "A new name; it cannot be removed".into();
        properties.insert("name".into(), name);
        properties.extend(limits_properties());
        json!({
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
            "description": "A field left out stays as it is; `null` removes a limit or the \
                allowlist. `scopes` cannot be changed (422)",
        })
    }
}

impl PartialSchema for UpdateKeyBody {
    fn schema() -> RefOr<Schema> {
        placeholder()
    }
}

impl ToSchema for UpdateKeyBody {}

/// The rotate body (read by `body::RotateRequest::parse` and `first_use_body::parse`):
/// either a fixed end for the old key, or an end after the new key's first use.
pub(super) struct RotateBody;

fn rotate_body() -> Value {
    {
        let max_overlap = MAX_OVERLAP.as_secs();
        let max_grace = MAX_FIRST_USE_GRACE.as_secs();
        json!({
            "oneOf": [
                {
                    "title": "Overlap",
                    "type": "object",
                    "properties": {
                        "overlap_secs": {
                            "type": ["integer", "null"],
                            "minimum": 0,
                            "maximum": max_overlap,
                            "description": "End the old key this many seconds from now; `0` \
                                revokes it at once (a leaked key). Left out or `null`: it keeps \
                                working until revoked",
                        },
                        "until_first_use": {"enum": [false, null]},
                        "grace_secs": {"type": "null"},
                    },
                    "additionalProperties": false,
                },
                {
                    "title": "UntilFirstUse",
                    "type": "object",
                    "required": ["until_first_use"],
                    "properties": {
                        "until_first_use": {
                            "const": true,
                            "description": "End the old key `grace_secs` after the new key's \
                                first proven use (409 where no usage tracker writes the store)",
                        },
                        "grace_secs": {
                            "type": ["integer", "null"],
                            "minimum": 0,
                            "maximum": max_grace,
                            "description": "Seconds of grace, at most 7 days; default 300",
                        },
                        "overlap_secs": {"type": "null"},
                    },
                    "additionalProperties": false,
                },
            ],
        })
    }
}

impl PartialSchema for RotateBody {
    fn schema() -> RefOr<Schema> {
        placeholder()
    }
}

impl ToSchema for RotateBody {}

/// A body type's schema in the derive's output, replaced by [`finish`] with the JSON
/// Schema written above: utoipa's model has no `const`, no type arrays and no
/// `{"type": "null"}`, which the exact rules need.
fn placeholder() -> RefOr<Schema> {
    utoipa::openapi::ObjectBuilder::new().into()
}

// ---- finishing the document -----------------------------------------------------------

/// What the derive cannot say: the security scheme, the problems and guard refusals of
/// every operation, the links the stateful tests follow, the list parameters' values,
/// and integer schemas without the `int32`/`int64` formats (`u32` fields reach
/// 4294967295; the bounds are `minimum` and `maximum`).
fn finish(doc: &mut Value) {
    doc["servers"] = json!([{
        "url": ".",
        "description": "Where the application mounts the admin router, such as `/admin`",
    }]);
    let schemas = &mut doc["components"]["schemas"];
    schemas["IpNetwork"] = ip_network_schema();
    schemas["CreateKeyBody"] = create_key_body();
    schemas["UpdateKeyBody"] = update_key_body();
    schemas["RotateBody"] = rotate_body();
    doc["components"]["securitySchemes"][SCHEME] = json!({
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Authorization: ApiKey-v2 <key>`: the scheme name `ApiKey-v2`, one or \
            more spaces, then the key. The key must hold `admin:keys` (`POST /self/rotate`: \
            `keys:rotate-self`, on the key being rotated). Behind the application's login, \
            the application's session authenticates instead, except for `POST /self/rotate`.",
    });
    doc["security"] = json!([{SCHEME: []}]);

    let created_links = json!({
        "GetKey": {"operationId": "getKey", "parameters": {"id": "$response.body#/id"}},
        "UpdateKey": {"operationId": "updateKey", "parameters": {"id": "$response.body#/id"}},
        "RotateKey": {"operationId": "rotateKey", "parameters": {"id": "$response.body#/id"}},
        "RevokeKey": {"operationId": "revokeKey", "parameters": {"id": "$response.body#/id"}},
        "ListKeyHeirs": {"operationId": "listKeyHeirs", "parameters": {"id": "$response.body#/id"}},
        "ListKeyEvents": {"operationId": "listKeyEvents", "parameters": {"id": "$response.body#/id"}},
        "GetKeyUsage": {"operationId": "getKeyUsage", "parameters": {"id": "$response.body#/id"}},
    });
    let states: Vec<&str> = KeyFilter::ALL.iter().map(|f| f.as_str()).collect();
    let sorts = sort_names();

    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let public = operation
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().all(|r| r.as_object().is_some_and(Map::is_empty)));
            let statuses = PROBLEMS
                .iter()
                .find(|(op, _)| *op == id)
                .map_or(&[][..], |(_, statuses)| statuses);
            let responses = &mut operation["responses"];
            for &status in statuses.iter().chain(if public { &[][..] } else { GUARD }) {
                responses[status.to_string()] = problem_response(status);
            }
            if matches!(id.as_str(), "rotateKey" | "rotateSelf") {
                // No body (or an empty one) asks for the route's default end.
                operation["requestBody"]["required"] = false.into();
            }
            let responses = &mut operation["responses"];
            if matches!(id.as_str(), "createKey" | "rotateKey" | "rotateSelf") {
                responses["201"]["links"] = created_links.clone();
            }
            if let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            {
                for parameter in parameters {
                    match parameter["name"].as_str() {
                        Some("state") if id == "listKeys" => {
                            parameter["schema"] = json!({"type": "string", "enum": states});
                        }
                        Some("sort") if id == "listKeys" => {
                            parameter["schema"] = json!({"type": "string", "enum": sorts});
                        }
                        Some("scope") if id == "listKeys" => {
                            parameter["schema"]["pattern"] = SCOPE_PATTERN.into();
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    strip_integer_formats(doc);
}

fn sort_names() -> Vec<&'static str> {
    use tower_apikey::store::{KeySort, KeySortField};
    [
        KeySortField::Created,
        KeySortField::LastUsed,
        KeySortField::Expires,
    ]
    .into_iter()
    .flat_map(|field| [false, true].map(|descending| KeySort::new(field, descending).as_str()))
    .collect()
}

fn strip_integer_formats(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let integer = match object.get("type") {
                Some(Value::String(t)) => t == "integer",
                Some(Value::Array(types)) => types.iter().any(|t| t == "integer"),
                _ => false,
            };
            if integer
                && object
                    .get("format")
                    .and_then(Value::as_str)
                    .is_some_and(|f| f.starts_with("int") || f.starts_with("uint"))
            {
                object.remove("format");
            }
            object.values_mut().for_each(strip_integer_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_integer_formats),
        _ => {}
    }
}

// Referenced so that the limits these schemas restate are the parsers' own.
const _: () = {
    assert!(MAX_PAGE_LIMIT == 1000);
    assert!(MAX_CURSOR_CHARS == 256);
    assert!(MAX_SEARCH_CHARS == 128);
    assert!(MAX_RATE_WINDOW_SECS == 86_400);
    assert!(MAX_LIFETIME.as_secs() == MAX_OVERLAP.as_secs());
};

#[cfg(test)]
mod tests {
    use super::*;

    fn property_names(schema: &Value) -> Vec<String> {
        let mut names: Vec<String> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn sorted(names: impl IntoIterator<Item = &'static str>) -> Vec<String> {
        let mut names: Vec<String> = names.into_iter().map(str::to_owned).collect();
        names.sort();
        names
    }

    #[test]
    fn the_body_schemas_name_exactly_the_fields_the_parsers_read() {
        let create = super::super::body::CREATE_FIELDS
            .iter()
            .chain(limits_body::FIELDS)
            .copied();
        assert_eq!(property_names(&create_key_body()), sorted(create));
        assert_eq!(
            property_names(&update_key_body()),
            sorted(patch_body::FIELDS.iter().copied())
        );
        let rotate = super::super::body::ROTATE_FIELDS
            .iter()
            .chain(first_use_body::FIELDS)
            .copied();
        for variant in rotate_body()["oneOf"].as_array().unwrap() {
            assert_eq!(property_names(variant), sorted(rotate.clone()));
        }
    }

    #[test]
    fn every_operation_has_a_row_of_problems_and_every_row_an_operation() {
        let doc = &*BASE;
        let mut ids = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                ids.push(operation["operationId"].as_str().unwrap().to_owned());
            }
        }
        ids.sort();
        let mut rows: Vec<String> = PROBLEMS.iter().map(|(id, _)| (*id).to_owned()).collect();
        rows.sort();
        assert_eq!(ids, rows);
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

    #[test]
    fn the_event_types_are_the_events_kinds() {
        let doc = &*BASE;
        let documented = &doc["components"]["schemas"]["EventType"]["enum"];
        let kinds: Vec<&str> = tower_apikey::event::EventType::ALL
            .iter()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(documented, &json!(kinds));
    }

    #[test]
    fn the_router_serves_exactly_the_documented_operations() {
        use crate::AdminRouter;
        use tower_apikey::{InMemoryKeyStore, KeyManager};
        let (_, served) =
            AdminRouter::new(KeyManager::new(InMemoryKeyStore::new())).documented_routes();
        let mut served: Vec<(String, String)> = served
            .into_iter()
            .map(|(path, method)| {
                let method = serde_json::to_value(method).unwrap();
                (path, method.as_str().unwrap().to_owned())
            })
            .collect();
        served.sort();
        let mut documented = Vec::new();
        for (path, item) in BASE["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.push((path.clone(), method.clone()));
            }
        }
        documented.sort();
        assert_eq!(served, documented);
    }

    #[test]
    fn a_catalogue_becomes_the_scopes_enum() {
        let catalogue =
            ScopeCatalogue::new([("reports:read", "Read"), ("admin:keys", "Manage")]).unwrap();
        let doc: Value = serde_json::from_slice(&document(Some(&catalogue))).unwrap();
        assert_eq!(
            doc["components"]["schemas"]["CreateKeyBody"]["properties"]["scopes"]["items"]["enum"],
            json!(["admin:keys", "reports:read"])
        );
        let open: Value = serde_json::from_slice(&document(None)).unwrap();
        assert_eq!(
            open["components"]["schemas"]["CreateKeyBody"]["properties"]["scopes"]["items"]["pattern"],
            SCOPE_PATTERN
        );
        assert_eq!(open["openapi"], "3.1.0");
    }
}

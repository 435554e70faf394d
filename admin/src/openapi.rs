//! `GET /openapi.json`: an OpenAPI 3.1 document of the admin router (DESIGN §13).
//!
//! It is generated from the code, in three parts that cannot drift apart:
//!
//! - each handler carries its own `#[utoipa::path]` (method, path, parameters, body,
//!   success answer), and the router's route table ([`routes`](super::routes)) takes
//!   each route's path and methods from that same attribute: a route is served where,
//!   and only where, its documentation says (the panel's assets are rows of their own
//!   table, which writes their operations too);
//! - the answers' schemas are derived (`ToSchema`) from the serde views the handlers
//!   serialise ([`KeyView`](super::view::KeyView) and the rest);
//! - the request bodies' schemas are derived from their wire types (`CreateKeyBody`,
//!   `UpdateKeyBody`, `RotateBody`), the very types the handlers fill from the JSON
//!   (see [`wire`](super::wire)); the name and scope patterns come from the core's rules.
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

use axum::body::Bytes;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::MAX_OVERLAP;
use super::panel;
use schema::{FieldProblem, Problem};
use tower_apikey::manager::{MAX_LIFETIME, ScopeCatalogue};
use tower_apikey::record::MAX_RATE_WINDOW_SECS;
use tower_apikey::scope::SCOPE_PATTERN;
use tower_apikey::store::{KeyFilter, MAX_SEARCH_CHARS};
use tower_apikey::store::{MAX_CURSOR_CHARS, MAX_PAGE_LIMIT};

mod schema;

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
    let mut api = AdminApi::openapi();
    panel::document_assets(&mut api.paths);
    let mut doc = serde_json::to_value(api).expect("an OpenAPI document is JSON");
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

// ---- problem documents ----------------------------------------------------------------

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
    ("panelDomScript", &[]),
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
                own restrictions (`too_loose`), or a tenant's administrator named another \
                tenant in a create body; behind a login, an unsafe request from another site"
        }
        404 => {
            "No key has this id that the caller sees (a path segment that is not a key \
                id, or another tenant's key, answers exactly the same), or the application \
                keeps no event log"
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

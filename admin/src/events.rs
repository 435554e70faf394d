//! The audit trail over HTTP: `GET /events` and `GET /keys/{id}/events`, newest first,
//! paged like every list (an array body and a `Link` to the next page).

use std::borrow::Cow;

use axum::extract::rejection::PathRejection;
use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::acting::Acting;
use super::page::{QueryParams, paged};
use super::problem::{AdminError, FieldError};
use super::tenant::tenant_param;
use super::view::utc;
use tower_apikey::Actor;
use tower_apikey::KeyId;
use tower_apikey::KeyManager;
use tower_apikey::KeyStoreAdmin;
use tower_apikey::event::{EventLog, EventQuery, EventType, KeyEvent};

/// One lifecycle event of a key (`{"id", "type", "key_id", "tenant", "actor", "at", "detail"}`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = KeyEvent)]
pub(super) struct EventView {
    /// A string, so that clients treat it as the opaque, orderable id it is.
    id: String,
    /// What happened.
    #[serde(rename = "type")]
    #[schema(value_type = EventTypeName)]
    kind: &'static str,
    /// The key it happened to.
    key_id: String,
    /// The tenant of the key it happened to; `null` for a key of no tenant.
    #[schema(required = true)]
    tenant: Option<String>,
    /// Who acted, as a record's `created_by`; `null` for the application itself.
    #[schema(required = true)]
    actor: Option<String>,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    at: OffsetDateTime,
    detail: DetailView,
}

/// An event's type: its schema is the core's [`EventType`]'s names, every one of them.
struct EventTypeName;

impl PartialSchema for EventTypeName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(EventType::ALL.iter().map(|kind| kind.as_str())))
            .description(Some("What happened"))
            .into()
    }
}

impl ToSchema for EventTypeName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("EventType")
    }
}

/// The members of an event's detail that apply to its type; the others are left out.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = KeyEventDetail)]
struct DetailView {
    /// The other key of a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    related_key_id: Option<String>,
    /// `expiring`: the days left.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    days: Option<u32>,
    /// The end a rotation scheduled for the old key.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = String, format = DateTime)]
    ends_at: Option<OffsetDateTime>,
    /// `ended_key_used`: the attempts seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    attempts: Option<u64>,
}

impl EventView {
    fn new(event: &KeyEvent) -> Result<Self, AdminError> {
        let detail = event.detail();
        Ok(Self {
            id: event.id().to_string(),
            kind: event.kind().as_str(),
            key_id: event.key_id().to_string(),
            tenant: event.tenant().map(ToString::to_string),
            actor: event.actor().map(ToString::to_string),
            at: utc(event.at())?,
            detail: DetailView {
                related_key_id: detail.related_key_id.map(|id| id.to_string()),
                days: detail.days,
                ends_at: detail.ends_at.map(utc).transpose()?,
                attempts: detail.attempts,
            },
        })
    }
}

/// `GET /events?key_id=&limit=&cursor=`.
#[utoipa::path(
    get,
    path = "/events",
    operation_id = "listEvents",
    tag = "events",
    summary = "The audit trail, newest first, one page at a time",
    description = "404 where the application keeps no event log. A `cursor` is refused (422) \
        unless a `Link` gave it.",
    params(KeyIdQuery, PageParams),
    responses(
        (status = 200, description = "A page of events", body = Vec<EventView>,
            content_type = "application/json",
            headers(("Link" = String, description = "`<?…&cursor=…>; rel=\"next\"` (RFC 8288), relative to the request; absent on the last page"))),
    ),
)]
pub(super) async fn list<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    Acting(actor): Acting,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, AdminError> {
    let params = QueryParams::parse(&uri, &["key_id", "tenant", "limit", "cursor"])?;
    let mut errors = Vec::new();
    let key = match params.get("key_id").map(KeyId::new) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => {
            errors.push(FieldError::new("key_id", e.to_string()));
            None
        }
    };
    let tenant = tenant_param(&params).unwrap_or_else(|error| {
        errors.push(error);
        None
    });
    if !errors.is_empty() {
        return Err(AdminError::Invalid(errors));
    }
    // Without an event log the route does not exist.
    log(&manager)?;
    let mut query = EventQuery::new();
    if let Some(tenant) = tenant {
        query = query.with_tenant(tenant);
    }
    answer(&manager, &actor, query, key, &params).await
}

/// `GET /keys/{id}/events?limit=&cursor=`: 404 for a key that does not exist.
#[utoipa::path(
    get,
    path = "/keys/{id}/events",
    operation_id = "listKeyEvents",
    tag = "events",
    summary = "One key's events, newest first, one page at a time",
    description = "404 for an unknown key, or where the application keeps no event log.",
    params(super::key_id::KeyIdParam, PageParams),
    responses(
        (status = 200, description = "A page of the key's events", body = Vec<EventView>,
            content_type = "application/json",
            headers(("Link" = String, description = "`<?…&cursor=…>; rel=\"next\"` (RFC 8288), relative to the request; absent on the last page"))),
    ),
)]
pub(super) async fn of_key<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    Acting(actor): Acting,
    id: Result<Path<String>, PathRejection>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, AdminError> {
    let params = QueryParams::parse(&uri, &["limit", "cursor"])?;
    let id = super::key_id::key_id(id)?;
    // A revoked or expired key still has its history; only a key the actor does not
    // see (unknown, or another tenant's) is 404, before the log's own 404.
    manager.acting_as(&actor).get(&id).await?;
    log(&manager)?;
    answer(&manager, &actor, EventQuery::new(), Some(id), &params).await
}

fn log<S: KeyStoreAdmin>(manager: &KeyManager<S>) -> Result<&EventLog, AdminError> {
    // Without an event log the routes do not exist.
    manager.events().ok_or(AdminError::NoSuchRoute)
}

/// A page of `query`'s events (of `key`, if any) as `actor` sees them.
async fn answer<S: KeyStoreAdmin>(
    manager: &KeyManager<S>,
    actor: &Actor,
    mut query: EventQuery,
    key: Option<KeyId>,
    params: &QueryParams,
) -> Result<Response, AdminError> {
    let (limit, cursor) = params.page()?;
    query = query.with_limit(limit);
    if let Some(key) = key {
        query = query.key(key);
    }
    if let Some(cursor) = &cursor {
        query = query
            .after(cursor)
            .map_err(|e| AdminError::Invalid(vec![FieldError::new("cursor", e.to_string())]))?;
    }
    // The actor's tenant bounds the page, whatever `?tenant=` asked.
    let page = manager.acting_as(actor).events(query).await?;
    let views = page
        .items
        .iter()
        .map(EventView::new)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(paged(views, page.next.as_ref(), params))
}

/// The most days `GET /keys/{id}/usage` answers.
const MAX_USAGE_DAYS: u32 = 90;
/// The days it answers by default.
const DEFAULT_USAGE_DAYS: u32 = 30;

/// One UTC day of a key's proven requests.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = UsageDay)]
struct DayView {
    #[schema(format = Date)]
    date: String,
    requests: u64,
}

/// A key's proven requests per UTC day, oldest first, zero days included.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = KeyUsage)]
pub(super) struct UsageView {
    days: Vec<DayView>,
}

/// `GET /keys/{id}/usage?days=N` (N from 1 to 90, default 30): the key's proven
/// requests per UTC day up to today (the manager's clock), zero days included.
#[utoipa::path(
    get,
    path = "/keys/{id}/usage",
    operation_id = "getKeyUsage",
    tag = "events",
    summary = "A key's proven requests per UTC day",
    params(super::key_id::KeyIdParam, UsageParams),
    responses(
        (status = 200, description = "Oldest day first, zero days included", body = UsageView,
            content_type = "application/json"),
    ),
)]
pub(super) async fn usage<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    Acting(actor): Acting,
    id: Result<Path<String>, PathRejection>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, AdminError> {
    let params = QueryParams::parse(&uri, &["days"])?;
    let days = match params.get("days") {
        None => DEFAULT_USAGE_DAYS,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_USAGE_DAYS).contains(n))
            .ok_or_else(|| {
                AdminError::Invalid(vec![FieldError::new(
                    "days",
                    format!("days must be a whole number from 1 to {MAX_USAGE_DAYS}"),
                )])
            })?,
    };
    let id = super::key_id::key_id(id)?;
    let acting = manager.acting_as(&actor);
    acting.get(&id).await?;
    // Without an event log the route does not exist, as the other event routes.
    log(&manager)?;
    let counts = acting.daily_requests(&id, days).await?;
    let days = counts
        .into_iter()
        .map(|(day, requests)| DayView {
            date: day.to_string(),
            requests,
        })
        .collect();
    Ok(axum::Json(UsageView { days }).into_response())
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

/// `GET /events`'s filter (it pages as every list does, [`PageParams`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only its description is used; the handler reads the query itself.
pub(super) struct KeyIdQuery {
    /// Only this key's events: none for a key the caller does not see, as for an unknown
    /// one.
    #[param(pattern = "^[0-9A-Za-z]{16}$")]
    key_id: Option<String>,
    /// Only the events of this tenant's keys. An operator sees every tenant; a tenant's
    /// administrator sees only its own, and naming another tenant gives an empty page.
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    tenant: Option<String>,
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

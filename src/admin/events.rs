//! The audit trail over HTTP: `GET /events` and `GET /keys/{id}/events`, newest first,
//! paged like every list (an array body and a `Link` to the next page).

use axum::extract::rejection::PathRejection;
use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;

use super::acting::Acting;
use super::page::{QueryParams, paged};
use super::problem::{AdminError, FieldError};
use super::view::utc;
use crate::event::{EventLog, EventQuery, KeyEvent};
use crate::key::KeyId;
use crate::manager::KeyManager;
use crate::store::KeyStoreAdmin;

/// One event as JSON: `{"id", "type", "key_id", "actor", "at", "detail"}`.
#[derive(Debug, Serialize)]
pub(super) struct EventView {
    /// A string, so that clients treat it as the opaque, orderable id it is.
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    key_id: String,
    actor: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    detail: DetailView,
}

/// The fields of the detail that apply; the others are left out.
#[derive(Debug, Serialize)]
struct DetailView {
    #[serde(skip_serializing_if = "Option::is_none")]
    related_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    days: Option<u32>,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    ends_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<u64>,
}

impl EventView {
    fn new(event: &KeyEvent) -> Result<Self, AdminError> {
        let detail = event.detail();
        Ok(Self {
            id: event.id().to_string(),
            kind: event.kind().as_str(),
            key_id: event.key_id().to_string(),
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
pub(super) async fn list<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    _: Acting,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, AdminError> {
    let params = QueryParams::parse(&uri, &["key_id", "limit", "cursor"])?;
    let key = match params.get("key_id") {
        None => None,
        Some(text) => Some(
            KeyId::new(text)
                .map_err(|e| AdminError::Invalid(vec![FieldError::new("key_id", e.to_string())]))?,
        ),
    };
    answer(log(&manager)?, key, &params).await
}

/// `GET /keys/{id}/events?limit=&cursor=`: 404 for a key that does not exist.
pub(super) async fn of_key<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    _: Acting,
    id: Result<Path<String>, PathRejection>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, AdminError> {
    let params = QueryParams::parse(&uri, &["limit", "cursor"])?;
    let id = super::key_id(id)?;
    // A revoked or expired key still has its history; only an unknown one is 404.
    manager.get(&id).await?;
    answer(log(&manager)?, Some(id), &params).await
}

fn log<S: KeyStoreAdmin>(manager: &KeyManager<S>) -> Result<&EventLog, AdminError> {
    // Without an event log the routes do not exist.
    manager.events().ok_or(AdminError::NoSuchRoute)
}

async fn answer(
    log: &EventLog,
    key: Option<KeyId>,
    params: &QueryParams,
) -> Result<Response, AdminError> {
    let (limit, cursor) = params.page()?;
    let mut query = EventQuery::new().limit(limit);
    if let Some(key) = key {
        query = query.key(key);
    }
    if let Some(cursor) = &cursor {
        query = query
            .after(cursor)
            .map_err(|e| AdminError::Invalid(vec![FieldError::new("cursor", e.to_string())]))?;
    }
    let page = log.events(&query).await.map_err(AdminError::Store)?;
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

/// One day of `GET /keys/{id}/usage`.
#[derive(Debug, Serialize)]
struct DayView {
    date: String,
    requests: u64,
}

/// `{"days": [...]}`, oldest first.
#[derive(Debug, Serialize)]
struct UsageView {
    days: Vec<DayView>,
}

/// `GET /keys/{id}/usage?days=N` (N from 1 to 90, default 30): the key's proven
/// requests per UTC day up to today (the manager's clock), zero days included.
pub(super) async fn usage<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    _: Acting,
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
    let id = super::key_id(id)?;
    manager.get(&id).await?;
    let counts = log(&manager)?
        .daily_requests(&id, manager.now_for_views(), days)
        .await
        .map_err(AdminError::Store)?;
    let days = counts
        .into_iter()
        .map(|(day, requests)| DayView {
            date: day.to_string(),
            requests,
        })
        .collect();
    Ok(axum::Json(UsageView { days }).into_response())
}

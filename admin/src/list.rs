//! `GET /keys`: one page of keys, filtered, searched and sorted (DESIGN §13).
//!
//! The query string becomes a [`KeyQuery`] at the manager's clock; every parameter that
//! is wrong is named in one 422, and a parameter the route does not know is refused
//! rather than ignored, so that a typo cannot silently list everything.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use utoipa::IntoParams;

use super::acting::Acting;
use super::page::{QueryParams, paged};
use super::problem::{AdminError, FieldError};
use super::view::KeyView;
use tower_apikey::KeyManager;
use tower_apikey::KeyStoreAdmin;
use tower_apikey::Scope;
use tower_apikey::record::TenantId;
use tower_apikey::store::{KeyFilter, KeyQuery, KeySort};

/// The parameters `GET /keys` takes.
const PARAMETERS: &[&str] = &["limit", "cursor", "state", "q", "scope", "sort", "tenant"];

/// `GET /keys`
#[utoipa::path(
    get,
    path = "/keys",
    operation_id = "listKeys",
    tag = "keys",
    summary = "One page of keys, filtered, searched and sorted",
    description = "Each parameter at most once; an unknown one is 422. The next page is named \
        in `Link`; the last page has none. A `cursor` is refused (422) unless a `Link` gave it \
        for the same `sort`.",
    params(ListKeysParams),
    responses(
        (status = 200, description = "A page of records, newest first by default",
            body = Vec<KeyView>, content_type = "application/json",
            headers(("Link" = String, description = "`<?…&cursor=…>; rel=\"next\"` (RFC 8288), relative to the request; absent on the last page"))),
    ),
)]
pub(super) async fn list<S: KeyStoreAdmin>(
    State(manager): State<KeyManager<S>>,
    Acting(actor): Acting,
    uri: Uri,
) -> Result<Response, AdminError> {
    let params = QueryParams::parse(&uri, PARAMETERS)?;
    let query = key_query(&params, manager.key_query())?;
    // The actor's tenant scopes the page, whatever `tenant` asked (DESIGN §14).
    let page = manager.acting_as(&actor).list_page(query).await?;
    let views = page
        .items
        .iter()
        .map(KeyView::new)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(paged(views, page.next.as_ref(), &params))
}

/// `params` as a query, or a 422 naming every parameter that is wrong.
fn key_query(params: &QueryParams, mut query: KeyQuery) -> Result<KeyQuery, AdminError> {
    let mut errors = Vec::new();
    let (limit, cursor) = match params.page() {
        Ok(page) => page,
        Err(AdminError::Invalid(page_errors)) => {
            errors.extend(page_errors);
            (Default::default(), None)
        }
        Err(other) => return Err(other),
    };
    query = query.with_limit(limit);
    if let Some(text) = params.get("state") {
        match text.parse::<KeyFilter>() {
            Ok(state) => query = query.with_state(state),
            Err(error) => errors.push(FieldError::new("state", error.to_string())),
        }
    }
    if let Some(text) = params.get("q") {
        match query.clone().with_search(text) {
            Ok(searched) => query = searched,
            Err(error) => errors.push(FieldError::new("q", error.to_string())),
        }
    }
    if let Some(text) = params.get("tenant") {
        match TenantId::new(text) {
            Ok(tenant) => query = query.with_tenant(tenant),
            Err(error) => errors.push(FieldError::new("tenant", error.to_string())),
        }
    }
    if let Some(text) = params.get("scope") {
        match Scope::new(text) {
            Ok(scope) => query = query.with_scope(scope),
            Err(error) => errors.push(FieldError::new("scope", error.to_string())),
        }
    }
    // The sort before the cursor: a cursor is read for the order it continues.
    let mut sort_ok = true;
    if let Some(text) = params.get("sort") {
        match KeySort::parse(text) {
            Ok(sort) => query = query.with_sort(sort),
            Err(error) => {
                sort_ok = false;
                errors.push(FieldError::new("sort", error.to_string()));
            }
        }
    }
    if let (Some(cursor), true) = (cursor, sort_ok) {
        match query.clone().after(&cursor) {
            Ok(after) => query = after,
            Err(error) => errors.push(FieldError::new("cursor", error.to_string())),
        }
    }
    if errors.is_empty() {
        Ok(query)
    } else {
        Err(AdminError::Invalid(errors))
    }
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
    /// Keys of this tenant only (DESIGN §14), for an operator; an actor of one tenant
    /// always sees its own, and another tenant's name gives an empty page.
    #[param(max_length = 64, pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    tenant: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn query(uri: &str) -> Result<KeyQuery, Vec<String>> {
        let params = QueryParams::parse(&uri.parse().unwrap(), PARAMETERS).map_err(fields)?;
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        key_query(&params, KeyQuery::new(now)).map_err(fields)
    }

    fn fields(error: AdminError) -> Vec<String> {
        match error {
            AdminError::Invalid(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn every_parameter_is_read() {
        let q = query("/keys?limit=5&state=dormant&q=Billing&scope=reports:read&sort=last_used")
            .unwrap();
        assert_eq!(q.limit().get(), 5);
        assert_eq!(q.state(), Some(KeyFilter::Dormant));
        assert_eq!(q.search(), Some("Billing"));
        assert_eq!(q.scope().map(Scope::as_str), Some("reports:read"));
        assert_eq!(q.sort().as_str(), "last_used");
        let defaults = query("/keys").unwrap();
        assert_eq!(defaults.sort(), KeySort::NEWEST_FIRST);
        assert_eq!(defaults.limit().get(), 100);
    }

    #[test]
    fn every_bad_parameter_is_named_at_once() {
        assert_eq!(
            query("/keys?limit=1001&state=gone&scope=Reports&sort=name").unwrap_err(),
            ["limit", "state", "scope", "sort"]
        );
        let long = "x".repeat(129);
        assert_eq!(query(&format!("/keys?q={long}")).unwrap_err(), ["q"]);
        assert_eq!(query("/keys?order=name").unwrap_err(), ["order"]);
    }

    #[test]
    fn a_cursor_for_another_sort_is_refused() {
        let cursor = "-created.1800000000000000.7Fq2LxW9aZ3kPm4R";
        assert!(query(&format!("/keys?cursor={cursor}")).is_ok());
        assert_eq!(
            query(&format!("/keys?sort=expires&cursor={cursor}")).unwrap_err(),
            ["cursor"]
        );
        assert_eq!(
            query("/keys?cursor=-created.x.7Fq2LxW9aZ3kPm4R").unwrap_err(),
            ["cursor"]
        );
    }
}

//! The problem document's schema: a leaf under the document root, which lists it in
//! `components`.

use utoipa::ToSchema;

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

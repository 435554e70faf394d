//! The admin router's errors, answered as RFC 9457 problem documents.

use axum::extract::rejection::BytesRejection;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use serde::Serialize;
use tower_apikey::ManagerError;
use tower_apikey::manager::{ChangeKind, ExpiryError, Loosened};
use tower_apikey::middleware::RETRY_AFTER_SECS;
use tower_apikey::record::{KeyNameError, TenantId};
use tower_apikey::scope::ScopeError;
use tower_apikey::{Scopes, StoreError};

use super::MAX_BODY_BYTES;

/// The media type of a problem document (RFC 9457).
const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct FieldError {
    pub(super) field: String,
    pub(super) detail: String,
}

impl FieldError {
    pub(super) fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub(super) fn name(error: &KeyNameError) -> Self {
        let hint = match error {
            KeyNameError::Empty => {
                "name the key after what uses it, such as \"billing-sync (prod)\""
            }
            KeyNameError::TooLong(_) => "shorten it",
            KeyNameError::ControlCharacter => "remove newlines, tabs and other control characters",
            KeyNameError::Untrimmed => "remove the spaces around it",
            KeyNameError::HiddenCharacter(_) => {
                "remove invisible characters such as zero-width spaces, bidirectional \
                 controls and line separators, which could make the name read as another"
            }
            _ => "choose another name",
        };
        Self::new("name", format!("{error}; {hint}"))
    }

    pub(super) fn scopes(error: &ScopeError) -> Self {
        Self::new("scopes", error.to_string())
    }

    fn undeclared(scopes: &Scopes) -> Self {
        Self::new(
            "scopes",
            format!(
                "the application does not declare {scopes}; choose among the scopes \
                 GET /scopes lists"
            ),
        )
    }

    pub(super) fn expires_at(error: &ExpiryError) -> Self {
        let hint = match error {
            ExpiryError::NotInFuture => "choose a later time, or leave expires_at out",
            ExpiryError::TooFar => "choose an earlier time, or leave expires_at out",
            _ => "choose another time, or leave expires_at out",
        };
        Self::new(
            "expires_at",
            format!("{error}; {hint} for the 365-day maximum"),
        )
    }
}

/// Why an admin request failed. Nothing was stored.
#[derive(Debug)]
pub(super) enum AdminError {
    /// The body is not declared as JSON.
    UnsupportedMediaType,
    /// The body could not be read: too large (413) or broken off (400).
    Body(BytesRejection),
    /// The body is not well-formed JSON.
    Syntax(serde_json::Error),
    /// The body is JSON but not an object.
    NotAnObject,
    /// Fields are missing, unknown, mistyped or invalid.
    Invalid(Vec<FieldError>),
    /// No key has this id (or the path segment is not an id).
    NotFound,
    /// No admin route has this path.
    NoSuchRoute,
    /// The key is revoked, expired or ended, or has a live successor, and cannot be
    /// rotated.
    NotRotatable(ManagerError),
    /// The actor may not grant these scopes (create, rotate) or may not revoke a key
    /// holding them.
    CannotGrant(ManagerError, Scopes),
    /// A restricted actor would leave a key less restricted than itself, or loosen its
    /// own (DESIGN §12).
    CannotLoosen(Loosened),
    /// A tenant's actor asked to create a key in another tenant (DESIGN §14).
    OtherTenant {
        /// The actor's tenant.
        actor: TenantId,
        /// The tenant asked for.
        asked: TenantId,
    },
    /// Behind the application's login, the request carried no actor.
    NoActor,
    /// Behind the application's login, an unsafe request came from another site.
    CrossOrigin,
    /// The store failed.
    Store(StoreError),
    /// A stored time cannot be written as RFC 3339 (outside years 0–9999).
    Unrepresentable,
}

impl From<ManagerError> for AdminError {
    fn from(error: ManagerError) -> Self {
        match error {
            ManagerError::Name(e) => Self::Invalid(vec![FieldError::name(&e)]),
            ManagerError::Scope(e) => Self::Invalid(vec![FieldError::scopes(&e)]),
            ManagerError::Expiry(e) => Self::Invalid(vec![FieldError::expires_at(&e)]),
            ManagerError::NotFound(_) => Self::NotFound,
            e @ (ManagerError::Revoked(_)
            | ManagerError::Expired(_)
            | ManagerError::Ended(_)
            | ManagerError::HasLiveSuccessor(..)
            | ManagerError::PredecessorActive(..)
            | ManagerError::UsageNotTracked(_)) => Self::NotRotatable(e),
            e @ ManagerError::GraceTooLong(_) => {
                Self::Invalid(vec![FieldError::new("grace_secs", e.to_string())])
            }
            ManagerError::UndeclaredScopes(scopes) => {
                Self::Invalid(vec![FieldError::undeclared(&scopes)])
            }
            ManagerError::CannotGrant(ref scopes)
            | ManagerError::CannotRevoke(_, ref scopes)
            | ManagerError::CannotChange(_, ref scopes) => {
                let scopes = scopes.clone();
                Self::CannotGrant(error, scopes)
            }
            ManagerError::CannotLoosen(loosened) => Self::CannotLoosen(loosened),
            ManagerError::OtherTenant { actor, asked } => Self::OtherTenant { actor, asked },
            ManagerError::Store(e) => Self::Store(e),
            // A refusal this router does not know yet says what the manager said.
            e => Self::NotRotatable(e),
        }
    }
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Body(rejection) => rejection.status(),
            Self::Syntax(_) => StatusCode::BAD_REQUEST,
            Self::NotAnObject | Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound | Self::NoSuchRoute | Self::Store(StoreError::RuledOut) => {
                StatusCode::NOT_FOUND
            }
            Self::NotRotatable(_) => StatusCode::CONFLICT,
            Self::CannotGrant(..)
            | Self::CannotLoosen(_)
            | Self::OtherTenant { .. }
            | Self::CrossOrigin => StatusCode::FORBIDDEN,
            Self::NoActor => StatusCode::UNAUTHORIZED,
            Self::Store(
                StoreError::Unavailable(_) | StoreError::Timeout(_) | StoreError::Overloaded,
            ) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(StoreError::Unsupported(_)) => StatusCode::NOT_IMPLEMENTED,
            Self::Store(_) | Self::Unrepresentable => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::UnsupportedMediaType => {
                "send the body as JSON, with content-type: application/json".to_owned()
            }
            Self::Body(_) if self.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                format!("the body is larger than {MAX_BODY_BYTES} bytes")
            }
            Self::Body(_) => "the body could not be read; send it again".to_owned(),
            Self::Syntax(error) => format!("the body is not valid JSON: {error}"),
            Self::NotAnObject => {
                r#"the body must be a JSON object, such as {"name": "billing-sync", "scopes": ["reports:read"]}"#
                    .to_owned()
            }
            Self::Invalid(_) => "the request has invalid fields; see errors".to_owned(),
            Self::NotFound | Self::Store(StoreError::RuledOut) => {
                "no key has this id; GET /keys lists them".to_owned()
            }
            Self::NoSuchRoute => {
                "no such key-management route; see GET /keys, POST /keys, GET, PATCH or DELETE /keys/{id}, POST /keys/{id}/rotate, POST /self/rotate, GET /scopes"
                    .to_owned()
            }
            Self::NotRotatable(error) => error.to_string(),
            Self::CannotGrant(ManagerError::CannotRevoke(id, scopes), _) => format!(
                "you may not revoke key {id}: it holds {scopes}, which your own scopes do not \
                 grant; ask an administrator who holds them"
            ),
            Self::CannotGrant(ManagerError::CannotChange(id, scopes), _) => format!(
                "you may not change key {id}: it holds {scopes}, which your own scopes do not \
                 grant, and lifting its limits would give it more than you hold; ask an \
                 administrator who holds them"
            ),
            Self::CannotGrant(_, scopes) => format!(
                "you may not grant {scopes}: a key can only be given scopes your own scopes \
                 grant, and rotating a key gives the new key its scopes; ask an \
                 administrator who holds them"
            ),
            Self::CannotLoosen(loosened) => loosened_detail(loosened),
            Self::OtherTenant { actor, asked } => format!(
                "you act for tenant {actor} and may not create a key in tenant {asked}; leave \
                 \"tenant\" out to create the key in {actor}, or ask an operator to create it"
            ),
            Self::NoActor => {
                "sign in first: key management sits behind the application's login, and this \
                 request carries no signed-in person"
                    .to_owned()
            }
            Self::CrossOrigin => {
                "a change from another site is refused: send it from this application's own \
                 pages"
                    .to_owned()
            }
            Self::Store(StoreError::Unavailable(_) | StoreError::Timeout(_)) => {
                "the key store is unavailable; try again shortly".to_owned()
            }
            Self::Store(StoreError::Unsupported(what)) => format!(
                "this server's key store cannot do this: it does not implement {what}"
            ),
            Self::Store(StoreError::Overloaded) => {
                "the key store is busy; try again shortly".to_owned()
            }
            Self::Store(_) | Self::Unrepresentable => {
                "the key store failed; the server's log says why".to_owned()
            }
        }
    }
}

/// What a restriction refusal says, to the actor: which key, and each restriction it
/// would not keep, with the loosest value allowed.
fn loosened_detail(loosened: &Loosened) -> String {
    let listed = loosened.listed();
    let key = loosened.key().map(ToString::to_string).unwrap_or_default();
    match loosened.change() {
        ChangeKind::Create => format!(
            "you may not create a key less restricted than your own key: it needs {listed}. A \
             missing limit is looser than any; ask an administrator without these \
             restrictions for a looser key"
        ),
        ChangeKind::Rotate => format!(
            "you may not rotate key {key}: the new key would copy its limits, which are \
             looser than your own; it would need {listed}. Ask an administrator without \
             these restrictions"
        ),
        ChangeKind::Update => format!(
            "you may not leave key {key} less restricted than your own key: after this \
             change it would need {listed}. A missing limit is looser than any"
        ),
        ChangeKind::UpdateOwn => format!(
            "you may not loosen your own key's restrictions: it must keep {listed}. Ask \
             an administrator without these restrictions"
        ),
        _ => loosened.to_string(),
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Store(error) = &self {
            tracing::error!(%error, "key management request failed in the store");
        }
        if let Self::Unrepresentable = &self {
            tracing::error!("a stored key time is outside years 0-9999 and cannot be shown");
        }
        let detail = self.detail();
        let errors = match &self {
            Self::Invalid(errors) => errors.as_slice(),
            _ => &[],
        };
        // The middleware's members (type, title, status, detail), with the admin's: the
        // first invalid field, every invalid field, the scopes that may not be granted,
        // the restrictions a key would not keep.
        let document = Document {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or(""),
            status: status.as_u16(),
            detail: &detail,
            field: errors.first().map(|e| e.field.as_str()),
            errors: (!errors.is_empty()).then_some(errors),
            not_grantable: match &self {
                Self::CannotGrant(_, scopes) => Some(scopes.iter().map(|s| s.as_str()).collect()),
                _ => None,
            },
            too_loose: match &self {
                Self::CannotLoosen(loosened) => {
                    Some(loosened.restrictions().iter().map(|r| r.field()).collect())
                }
                _ => None,
            },
        };
        let body = serde_json::to_vec(&document).expect("a problem document is plain JSON");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        }
        response
    }
}

/// An RFC 9457 problem document as the admin router writes it; members that do not
/// apply are left out.
#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_grantable: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    too_loose: Option<Vec<&'static str>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use tower_apikey::KeyId;

    async fn document(error: AdminError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
        let status = response.status();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn invalid_fields_are_all_listed_and_the_first_is_named() {
        let (status, body) = document(AdminError::Invalid(vec![
            FieldError::name(&KeyNameError::Empty),
            FieldError::expires_at(&ExpiryError::TooFar),
        ]))
        .await;
        assert_eq!(status, 422);
        assert_eq!(body["status"], 422);
        assert_eq!(body["field"], "name");
        assert_eq!(body["errors"][0]["field"], "name");
        assert_eq!(body["errors"][1]["field"], "expires_at");
        assert!(
            body["errors"][1]["detail"]
                .as_str()
                .unwrap()
                .contains("365 days")
        );
    }

    #[tokio::test]
    async fn store_unavailable_is_503_with_retry_after_and_no_backend_detail() {
        let error = AdminError::Store(StoreError::unavailable("connection refused to db-7"));
        let response = error.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], RETRY_AFTER_SECS);
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("db-7"));
    }

    #[tokio::test]
    async fn manager_errors_map_to_their_status() {
        let id = KeyId::new("0000000000000000").unwrap();
        let cases = [
            (ManagerError::NotFound(id), 404),
            (ManagerError::Revoked(id), 409),
            (ManagerError::Expired(id), 409),
            (ManagerError::Ended(id), 409),
            (
                ManagerError::UndeclaredScopes(Scopes::new(["x:y"]).unwrap()),
                422,
            ),
            (
                ManagerError::CannotGrant(Scopes::new(["x:y"]).unwrap()),
                403,
            ),
            (ManagerError::Scope(ScopeError::Empty), 422),
            (
                ManagerError::Store(StoreError::Corrupt("bad scope".into())),
                500,
            ),
        ];
        for (error, status) in cases {
            let (got, body) = document(AdminError::from(error)).await;
            assert_eq!(got, status);
            assert!(body.get("errors").is_none() || status == 422);
        }
    }

    #[tokio::test]
    async fn creating_in_another_tenant_is_403_and_says_what_to_do() {
        let (status, body) = document(AdminError::from(ManagerError::OtherTenant {
            actor: TenantId::new("acme").unwrap(),
            asked: TenantId::new("globex").unwrap(),
        }))
        .await;
        assert_eq!(status, 403);
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("tenant globex"), "{detail}");
        assert!(detail.contains("leave \"tenant\" out"), "{detail}");
    }

    #[tokio::test]
    async fn a_ceiling_refusal_names_the_scopes_the_actor_may_not_grant() {
        let scopes = Scopes::new(["reports:read", "billing:*"]).unwrap();
        let (status, body) =
            document(AdminError::from(ManagerError::CannotGrant(scopes.clone()))).await;
        assert_eq!(status, 403);
        assert_eq!(
            body["not_grantable"],
            serde_json::json!(["billing:*", "reports:read"])
        );
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("billing:* reports:read"),
            "{body}"
        );
        let id = KeyId::new("0000000000000000").unwrap();
        let (status, body) =
            document(AdminError::from(ManagerError::CannotRevoke(id, scopes))).await;
        assert_eq!(status, 403);
        assert_eq!(body["not_grantable"][0], "billing:*");
        assert!(body["detail"].as_str().unwrap().contains("revoke"));
    }
}

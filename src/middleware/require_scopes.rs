//! [`RequireScopesLayer`]: scopes required on some routes only, on top of
//! [`ApiKeyV2Layer`](crate::ApiKeyV2Layer). Plain tower, so it serves axum, hyper and
//! tonic alike.
//!
//! ```
//! use tower::ServiceBuilder;
//! use tower_apikey::{ApiKeyV2Layer, InMemoryKeyStore, RequireScopesLayer, Scopes};
//!
//! let service = ServiceBuilder::new()
//!     .layer(ApiKeyV2Layer::new(InMemoryKeyStore::new()))
//!     .layer(RequireScopesLayer::new(Scopes::new(["reports:read"]).unwrap()))
//!     .service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("reports")))
//!     });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::metrics;
use crate::middleware::rejection::{Answers, DEFAULT_REALM, Rejection, RejectionKind, is_grpc};
use crate::middleware::response_body::ResponseBody;
use crate::outcome::Outcome;
use crate::record::ApiKeyIdentity;
use crate::scope::Scopes;

/// Requires scopes on the routes it wraps, on top of [`ApiKeyV2Layer`](crate::ApiKeyV2Layer).
///
/// Apply it inside the authentication layer: with axum, by `route_layer` (so that
/// unknown paths stay 404); with hyper or tonic, around the services that need it. A request with
/// no [`ApiKeyIdentity`] gets 401; one whose key lacks a scope gets 403
/// `insufficient_scope` naming the missing scopes.
#[derive(Clone)]
pub struct RequireScopesLayer {
    required: Scopes,
    answers: Answers,
}

impl RequireScopesLayer {
    /// Requires every scope of `required`. The refusal naming all of them is built here
    /// and kept for the life of the process, once per distinct realm and requirement
    /// (see [`ApiKeyV2Layer::realm`](crate::ApiKeyV2Layer::realm)).
    pub fn new(required: Scopes) -> Self {
        Self {
            answers: Answers::new(DEFAULT_REALM).requiring(&required),
            required,
        }
    }

    /// The realm in challenges; use the one given to the authentication layer.
    ///
    /// # Panics
    ///
    /// If `realm` holds `"`, `\` or anything but printable ASCII.
    pub fn realm(mut self, realm: &str) -> Self {
        self.answers = Answers::new(realm).requiring(&self.required);
        self
    }
}

impl fmt::Debug for RequireScopesLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopesLayer")
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RequireScopesLayer {
    type Service = RequireScopes<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopes {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`RequireScopesLayer`]. Like
/// [`ApiKeyV2Service`](crate::ApiKeyV2Service), it serves any inner body type: its
/// responses carry a [`ResponseBody`], the inner body or its own refusal.
#[derive(Clone)]
pub struct RequireScopes<S> {
    inner: S,
    layer: RequireScopesLayer,
}

impl<S: fmt::Debug> fmt::Debug for RequireScopes<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopes")
            .field("inner", &self.inner)
            .field("required", &self.layer.required)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopes<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = RequireScopesFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let kind = match req.extensions().get::<ApiKeyIdentity>() {
            None => RejectionKind::MissingCredentials,
            Some(identity) if identity.scopes().grants_all(&self.layer.required) => {
                return RequireScopesFuture {
                    state: ScopeState::Inner {
                        future: self.inner.call(req),
                    },
                };
            }
            Some(identity) => {
                let missing = identity.scopes().missing_set(&self.layer.required);
                tracing::debug!(key_id = %identity.key_id(), outcome = "insufficient_scope", missing = %missing, "API key refused by route");
                RejectionKind::InsufficientScope(missing)
            }
        };
        // The request is refused: its header map carries the answer's headers.
        let grpc = is_grpc(req.version(), req.headers());
        let scopes = matches!(kind, RejectionKind::InsufficientScope(_));
        let rejection = Rejection::new(
            kind,
            grpc,
            &self.layer.answers,
            std::mem::take(req.headers_mut()),
        );
        let mut response = rejection.into_response();
        if scopes {
            // The authentication layer outside accepted the key and counts the request
            // when this answer reaches it; marked, it counts a refusal instead.
            metrics::scope_refused(&mut response, req.extensions_mut());
        } else {
            // No identity: no authentication layer decided on this request.
            metrics::refused(Outcome::Missing);
        }
        RequireScopesFuture {
            state: ScopeState::Rejected {
                response: Some(response),
            },
        }
    }
}

pin_project! {
    /// The response future of [`RequireScopes`]: the inner response, its body wrapped in
    /// a [`ResponseBody`], or the refusal.
    pub struct RequireScopesFuture<F, B> {
        #[pin]
        state: ScopeState<F, B>,
    }
}

pin_project! {
    #[project = ScopeStateProj]
    enum ScopeState<F, B> {
        // Allowed: the inner service runs.
        Inner { #[pin] future: F },
        // Refused: the answer is ready.
        Rejected { response: Option<Response<ResponseBody<B>>> },
    }
}

impl<F, B, E> Future for RequireScopesFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            ScopeStateProj::Inner { future } => {
                Poll::Ready(ready!(future.poll(cx)).map(|response| response.map(ResponseBody::new)))
            }
            ScopeStateProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .expect("RequireScopesFuture polled after completion"))),
        }
    }
}

impl<F, B> fmt::Debug for RequireScopesFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            ScopeState::Inner { .. } => "RequireScopesFuture::Inner",
            ScopeState::Rejected { .. } => "RequireScopesFuture::Rejected",
        })
    }
}

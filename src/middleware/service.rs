//! [`ApiKeyV2Service`]: the middleware itself.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::error::StoreError;
use crate::metrics;
use crate::middleware::config::Config;
use crate::middleware::future::{LookupFuture, ResponseFuture};
use crate::middleware::rejection::{DefaultRejection, OnRejection, Rejection, RejectionKind};
use crate::middleware::response_body::ResponseBody;
use crate::middleware::verdict::{self, Presented};
use crate::store::KeyStore;

/// The service made by [`ApiKeyV2Layer`](crate::ApiKeyV2Layer): authenticates, then calls the inner service.
///
/// Its error type is the inner service's: a refusal is a response, not an error, so the
/// connection (or gRPC stream) stays up.
///
/// It serves any `Service<http::Request<ReqBody>, Response = http::Response<ResBody>>`,
/// whatever `ResBody` is (it needs no `Default` and no conversion from bytes): its
/// responses carry a [`ResponseBody<ResBody>`], which is the inner body when the request
/// was let through and the layer's own answer when it was refused.
#[derive(Clone)]
pub struct ApiKeyV2Service<S, R = DefaultRejection> {
    inner: S,
    config: Arc<Config>,
    on_rejection: R,
}

impl<S, R> ApiKeyV2Service<S, R> {
    pub(crate) fn from_parts(inner: S, config: Arc<Config>, on_rejection: R) -> Self {
        Self {
            inner,
            config,
            on_rejection,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for ApiKeyV2Service<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: OnRejection<ResBody>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let presenting = match verdict::presenting(&self.config, req.headers(), req.extensions()) {
            Ok(presenting) => presenting,
            Err(kind) => {
                tracing::debug!(outcome = ?kind, "API key refused before lookup");
                return self.reject(kind, &mut req);
            }
        };
        if let Some(found) = self.config.store.lookup_ready(&presenting.id) {
            let presented = match verdict::ready(&self.config, presenting, &found) {
                Ok(presented) => presented,
                Err(kind) => {
                    tracing::debug!(outcome = ?kind, "API key refused before proof");
                    return self.reject(kind, &mut req);
                }
            };
            let decision = verdict::decide(
                &self.config,
                found,
                &presented,
                req.headers(),
                req.extensions(),
            );
            return ResponseFuture::decided(
                decision,
                req,
                &mut self.inner,
                &self.config,
                &self.on_rejection,
            );
        }
        let presented = match verdict::before_lookup(&self.config, presenting) {
            Ok(presented) => presented,
            Err(kind) => {
                tracing::debug!(outcome = ?kind, "API key refused before lookup");
                return self.reject(kind, &mut req);
            }
        };
        // The store must wait. The future owns what it needs: the service made ready by
        // `poll_ready` goes with it, and a clone stays for the next call (tower's "be
        // careful when cloning inner services").
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::lookup(
            self.lookup(&presented),
            presented,
            req,
            inner,
            self.config.clone(),
            self.on_rejection.clone(),
        )
    }
}

impl<S, R> ApiKeyV2Service<S, R> {
    #[inline]
    fn reject<ReqBody, ResBody>(
        &self,
        kind: RejectionKind,
        req: &mut Request<ReqBody>,
    ) -> ResponseFuture<S, ReqBody, ResBody, R>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        R: OnRejection<ResBody>,
    {
        let rejection = Rejection::of(kind, &self.config.answers, req);
        ResponseFuture::rejected(self.on_rejection.on_rejection(rejection))
    }

    /// A boxed, owned lookup, bounded by the configured timeout.
    fn lookup(&self, presented: &Presented) -> LookupFuture {
        let store = self.config.store.clone();
        let timeout = self.config.lookup_timeout;
        let id = presented.id;
        Box::pin(async move {
            // Only lookups that wait are timed: see `metrics`.
            let timer = metrics::LookupTimer::start();
            let found = match timeout {
                Some(limit) => tokio::time::timeout(limit, store.lookup(&id))
                    .await
                    .unwrap_or(Err(StoreError::Timeout(limit))),
                None => store.lookup(&id).await,
            };
            timer.finished();
            found
        })
    }
}

impl<S: fmt::Debug, R> fmt::Debug for ApiKeyV2Service<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyV2Service")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

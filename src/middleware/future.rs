//! [`ResponseFuture`]: the middleware's response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::cors::API_KEY_EXPIRES;
use crate::error::StoreError;
use crate::limits::headers::Seen;
use crate::metrics;
use crate::middleware::config::Config;
use crate::middleware::rejection::{DefaultRejection, OnRejection, Rejection};
use crate::middleware::response_body::ResponseBody;
use crate::middleware::verdict::{self, Decision, Presented};
use crate::record::KeyRecord;

/// A store lookup that owns everything it borrows.
pub(crate) type LookupFuture =
    Pin<Box<dyn Future<Output = Result<Option<KeyRecord>, StoreError>> + Send + 'static>>;

/// What a request waiting on the store needs once the store answers.
struct Pending<S, ReqBody, R> {
    presented: Presented,
    req: Request<ReqBody>,
    inner: S,
    config: Arc<Config>,
    on_rejection: R,
}

pin_project! {
    /// The response future of [`ApiKeyV2Service`](crate::ApiKeyV2Service): the inner
    /// service's response with its body wrapped in a [`ResponseBody`], or the layer's
    /// answer to a refused request.
    pub struct ResponseFuture<S, ReqBody, ResBody, R = DefaultRejection>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, ResBody, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, ResBody, R>
    where
        S: Service<Request<ReqBody>>,
    {
        // Waiting for a store that could not answer at once.
        // `Pending` is boxed so that the future stays small (it is moved on every
        // request) when the store answers at once and this state is never used.
        Lookup {
            lookup: LookupFuture,
            pending: Option<Box<Pending<S, ReqBody, R>>>,
        },
        // Accepted: running the inner service.
        Inner {
            #[pin]
            future: S::Future,
            expires: Option<SystemTime>,
            limits: Option<Seen>,
            // Counts the request once its answer is ready (or it is dropped): a
            // `RequireScopesLayer` inside may still refuse it.
            accepted: metrics::Accepted,
        },
        // Refused: the answer is ready.
        Rejected {
            response: Option<Response<ResponseBody<ResBody>>>,
        },
    }
}

impl<S, ReqBody, ResBody, R> ResponseFuture<S, ReqBody, ResBody, R>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn inner(
        future: S::Future,
        expires: Option<SystemTime>,
        limits: Option<Seen>,
    ) -> Self {
        Self {
            state: State::Inner {
                future,
                expires,
                limits,
                accepted: metrics::Accepted::new(),
            },
        }
    }

    /// The future after the verdict, for the ready and the waiting path alike: on
    /// acceptance the identity goes into the request's extensions, the key's header is
    /// marked sensitive (so that `Debug` of the headers downstream does not print it)
    /// and `inner` is called; on refusal the answer is made.
    #[inline]
    pub(crate) fn decided(
        decision: Decision,
        mut req: Request<ReqBody>,
        inner: &mut S,
        config: &Config,
        on_rejection: &R,
    ) -> Self
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        R: OnRejection<ResBody>,
    {
        match decision {
            Decision::Accept {
                identity,
                expires,
                limits,
            } => {
                if let Some(key) = req.headers_mut().get_mut(AUTHORIZATION) {
                    key.set_sensitive(true);
                }
                req.extensions_mut().insert(identity);
                Self::inner(inner.call(req), expires, limits)
            }
            Decision::Reject { kind, limits } => {
                let mut rejection = Rejection::of(kind, &config.answers, &mut req);
                if let Some(limits) = limits {
                    limits.write(rejection.headers_mut());
                }
                Self::rejected(on_rejection.on_rejection(rejection))
            }
        }
    }

    #[inline]
    pub(crate) fn rejected(response: Response<ResponseBody<ResBody>>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) fn lookup(
        lookup: LookupFuture,
        presented: Presented,
        req: Request<ReqBody>,
        inner: S,
        config: Arc<Config>,
        on_rejection: R,
    ) -> Self {
        Self {
            state: State::Lookup {
                lookup,
                pending: Some(Box::new(Pending {
                    presented,
                    req,
                    inner,
                    config,
                    on_rejection,
                })),
            },
        }
    }
}

impl<S, ReqBody, ResBody, R> Future for ResponseFuture<S, ReqBody, ResBody, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: OnRejection<ResBody>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Lookup { lookup, pending } => {
                    let found = ready!(lookup.as_mut().poll(cx));
                    let Pending {
                        presented,
                        req,
                        mut inner,
                        config,
                        on_rejection,
                    } = *pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let decision = verdict::decide(
                        &config,
                        found,
                        &presented,
                        req.headers(),
                        req.extensions(),
                    );
                    let next = Self::decided(decision, req, &mut inner, &config, &on_rejection);
                    state.set(next.state);
                }
                StateProj::Inner {
                    future,
                    expires,
                    limits,
                    accepted,
                } => {
                    let mut response = ready!(future.poll(cx))?.map(ResponseBody::new);
                    accepted.answered(&mut response);
                    if let Some(limits) = limits.take() {
                        limits.write(response.headers_mut());
                    }
                    if let Some(expires_at) = expires.take() {
                        let date = httpdate::fmt_http_date(expires_at);
                        // An IMF-fixdate is always a valid header value.
                        if let Ok(value) = HeaderValue::from_str(&date) {
                            response.headers_mut().insert(API_KEY_EXPIRES, value);
                        }
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

impl<S, ReqBody, ResBody, R> std::fmt::Debug for ResponseFuture<S, ReqBody, ResBody, R>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Lookup { .. } => "Lookup",
            State::Inner { .. } => "Inner",
            State::Rejected { .. } => "Rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

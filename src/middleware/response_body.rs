//! [`ResponseBody`]: the body of every response the middleware returns.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of the responses of [`ApiKeyV2Service`](crate::ApiKeyV2Service) and
    /// [`RequireScopes`](crate::middleware::RequireScopes): the inner service's body when the request
    /// was let through, or the layer's own answer when it was refused (an RFC 9457
    /// problem document, or nothing for a gRPC trailers-only answer).
    ///
    /// Wrapping the body, as tower-http's compression and timeout bodies do, is what lets
    /// the layer write its answer whatever the inner body type is: the inner body needs
    /// no `Default` and no conversion from bytes. It is a [`Body`] whenever the inner
    /// body is one whose data can be made from [`Bytes`] (every body axum, hyper and
    /// tonic use), so axum's `Router::layer`, tonic's `Server::builder().layer(..)` and
    /// hyper take it as it is.
    ///
    /// A custom [`OnRejection`](crate::middleware::OnRejection) that writes its own body wraps it
    /// with [`ResponseBody::new`]:
    ///
    /// ```
    /// use http_body_util::Full;
    /// use bytes::Bytes;
    /// use tower_apikey::{ApiKeyV2Layer, InMemoryKeyStore};
    /// use tower_apikey::middleware::{Rejection, ResponseBody};
    ///
    /// let layer = ApiKeyV2Layer::new(InMemoryKeyStore::new()).on_rejection(|rejection: Rejection| {
    ///     let status = rejection.kind().status();
    ///     let mut response = http::Response::new(ResponseBody::new(Full::new(Bytes::from("go away"))));
    ///     *response.status_mut() = status;
    ///     response
    /// });
    /// ```
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        // The inner service's body, passed through.
        Inner { #[pin] body: B },
        // The layer's answer: `None` once sent, or when there is nothing to send.
        Answer { bytes: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body (or any body of that type).
    #[inline]
    pub fn new(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// The layer's own answer: `bytes`, shared, not copied.
    pub(crate) fn answer(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Answer {
                bytes: (!bytes.is_empty()).then_some(bytes),
            },
        }
    }
}

/// An empty body, whatever `B` is: what a gRPC trailers-only answer carries.
impl<B> Default for ResponseBody<B> {
    fn default() -> Self {
        Self {
            kind: Kind::Answer { bytes: None },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Answer { bytes } => {
                Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes.into()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Answer { bytes } => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Answer { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |bytes| bytes.len() as u64))
            }
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "Inner",
            Kind::Answer { .. } => "Answer",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

/// A body that is ready at once (every answer of the layer's own), read whole.
#[cfg(test)]
pub(crate) fn collect<B: Body + Unpin>(body: B) -> Bytes
where
    B::Error: fmt::Debug,
{
    use futures_util::FutureExt;
    use http_body_util::BodyExt;
    body.collect()
        .now_or_never()
        .expect("ready at once")
        .unwrap()
        .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[test]
    fn an_answer_is_its_bytes_with_an_exact_size() {
        let body = ResponseBody::<Full<Bytes>>::answer(Bytes::from_static(b"{}"));
        assert_eq!(body.size_hint().exact(), Some(2));
        assert!(!body.is_end_stream());
        assert_eq!(collect(body), "{}");
    }

    #[test]
    fn the_default_is_empty_and_ended_for_any_body() {
        struct NotABody;
        let _ = ResponseBody::<NotABody>::default();
        let body = ResponseBody::<Full<Bytes>>::default();
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert_eq!(collect(body), "");
    }

    #[test]
    fn the_inner_body_passes_through() {
        let body = ResponseBody::new(Full::new(Bytes::from_static(b"pong")));
        assert_eq!(body.size_hint().exact(), Some(4));
        assert_eq!(collect(body), "pong");
    }
}

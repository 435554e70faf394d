//! What the HTTP integration tests share: a whole answer read off a real response.

use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;

/// A response with its body read to the end.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// Reads `response` to the end; a body that is not UTF-8 is shown lossily.
    pub async fn read<B>(response: Response<B>) -> Self
    where
        B: hyper::body::Body,
        B::Error: std::fmt::Debug,
    {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("read the body").to_bytes();
        Self {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

//! What the tests that drive the demo from outside share: reading its answers, and
//! talking to it over raw HTTP/1.1 connections.

use std::net::SocketAddr;

use http::Request;
use http::header::CONTENT_TYPE;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::common::Answer;
use super::demo_process::GUARD;

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: impl http::header::AsHeaderName) -> &str {
        self.headers
            .get(name)
            .expect("header present")
            .to_str()
            .unwrap()
    }

    /// A problem document: its status agrees with the response's.
    pub fn problem(&self) -> Value {
        assert_eq!(self.header(CONTENT_TYPE), "application/problem+json");
        let problem = self.json();
        assert_eq!(problem["status"], self.status.as_u16(), "{problem}");
        assert!(problem["detail"].is_string(), "{problem}");
        problem
    }
}

/// A long time, for the limits a test is not about.
pub const NEVER: &str = "3600";

/// Reads from `stream` until the server closes it; returns what it sent first. Panics
/// if the server keeps it open for [`GUARD`].
pub async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(GUARD, async {
        let mut buffer = [0; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(error) => panic!("reading: {error}"),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&received).into_owned()
}

/// An HTTP/1.1 client connection to `addr`, its driver spawned; the server's closing
/// it ends the driver.
pub async fn http1(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    (sender, tokio::spawn(connection))
}

pub fn get_health(addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}/health"))
        .header("host", addr.to_string())
        .body(Full::default())
        .unwrap()
}

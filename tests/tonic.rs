//! The tonic example's server behind the layer, called by a real tonic client over
//! loopback: gRPC statuses for refusals, and the identity in the handler.

// The example's `main` is `cargo run --example tonic`; here its server and client run.
#[allow(dead_code)]
#[path = "../examples/tonic.rs"]
mod example;

use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tower_apikey::{InMemoryKeyStore, KeyManager, NewKey};

struct Server {
    channel: Channel,
    manager: KeyManager<InMemoryKeyStore>,
}

impl Server {
    async fn start() -> Self {
        let manager = KeyManager::new(InMemoryKeyStore::new());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = manager.clone();
        tokio::spawn(async move {
            example::serve(listener, &server, std::future::pending())
                .await
                .unwrap()
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self { channel, manager }
    }

    async fn key(&self, scopes: &[&str]) -> (String, String) {
        let created = self
            .manager
            .create(NewKey::new("grpc caller", scopes.iter().copied()))
            .await
            .unwrap();
        (
            created.key.expose_secret().to_owned(),
            created.record.id().to_string(),
        )
    }

    async fn check(
        &self,
        key: Option<&str>,
    ) -> Result<tonic::Response<tonic_health::pb::HealthCheckResponse>, tonic::Status> {
        example::client(self.channel.clone(), key)
            .check(HealthCheckRequest::default())
            .await
    }
}

#[tokio::test]
async fn no_key_is_unauthenticated() {
    let server = Server::start().await;
    let status = server.check(None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("ApiKey-v2"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn malformed_unknown_and_revoked_keys_are_unauthenticated() {
    let server = Server::start().await;
    let (key, id) = server.key(&["health:read"]).await;
    let (unknown, _) = {
        let other = Server::start().await;
        other.key(&["health:read"]).await
    };
    for bad in ["mkc_nope", unknown.as_str()] {
        let status = server.check(Some(bad)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{bad:.8}");
    }
    server.manager.revoke(&id.parse().unwrap()).await.unwrap();
    let status = server.check(Some(&key)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the key has been revoked");
}

#[tokio::test]
async fn a_key_without_the_scope_is_permission_denied() {
    let server = Server::start().await;
    let (key, _) = server.key(&["reports:read"]).await;
    let status = server.check(Some(&key)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "the key lacks a required scope: health:read"
    );
}

#[tokio::test]
async fn a_valid_key_is_ok_and_the_handler_sees_the_callers_identity() {
    let server = Server::start().await;
    let (key, id) = server.key(&["health:read"]).await;
    let response = server.check(Some(&key)).await.unwrap();
    assert_eq!(
        response.metadata().get(example::CALLER_KEY_ID).unwrap(),
        id.as_str()
    );
    assert_eq!(response.into_inner().status(), ServingStatus::Serving);
}

#[tokio::test]
async fn refusals_leave_the_connection_usable() {
    let server = Server::start().await;
    let (key, _) = server.key(&["health:read"]).await;
    // One HTTP/2 connection: refusals are answers, not stream resets or closed
    // connections, so the calls after them go through.
    for _ in 0..3 {
        assert_eq!(
            server.check(None).await.unwrap_err().code(),
            Code::Unauthenticated
        );
        assert!(server.check(Some(&key)).await.is_ok());
    }
}

#[tokio::test]
async fn guessing_keys_gets_resource_exhausted() {
    let server = Server::start().await;
    let (key, _) = server.key(&["health:read"]).await;
    let wrong = tower_apikey::testing::with_wrong_secret(&key);
    // The example copies tonic's `TcpConnectInfo` into the `SocketAddr` the layer reads.
    for _ in 0..example::FAILURES_PER_MINUTE {
        let status = server.check(Some(&wrong)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let status = server.check(Some(&wrong)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("too many invalid keys"),
        "{}",
        status.message()
    );
    // The right key, proven from memory, is never throttled (DESIGN §6).
    assert!(server.check(Some(&key)).await.is_ok());
}

//! The demo binary (`examples/demo` of the core crate) with `--database-url`, from
//! outside: its admin key lives in a file (DESIGN §7), its keys in a real PostgreSQL
//! (`APIKEY_TEST_DATABASE_URL`; scripts/test provides one).

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/demo_client.rs"]
mod demo_client;
#[path = "../../tests/common/demo_process.rs"]
mod demo_process;

use std::time::{Duration, UNIX_EPOCH};

use common::Answer;
use demo_client::{NEVER, get_health, http1, read_until_closed};
use demo_process::{DemoProcess, GUARD};
use http::header::CONTENT_TYPE;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// The demo's default `--failures-per-minute` (`examples/demo/app.rs`).
const FAILURES_PER_MINUTE: u32 = 10;

mod with_a_database {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::SystemTime;

    use sqlx::PgPool;

    use super::*;

    fn unix_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// One test's schema in `APIKEY_TEST_DATABASE_URL` and its directory for the key
    /// file, both named `demo_t<unix time>_<pid>_<n>`. [`Setup::clean`] drops the
    /// schema, and the first setup of a run those of runs more than an hour old; the
    /// directory goes when the setup drops.
    struct Setup {
        url: String,
        pool: PgPool,
        schema: String,
        dir: PathBuf,
    }

    impl Setup {
        async fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let url = std::env::var("APIKEY_TEST_DATABASE_URL").expect(
                "APIKEY_TEST_DATABASE_URL must name a PostgreSQL database for these tests: \
                 run scripts/test, which provides one, or set it yourself",
            );
            let pool = PgPool::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to APIKEY_TEST_DATABASE_URL: {e}"));
            drop_stale_schemas(&pool).await;
            let schema = format!(
                "demo_t{}_{}_{}",
                unix_now(),
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let dir = std::env::temp_dir().join(&schema);
            std::fs::create_dir(&dir).unwrap();
            Self {
                url,
                pool,
                schema,
                dir,
            }
        }

        fn key_file(&self) -> PathBuf {
            self.dir.join("admin.key")
        }

        fn args(&self) -> Vec<String> {
            vec![
                "--database-url".into(),
                self.url.clone(),
                "--database-schema".into(),
                self.schema.clone(),
                "--admin-key-file".into(),
                self.key_file().to_str().unwrap().into(),
            ]
        }

        async fn start(&self) -> DemoProcess {
            let args = self.args();
            DemoProcess::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
        }

        async fn fail(&self) -> String {
            let args = self.args();
            DemoProcess::fail(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
        }

        /// Runs `sql` on the demo's table, named `keys` in it, for key `id` (`$1`).
        async fn change(&self, sql: &str, id: &str) {
            let sql = sql.replace("keys", &format!("\"{}\".api_keys", self.schema));
            let changed = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .execute(&self.pool)
                .await
                .unwrap();
            assert_eq!(changed.rows_affected(), 1);
        }

        /// The file's content, checking that only its owner may read it.
        fn read_key_file(&self) -> String {
            use std::os::unix::fs::PermissionsExt;
            let path = self.key_file();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
            std::fs::read_to_string(path).unwrap()
        }

        /// Drops the schema; a failed test leaves it to the stale-schema sweep.
        async fn clean(self) {
            let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
            sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&self.pool)
                .await
                .unwrap();
        }
    }

    impl Drop for Setup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    async fn drop_stale_schemas(pool: &PgPool) {
        static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if DONE.swap(true, Ordering::SeqCst) {
            return;
        }
        let schemas: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'demo\\_t%'",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let cutoff = unix_now().saturating_sub(3600);
        for schema in schemas {
            let created: Option<u64> = schema
                .strip_prefix("demo_t")
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse().ok());
            if created.is_some_and(|secs| secs < cutoff) {
                let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                sqlx::query(sqlx::AssertSqlSafe(drop))
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }

    /// `method path` on `demo` with `key`.
    async fn send(demo: &DemoProcess, method: Method, path: &str, key: &str) -> Answer {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", demo.addr))
            .header("authorization", format!("ApiKey-v2 {key}"))
            .body(Full::default())
            .unwrap();
        Answer::read(client.request(request).await.unwrap()).await
    }

    /// The ids of the admin keys in the database, as `key` lists them.
    async fn admin_key_ids(demo: &DemoProcess, key: &str) -> Vec<String> {
        let answer = send(demo, Method::GET, "/admin/keys", key).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|record| record["name"] == "demo admin")
            .map(|record| record["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn id_of(key: &str) -> &str {
        key.split('_').nth(1).unwrap()
    }

    #[tokio::test]
    async fn a_restart_prints_the_same_admin_key() {
        let setup = Setup::new().await;
        let first = setup.start().await;
        let key = first.admin_key.clone();
        assert_eq!(setup.read_key_file(), format!("{key}\n"));
        assert!(!first.log().contains(&key), "the key is never logged");
        first.stop().await;

        let second = setup.start().await;
        assert_eq!(second.admin_key, key);
        assert_eq!(admin_key_ids(&second, &key).await, [id_of(&key)]);
        assert!(!second.log().contains(&key), "the key is never logged");
        second.stop().await;
        setup.clean().await;
    }

    #[tokio::test]
    async fn two_demos_starting_together_share_one_admin_key() {
        let setup = Setup::new().await;
        let (a, b) = tokio::join!(setup.start(), setup.start());
        assert_eq!(a.admin_key, b.admin_key);
        assert_eq!(admin_key_ids(&b, &a.admin_key).await, [id_of(&a.admin_key)]);
        assert_eq!(setup.read_key_file(), format!("{}\n", a.admin_key));
        a.stop().await;
        b.stop().await;
        setup.clean().await;
    }

    #[tokio::test]
    async fn an_admin_key_no_longer_active_is_replaced() {
        let setup = Setup::new().await;
        let demo = setup.start().await;
        let revoked = demo.admin_key.clone();
        let path = format!("/admin/keys/{}", id_of(&revoked));
        let answer = send(&demo, Method::DELETE, &path, &revoked).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        demo.stop().await;

        // Revoked: a new key, in the file; the old one stays refused.
        let demo = setup.start().await;
        let key = demo.admin_key.clone();
        assert_ne!(key, revoked);
        assert_eq!(setup.read_key_file(), format!("{key}\n"));
        let refused = send(&demo, Method::GET, "/admin/keys", &revoked).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert_eq!(admin_key_ids(&demo, &key).await.len(), 2);
        demo.stop().await;

        // Expired, as a year passing would leave it; lacking the admin scope; gone from
        // the database: each time a new key.
        let mut previous = key;
        for change in [
            "UPDATE keys SET expires_at = now() - interval '1 second' WHERE id = $1",
            "UPDATE keys SET scopes = ARRAY['reports:read'] WHERE id = $1",
            "DELETE FROM keys WHERE id = $1",
        ] {
            setup.change(change, id_of(&previous)).await;
            let demo = setup.start().await;
            assert_ne!(demo.admin_key, previous, "after {change}");
            assert_eq!(setup.read_key_file(), format!("{}\n", demo.admin_key));
            let answer = send(&demo, Method::GET, "/admin/keys", &demo.admin_key).await;
            assert_eq!(answer.status, StatusCode::OK);
            previous = demo.admin_key.clone();
            demo.stop().await;
        }
        setup.clean().await;
    }

    #[tokio::test]
    async fn a_key_file_that_holds_no_key_or_others_may_read_is_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let setup = Setup::new().await;
        let path = setup.key_file();

        std::fs::write(&path, "not a key\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let log = setup.fail().await;
        assert!(log.contains("does not hold an API key"), "{log}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key\n");

        // A real key, in a file others may read: refused, and left for the operator.
        std::fs::remove_file(&path).unwrap();
        let demo = setup.start().await;
        let key = demo.admin_key.clone();
        demo.stop().await;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let log = setup.fail().await;
        assert!(log.contains("chmod 600"), "{log}");
        assert!(!log.contains(&key), "the key is never logged");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{key}\n"));
        setup.clean().await;
    }

    /// The Prometheus text's value of `series` (a name, with its labels if any).
    fn metric(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|value| value.parse().unwrap())
    }

    #[tokio::test]
    async fn metrics_show_the_feed_listener_up_and_the_cache_in_front_of_the_database() {
        let setup = Setup::new().await;
        let mut args = setup.args();
        args.extend(["--metrics-addr".to_owned(), "127.0.0.1:0".to_owned()]);
        let demo = DemoProcess::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        let metrics = demo.metrics_addr();
        let scrape = || async {
            request_demo(metrics, Method::GET, "/metrics", None, None)
                .await
                .body
        };
        // The listener connects on its own task: up within the guard.
        let up = tokio::time::timeout(GUARD, async {
            while metric(&scrape().await, "apikey_feed_connected") != Some(1.0) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(up.is_ok(), "{}", scrape().await);

        let admin = Some(format!("ApiKey-v2 {}", demo.admin_key));
        for _ in 0..2 {
            let answer = request_demo(demo.addr, Method::GET, "/ping", admin.clone(), None).await;
            assert_eq!(answer.status, StatusCode::OK);
        }
        let text = scrape().await;
        // The first asks the database (and is timed), the second is answered from memory.
        assert_eq!(
            metric(&text, "apikey_cache_misses_total"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            metric(&text, "apikey_cache_hits_total"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            metric(&text, "apikey_lookup_duration_seconds_count"),
            Some(1.0),
            "{text}"
        );
        assert!(
            text.contains("apikey_lookup_duration_seconds_bucket{le=\"0.001\"}"),
            "a histogram with the demo's buckets: {text}"
        );
        assert_eq!(
            metric(&text, r#"apikey_requests_total{outcome="accepted"}"#),
            Some(2.0)
        );
        demo.stop().await;
        setup.clean().await;
    }
}

/// One request to a running demo: `method path` with `Authorization: ApiKey-v2 <key>`
/// (or the raw `authorization`, or none) and a JSON body if any.
async fn request_demo(
    addr: SocketAddr,
    method: Method,
    path: &str,
    authorization: Option<String>,
    body: Option<Value>,
) -> Answer {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let bytes = match body {
        Some(json) => {
            request = request.header(CONTENT_TYPE, "application/json");
            json.to_string().into_bytes()
        }
        None => Vec::new(),
    };
    let response = client
        .request(request.body(Full::new(Bytes::from(bytes))).unwrap())
        .await
        .unwrap();
    Answer::read(response).await
}

/// `apikey_requests_total` by outcome, scraped from `GET /metrics` (no key) on the
/// demo's metrics listener at `metrics`.
async fn scrape_outcomes(metrics: SocketAddr) -> std::collections::BTreeMap<String, u64> {
    let answer = request_demo(metrics, Method::GET, "/metrics", None, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(
        answer.header(CONTENT_TYPE).starts_with("text/plain"),
        "Prometheus text"
    );
    answer
        .body
        .lines()
        .filter_map(|line| line.strip_prefix("apikey_requests_total{outcome=\""))
        .map(|rest| {
            let (outcome, value) = rest.split_once("\"} ").expect("one label");
            (outcome.to_owned(), value.parse().expect("a whole count"))
        })
        .collect()
}

#[tokio::test]
async fn the_demo_serves_metrics_without_a_key_counting_each_request_once_by_outcome() {
    let demo = DemoProcess::start(&["--metrics-addr", "127.0.0.1:0"]).await;
    let addr = demo.addr;
    let metrics = demo.metrics_addr();
    let before = scrape_outcomes(metrics).await;
    let outcomes = tower_apikey::metrics::OUTCOMES;
    assert_eq!(
        before
            .keys()
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>(),
        outcomes.iter().copied().collect(),
        "every outcome of DESIGN §13 is there from the start"
    );
    assert!(before.values().all(|&n| n == 0), "{before:?}");

    let admin = Some(format!("ApiKey-v2 {}", demo.admin_key));
    let create = |body: Value| {
        let admin = admin.clone();
        async move {
            let answer = request_demo(addr, Method::POST, "/admin/keys", admin, Some(body)).await;
            assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
            let created = answer.json();
            (
                created["key"].as_str().unwrap().to_owned(),
                created["id"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (reader, _) = create(json!({"name": "reader", "scopes": ["reports:read"]})).await;
    let (limited, _) = create(json!({
        "name": "limited", "scopes": ["reports:read"],
        "rate_limit": {"requests": 1, "per_secs": 3600},
    }))
    .await;
    let (gone, gone_id) = create(json!({"name": "gone", "scopes": ["reports:read"]})).await;
    let revoked = request_demo(
        addr,
        Method::DELETE,
        &format!("/admin/keys/{gone_id}"),
        admin.clone(),
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK);

    let with = |key: &str| Some(format!("ApiKey-v2 {key}"));
    let wrong = tower_apikey::testing::with_wrong_secret(&reader);
    let mix: [(Method, &str, Option<String>, StatusCode); 11] = [
        (Method::GET, "/ping", with(&reader), StatusCode::OK),
        (Method::GET, "/reports", with(&reader), StatusCode::OK),
        // Refused by the route's `RequireScopesLayer`, inside the API's layer.
        (
            Method::POST,
            "/reports",
            with(&reader),
            StatusCode::FORBIDDEN,
        ),
        (Method::GET, "/ping", None, StatusCode::UNAUTHORIZED),
        (
            Method::GET,
            "/ping",
            Some("Bearer abc".into()),
            StatusCode::UNAUTHORIZED,
        ),
        (Method::GET, "/ping", with(&wrong), StatusCode::UNAUTHORIZED),
        (Method::GET, "/ping", with(&gone), StatusCode::UNAUTHORIZED),
        (Method::GET, "/ping", with(&limited), StatusCode::OK),
        (
            Method::GET,
            "/ping",
            with(&limited),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        // Not behind the layer: not counted.
        (Method::GET, "/health", None, StatusCode::OK),
        (
            Method::GET,
            "/nowhere",
            with(&reader),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, path, authorization, status) in mix {
        let answer = request_demo(addr, method.clone(), path, authorization, None).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
    }

    let after = scrape_outcomes(metrics).await;
    let expected: std::collections::BTreeMap<String, u64> = outcomes
        .iter()
        .map(|&outcome| {
            let n = match outcome {
                // Four admin calls (three creates, a revoke), then /ping, /reports, the
                // limited key's first /ping.
                "accepted" => 7,
                "insufficient_scope" | "missing" | "invalid_request" | "invalid_key"
                | "revoked" | "rate_limited" => 1,
                _ => 0,
            };
            (outcome.to_owned(), n)
        })
        .collect();
    assert_eq!(after, expected);
    // The scrape carries the other metrics too, with their help text.
    let text = request_demo(metrics, Method::GET, "/metrics", None, None)
        .await
        .body;
    for name in ["apikey_requests_total", "apikey_usage_flushes_total"] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
    }
    assert!(!text.contains(&reader) && !text.contains(&demo.admin_key));
    demo.stop().await;
}

// DESIGN §7's flags from outside: trusted proxies, the cap per client, and the metrics
// on a listener of their own.

/// `GET path` on a running demo with `Authorization: ApiKey-v2 <key>` and `header`, as
/// a proxy in front of the demo would send it.
async fn get_with(addr: SocketAddr, path: &str, key: &str, header: Option<(&str, &str)>) -> Answer {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::get(format!("http://{addr}{path}"))
        .header("authorization", format!("ApiKey-v2 {key}"));
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let response = client
        .request(request.body(Full::default()).unwrap())
        .await
        .unwrap();
    Answer::read(response).await
}

/// Creates a key on a running demo with the admin key; returns the key.
async fn create_on(demo: &DemoProcess, body: Value) -> String {
    let admin = Some(format!("ApiKey-v2 {}", demo.admin_key));
    let answer = request_demo(demo.addr, Method::POST, "/admin/keys", admin, Some(body)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.json()["key"].as_str().unwrap().to_owned()
}

fn xff(addr: &str) -> Option<(&'static str, &str)> {
    Some(("x-forwarded-for", addr))
}

#[tokio::test]
async fn h1_behind_trusted_proxies_the_throttle_and_allowlists_see_the_forwarded_address() {
    // The test's client, on loopback, plays the proxy.
    let demo = DemoProcess::start(&["--trusted-proxies", "192.0.2.0/24,127.0.0.1"]).await;
    let key = create_on(
        &demo,
        json!({"name": "partner", "scopes": ["reports:read"], "allowed_ips": ["203.0.113.7"]}),
    )
    .await;

    // The key's allowlist matches the forwarded address, not the proxy's.
    let allowed = get_with(demo.addr, "/ping", &key, xff("203.0.113.7")).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    for refused_from in [None, xff("203.0.113.8"), xff("203.0.113.7, 198.51.100.1")] {
        // Without the header the client is the proxy itself; with a client's own entry
        // on the left, the client is the entry the proxy appended.
        let refused = get_with(demo.addr, "/ping", &key, refused_from).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused_from:?}");
        assert_eq!(refused.problem()["error"], "address_not_allowed");
    }

    // Wrong keys forwarded for 203.0.113.7 throttle 203.0.113.7 ...
    let wrong = tower_apikey::testing::with_wrong_secret(&key);
    for i in 0..FAILURES_PER_MINUTE {
        let answer = get_with(demo.addr, "/ping", &wrong, xff("203.0.113.7")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let throttled = get_with(demo.addr, "/ping", &wrong, xff("203.0.113.7")).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.problem()["error"], "throttled");
    // ... through a chain of trusted proxies too ...
    let chained = get_with(
        demo.addr,
        "/ping",
        &wrong,
        xff("198.51.100.1, 203.0.113.7, 192.0.2.9"),
    )
    .await;
    assert_eq!(chained.status, StatusCode::TOO_MANY_REQUESTS);
    // ... and neither another forwarded address nor the proxy.
    for other in [xff("203.0.113.8"), None] {
        let answer = get_with(demo.addr, "/ping", &wrong, other).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{other:?}");
    }
    demo.stop().await;
}

#[tokio::test]
async fn without_trusted_proxies_the_demo_ignores_forwarding_headers() {
    let demo = DemoProcess::start(&[]).await;
    let key = create_on(
        &demo,
        json!({"name": "partner", "scopes": ["reports:read"], "allowed_ips": ["203.0.113.7"]}),
    )
    .await;
    for claim in [xff("203.0.113.7"), Some(("forwarded", "for=203.0.113.7"))] {
        let answer = get_with(demo.addr, "/ping", &key, claim).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{claim:?}");
    }
    // Every guess counts against the peer, whatever address it claims.
    let wrong = tower_apikey::testing::with_wrong_secret(&key);
    for i in 0..FAILURES_PER_MINUTE {
        let answer = get_with(demo.addr, "/ping", &wrong, xff(&format!("203.0.113.{i}"))).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let answer = get_with(demo.addr, "/ping", &wrong, xff("198.51.100.9")).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    demo.stop().await;
}

#[tokio::test]
async fn with_proxy_header_forwarded_only_forwarded_is_read() {
    let demo = DemoProcess::start(&[
        "--trusted-proxies",
        "127.0.0.1",
        "--proxy-header",
        "forwarded",
    ])
    .await;
    let key = create_on(
        &demo,
        json!({"name": "partner", "scopes": [], "allowed_ips": ["203.0.113.7", "2001:db8::7"]}),
    )
    .await;
    for from in ["for=203.0.113.7", "for=\"[2001:db8::7]:4711\";proto=https"] {
        let answer = get_with(demo.addr, "/ping", &key, Some(("forwarded", from))).await;
        assert_eq!(answer.status, StatusCode::OK, "{from}: {}", answer.body);
    }
    // The header the proxies do not write is a client's, and not read.
    let answer = get_with(demo.addr, "/ping", &key, xff("203.0.113.7")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    demo.stop().await;
}

#[tokio::test]
async fn a_trusted_proxy_that_is_no_address_or_network_stops_the_start() {
    for (flag, entry) in [
        ("10.0.0.0/8,10.0.0.0/33", "\"10.0.0.0/33\""),
        ("proxy.internal", "\"proxy.internal\""),
        ("", "\"\""),
    ] {
        let log = DemoProcess::fail(&["--trusted-proxies", flag]).await;
        assert!(log.contains("--trusted-proxies"), "{log}");
        assert!(log.contains(entry), "{log}");
        assert!(log.contains("10.0.0.0/8 or 2001:db8::/32"), "{log}");
    }
}

/// A TCP connection to `addr` from the loopback address `from` (Linux routes all of
/// 127.0.0.0/8 to the loopback interface): another client, as the demo sees it.
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test]
async fn l5_one_client_cannot_hold_every_connection() {
    let demo = DemoProcess::start(&[
        "--max-connections",
        "6",
        "--max-connections-per-client",
        "3",
        "--idle-timeout-secs",
        NEVER,
        "--header-read-timeout-secs",
        NEVER,
    ])
    .await;
    // One client (127.0.0.1) holds its 3 connections, each served.
    let mut held = Vec::new();
    for _ in 0..3 {
        let (mut sender, connection) = http1(demo.addr).await;
        let answer = sender.send_request(get_health(demo.addr)).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        held.push((sender, connection));
    }
    // It opens more than the whole server's cap: each is closed at once, unanswered,
    // while the client keeps its end open.
    let mut extra = Vec::new();
    for _ in 0..8 {
        extra.push(TcpStream::connect(demo.addr).await.unwrap());
    }
    for stream in &mut extra {
        assert_eq!(read_until_closed(stream).await, "");
    }
    // Another client is served at once, and the first one's connections still work.
    let stream = connect_from("127.0.0.2", demo.addr).await;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let answer = tokio::time::timeout(GUARD, sender.send_request(get_health(demo.addr)))
        .await
        .expect("a new client is served while another holds its share")
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    for (sender, _) in &mut held {
        let answer = sender.send_request(get_health(demo.addr)).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
    // A connection the client gives up makes room for one more of its own.
    drop(held.pop());
    let reopened = tokio::time::timeout(GUARD, async {
        loop {
            let (mut sender, _connection) = http1(demo.addr).await;
            if let Ok(answer) = sender.send_request(get_health(demo.addr)).await {
                return answer.status();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the client's next connection is served once it closed one");
    assert_eq!(reopened, StatusCode::OK);
    demo.stop().await;
}

#[tokio::test]
async fn l9_metrics_are_served_only_on_their_own_listener() {
    let demo = DemoProcess::start(&["--metrics-addr", "127.0.0.1:0"]).await;
    let metrics = demo.metrics_addr();
    assert_ne!(metrics, demo.addr);
    let admin = Some(format!("ApiKey-v2 {}", demo.admin_key));
    // Not on the main listener, with a key or without.
    for authorization in [None, admin.clone()] {
        let answer = request_demo(demo.addr, Method::GET, "/metrics", authorization, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
        assert!(!answer.body.contains("apikey_"), "{}", answer.body);
    }
    // On its own listener, without a key ...
    let answer = request_demo(metrics, Method::GET, "/metrics", None, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.header(CONTENT_TYPE).starts_with("text/plain"));
    assert!(
        answer.body.contains("apikey_requests_total"),
        "{}",
        answer.body
    );
    // ... which serves nothing else.
    for path in ["/health", "/ping", "/admin/keys", "/admin/"] {
        let answer = request_demo(metrics, Method::GET, path, admin.clone(), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
    }
    demo.stop().await;

    // Without the flag there is no second listener, and still no /metrics.
    let demo = DemoProcess::start(&[]).await;
    assert!(!demo.log().contains("metrics listening"), "{}", demo.log());
    let answer = request_demo(demo.addr, Method::GET, "/metrics", None, None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    demo.stop().await;
}

//! The "Connector Access Control" panel in a real browser: Debian's `chromium`, headless,
//! driven through `chromedriver` (WebDriver, via `fantoccini`) against the demo served
//! on loopback, with the demo's real usage flush. The demo's clock starts 45 days back,
//! so that keys made "then" show as dormant, then stands at the present.
//!
//! The flow is an administrator's: open the page, paste a wrong key, a key without
//! `admin:keys`, then the admin key; create a key from the scope catalogue's checkboxes
//! (first with a name hiding a bidirectional control), see it once, use it with an HTTP
//! client, reload until its last-used time shows, rotate it, use the new key, revoke the
//! old one, read the page on a narrow screen, forget the admin key, open the page again
//! at `/admin` (no trailing slash), and sign in with an admin key that holds `admin:keys`
//! alone, which may grant nothing else and cannot rotate the new key. Along the
//! way it checks the security headers, that no key stays in the DOM after its one-time
//! display, that nothing is in `localStorage`, the URL or the browser's console, and that
//! the page is usable from the keyboard and labelled.
//!
//! A second flow runs `examples/admin_behind_login.rs`: a person signs in to the
//! application with a password, and the same page manages keys through the session
//! cookie, asking for no key, naming the person as the keys' creator and revoker, and
//! saying so when the session has ended. Another runs axe-core in the page, at phone
//! and at desktop width, over each view an administrator opens, and fails on any
//! serious or critical violation. The flows take turns with the browser.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`, which `scripts/test` installs), or `CHROMIUM` and `CHROMEDRIVER`
//! naming others; the accessibility test also needs axe-core's `axe.min.js`
//! (`scripts/lib/axe.sh`, which `scripts/test` runs, or `AXE_CORE` naming one). Without
//! them the tests fail and say so. Each step's screenshot is saved as
//! `target/e2e-screenshots/NN-step.png`.

#[path = "../../examples/demo/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/admin_behind_login.rs"]
mod behind_login;
#[path = "../../tests/common/mod.rs"]
mod common;

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::Answer;
use fantoccini::key::Key;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower_apikey::InMemoryKeyStore;
use tower_apikey::testing::ManualClock;

/// How long to wait for the page to show something before failing: generous, for a
/// slow, shared machine. Nothing is asserted about how long anything takes.
const PATIENCE: Duration = Duration::from_secs(30);

/// The demo's usage flush period: short, so the last-used time shows within a reload
/// or two.
const FLUSH: Duration = Duration::from_secs(1);

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The flags the issue prescribes, plus a small shared-memory fallback for containers.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

// ---- the browser ------------------------------------------------------------------

/// A Debian tool, or a failure that says how to get it.
fn tool(variable: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "the panel's end-to-end test needs {} ({package}); install it with \
         `apt-get install chromium chromium-driver` (scripts/test does), or set {variable}",
        path.display()
    );
    path
}

/// `chromedriver` in a process group of its own, so that it and the browser it starts
/// all end with the test, however the test ends.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    fn start(path: &Path) -> Self {
        // A free port, released for chromedriver to bind: a race only with other
        // processes binding random loopback ports in the same instant.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut command = Command::new(path);
        command
            .arg(format!("--port={port}"))
            // Commands carry keys (typed and read); log only severe errors.
            .arg("--log-level=SEVERE")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A WebDriver session, once chromedriver answers.
    async fn session(&mut self, chromium: &Path, profile: &Path) -> Client {
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": CHROMIUM_ARGS
                    .iter()
                    .map(|a| (*a).to_owned())
                    .chain([format!("--user-data-dir={}", profile.display())])
                    .collect::<Vec<_>>(),
                // The CSV export lands here, without asking.
                "prefs": {
                    "download.default_directory": profile.join("downloads"),
                    "download.prompt_for_download": false,
                },
            }),
        );
        // The browser's console, to check that nothing reaches it.
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let deadline = Instant::now() + PATIENCE;
        loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&self.url)
                .await
            {
                Ok(client) => return client,
                Err(error) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!("chromedriver exited ({status}) before a session: {error}");
                    }
                    assert!(
                        Instant::now() < deadline,
                        "no WebDriver session within {PATIENCE:?}: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group: chromedriver, and any browser it left behind.
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver's `POST /session/{id}/se/log`: the browser console's entries since the
/// last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

// ---- the page -----------------------------------------------------------------------

/// The browser, the server's address and where screenshots go.
struct Page {
    client: Client,
    base: String,
    shots: PathBuf,
    shot: u32,
    console: Vec<String>,
}

impl Page {
    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed ({e}): {script}"))
    }

    async fn text(&self, css: &str) -> String {
        let found = self
            .js(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![json!(css)],
            )
            .await;
        found
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_owned()
    }

    /// Waits until `condition` (a script's return value) is truthy. A script that
    /// throws counts as not yet: while a page loads, the elements it reads may not
    /// exist.
    async fn until(&mut self, what: &str, condition: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self
                .client
                .execute(condition, args.clone())
                .await
                .unwrap_or(Value::Null);
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                self.screenshot("failure").await;
                let alert = self.text("#alert").await;
                let status = self.text("#status").await;
                panic!(
                    "waited {PATIENCE:?} for {what}; the page says {alert:?} / {status:?} \
                     (see the screenshot `failure`)"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&mut self, step: &str) {
        self.shot += 1;
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = self.shots.join(format!("{:02}-{step}.png", self.shot));
        fs::write(&path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Types into the focused element, as a keyboard would.
    async fn type_here(&self, text: &str) {
        self.client
            .active_element()
            .await
            .expect("a focused element")
            .send_keys(text)
            .await
            .expect("typing");
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn focused_id(&self) -> String {
        self.js("return document.activeElement.id;", vec![])
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn wait_for_panel(&mut self) {
        self.until(
            "the key list",
            "return !document.getElementById('panel').hidden \
             && document.querySelectorAll('#key-rows tr').length > 0;",
            vec![],
        )
        .await;
    }

    /// Reloads until the key's row shows a last-used time: the demo writes them every
    /// `FLUSH`.
    async fn reload_until_used(&mut self, id: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.client.refresh().await.unwrap();
            self.wait_for_panel().await;
            let used = self.text(&row_cell(id, "Last used")).await;
            if !used.contains("never") {
                return used;
            }
            assert!(
                Instant::now() < deadline,
                "key {id} showed no last-used time within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Reads the one-time dialog: its key, after checking focus is inside it.
    async fn one_time_key(&mut self) -> String {
        self.until(
            "the one-time key dialog",
            "const d = document.getElementById('once'); return d && d.open;",
            vec![],
        )
        .await;
        let in_dialog = self
            .js(
                "return !!document.activeElement.closest('dialog#once');",
                vec![],
            )
            .await;
        assert_eq!(in_dialog, json!(true), "focus moves into the dialog");
        let warning = self.text("#once-warning").await;
        assert!(warning.contains("will not be shown again"), "{warning}");
        self.text("#once-key").await
    }

    async fn wait_dismissed(&mut self) {
        self.until(
            "the one-time dialog to go",
            "return document.getElementById('once') === null;",
            vec![],
        )
        .await;
    }

    /// After a one-time display is dismissed: no key anywhere in the page, its inputs,
    /// its URL or `localStorage`; `sessionStorage` holds the admin key alone.
    async fn assert_no_key_left(&mut self, keys: &[&str], admin: &str) {
        let html = self
            .js("return document.documentElement.outerHTML;", vec![])
            .await;
        let html = html.as_str().unwrap();
        let inputs = self
            .js(
                "return [...document.querySelectorAll('input, select, textarea')].map(e => e.value).join('\\n');",
                vec![],
            )
            .await;
        let inputs = inputs.as_str().unwrap();
        let url = self.client.current_url().await.unwrap().to_string();
        for key in keys.iter().chain([&admin]) {
            let secret = &key[key.len() - 49..];
            assert!(!html.contains(secret), "a key is still in the DOM");
            assert!(!inputs.contains(secret), "a key is still in an input");
            assert!(!url.contains(secret), "a key is in the URL");
        }
        let storage = self
            .js(
                "return {local: localStorage.length, session: Object.keys(sessionStorage).map(k => sessionStorage.getItem(k))};",
                vec![],
            )
            .await;
        assert_eq!(storage["local"], json!(0), "nothing in localStorage");
        assert_eq!(
            storage["session"],
            json!([admin]),
            "sessionStorage holds the admin key alone"
        );
        self.collect_console().await;
    }

    /// Reads the browser's console and checks that none of `keys` reached it, that it
    /// noted a refused call with the first of `statuses` (so it was really read), and
    /// that it holds nothing but refused calls with those statuses.
    async fn assert_console_clean(&mut self, keys: &[&str], statuses: &[u16]) {
        self.collect_console().await;
        for message in &self.console {
            for key in keys {
                assert!(
                    !message.contains(&key[key.len() - 49..]),
                    "a key reached the console"
                );
            }
        }
        let expected: Vec<String> = statuses
            .iter()
            .map(|s| format!("the server responded with a status of {s}"))
            .collect();
        assert!(
            self.console.iter().any(|m| m.contains(&expected[0])),
            "the console was read: the first refusal is in it"
        );
        let problems: Vec<&String> = self
            .console
            .iter()
            .filter(|m| !expected.iter().any(|e| m.contains(e.as_str())))
            .collect();
        assert!(problems.is_empty(), "the browser's console: {problems:#?}");
    }

    async fn collect_console(&mut self) {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("the browser's console log");
        for entry in entries.as_array().into_iter().flatten() {
            self.console
                .push(entry["message"].as_str().unwrap_or_default().to_owned());
        }
    }
}

fn row_cell(id: &str, label: &str) -> String {
    format!(r#"#key-{id} [data-label="{label}"]"#)
}

// ---- the server --------------------------------------------------------------------

async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, Full<Bytes>>(HttpConnector::new());
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(key) = key {
        builder = builder.header("authorization", format!("ApiKey-v2 {key}"));
    }
    let bytes = match body {
        Some(json) => {
            builder = builder.header("content-type", "application/json");
            json.to_string().into_bytes()
        }
        None => Vec::new(),
    };
    let response = client
        .request(builder.body(Full::new(Bytes::from(bytes))).unwrap())
        .await
        .unwrap();
    Answer::read(response).await
}

fn is_key(text: &str) -> bool {
    let parts: Vec<&str> = text.split('_').collect();
    parts.len() == 3
        && parts[0] == "mkc"
        && parts[1].len() == 16
        && parts[2].len() == 49
        && text[4..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn utc_date(days_from_now: i64) -> String {
    let day = time::OffsetDateTime::now_utc() + time::Duration::days(days_from_now);
    format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

// ---- the test ---------------------------------------------------------------------

/// One browser at a time: the machine may be small, and screenshots share a directory.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_manages_keys_in_the_panel_with_a_real_browser() {
    let _turn = BROWSER.lock().await;
    let chromium = tool("CHROMIUM", "/usr/bin/chromium", "Debian package chromium");
    let chromedriver = tool(
        "CHROMEDRIVER",
        "/usr/bin/chromedriver",
        "Debian package chromium-driver",
    );

    // The demo, as `cargo run --example demo -- --usage-flush-secs 1` serves it, on a
    // clock that starts 45 days ago: the keys made then give the page history to show.
    let clock = ManualClock::new(SystemTime::now() - 45 * DAY);
    let demo = app::build(
        InMemoryKeyStore::new(),
        FLUSH,
        Arc::new(clock.clone()),
        app::FAILURES_PER_MINUTE,
    )
    .await
    .unwrap();
    let admin = demo.admin_key.expose_secret().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = demo.router;
    tokio::spawn(async move {
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await.unwrap()
    });
    tokio::spawn(demo.tracker.clone().run());

    // 45 days ago: a key never used, expiring 12 days from today; a key last used 40
    // days ago. Both are dormant today.
    let in_12_days = OffsetDateTime::from(SystemTime::now() + 12 * DAY)
        .format(&Rfc3339)
        .unwrap();
    let (_, idle_id) = create(
        addr,
        &admin,
        json!({"name": "legacy-import", "scopes": [], "expires_at": in_12_days}),
    )
    .await;
    let (partner, partner_id) = create(
        addr,
        &admin,
        json!({"name": "partner-feed", "scopes": ["reports:read"]}),
    )
    .await;
    clock.advance(5 * DAY);
    let used = request(addr, Method::GET, "/ping", Some(&partner), None).await;
    assert_eq!(used.status, StatusCode::OK);
    demo.tracker.flush().await.unwrap();
    // Today, and the clock stays there: the browser's own clock moves on from it.
    clock.set(SystemTime::now());
    let history = History {
        admin,
        idle_id,
        partner_id,
        clock: clock.clone(),
    };

    let shots = screenshots("e2e-screenshots");
    let profile = std::env::temp_dir().join(format!("tower-apikey-panel-{}", std::process::id()));
    let _ = fs::remove_dir_all(&profile);
    fs::create_dir_all(&profile).unwrap();

    let mut driver = Chromedriver::start(&chromedriver);
    let client = driver.session(&chromium, &profile).await;
    let page = Page {
        client: client.clone(),
        base: format!("http://{addr}"),
        shots,
        shot: 0,
        console: Vec::new(),
    };
    // The flow runs in a task of its own, so that the browser is closed even when an
    // assertion fails; the failure is then raised here.
    let flow = tokio::spawn(flow(page, addr, history));
    let outcome = flow.await;
    let _ = client.close().await;
    drop(driver);
    let _ = fs::remove_dir_all(&profile);
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// `target/<name>`, emptied of the screenshots of a previous run.
fn screenshots(name: &str) -> PathBuf {
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join(name);
    fs::create_dir_all(&shots).unwrap();
    for old in fs::read_dir(&shots).unwrap().flatten() {
        if old.path().extension().is_some_and(|e| e == "png") {
            fs::remove_file(old.path()).unwrap();
        }
    }
    shots
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_person_manages_keys_in_the_panel_behind_the_applications_login() {
    let (port, password) = serve_behind_login(InMemoryKeyStore::new(), "bob@example.com").await;
    // `localhost`: browsers keep the `Secure` session cookie from it over plain HTTP.
    let base = format!("http://localhost:{port}");
    in_browser_at("e2e-screenshots-login", base, move |page, _| {
        login_flow(page, password)
    })
    .await;
}

/// The example behind a login over `store` on loopback: its port, and the password of
/// `email`.
async fn serve_behind_login(store: InMemoryKeyStore, email: &str) -> (u16, String) {
    let app = behind_login::build(store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = app.router;
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, service).await.unwrap()
    });
    let password = app
        .passwords
        .iter()
        .find(|(who, _)| who == email)
        .map(|(_, password)| password.clone())
        .unwrap();
    (port, password)
}

/// Bob signs in (he may grant `reports:read` only), creates and revokes a key, signs out.
async fn login_flow(mut page: Page, password: String) {
    // 1. The application's own sign-in form.
    page.client.goto(&format!("{}/", page.base)).await.unwrap();
    page.type_into("input[name=email]", "bob@example.com").await;
    page.type_into("input[name=password]", &format!("{password}{}", Key::Enter))
        .await;

    // 2. It opens the panel, which asks for no key: the session is the credential.
    page.until(
        "the panel, signed in as Bob",
        "return !document.getElementById('panel').hidden \
         && document.getElementById('session-key').textContent === 'Signed in as bob@example.com';",
        vec![],
    )
    .await;
    assert_eq!(page.client.current_url().await.unwrap().path(), "/admin/");
    let state = page
        .js(
            "return {signin: document.getElementById('signin').hidden, \
                     forget: document.getElementById('forget').hidden, \
                     session: sessionStorage.length};",
            vec![],
        )
        .await;
    assert_eq!(state, json!({"signin": true, "forget": true, "session": 0}));
    // He may grant `reports:read` alone; the rest of the catalogue is greyed out.
    let enabled = page
        .js(
            "return [...document.querySelectorAll('#scope-list input')].filter(b => !b.disabled).map(b => b.value);",
            vec![],
        )
        .await;
    assert_eq!(enabled, json!(["reports:read"]));
    assert_accessible_form(&page).await;
    page.screenshot("signed-in-by-the-application").await;

    // 3. Create from the catalogue: shown once, created by Bob.
    page.click("#scope-list input[value='reports:read']").await;
    page.type_into("#create-name", &format!("bob's export{}", Key::Enter))
        .await;
    let key = page.one_time_key().await;
    assert!(is_key(&key));
    let id = key.split('_').nth(1).unwrap().to_owned();
    page.click("#once-done").await;
    page.wait_dismissed().await;
    page.until(
        "the new row",
        "return document.getElementById('key-' + arguments[0]) !== null;",
        vec![json!(id)],
    )
    .await;
    assert!(
        page.text(&row_cell(&id, "Created"))
            .await
            .ends_with("by bob@example.com")
    );

    // 4. Revoke it: revoked by Bob.
    page.click(&format!("#key-{id} button[aria-label^='Revoke']"))
        .await;
    page.until(
        "the revoke confirmation",
        "return document.getElementById('confirm').open;",
        vec![],
    )
    .await;
    page.click("#confirm-ok").await;
    page.until(
        "the revoked row, by Bob",
        "const c = document.querySelector(arguments[0]); return c && c.textContent.endsWith('by bob@example.com');",
        vec![json!(row_cell(&id, "State"))],
    )
    .await;
    page.screenshot("revoked-by-a-person").await;

    // 5. Signed out of the application, the panel says so and shows nothing.
    page.client.goto(&format!("{}/", page.base)).await.unwrap();
    page.click("form[action='/logout'] button").await;
    // The sign-out is done once its redirect shows the sign-in page; going on before
    // would cancel it.
    page.until(
        "the sign-in page after signing out",
        "return document.readyState === 'complete' && document.title === 'Sign in';",
        vec![],
    )
    .await;
    page.client
        .goto(&format!("{}/admin/", page.base))
        .await
        .unwrap();
    let alert = page
        .until(
            "the signed-out message",
            "const a = document.getElementById('alert'); return !!a && !a.hidden && a.textContent;",
            vec![],
        )
        .await;
    assert!(alert.as_str().unwrap().contains("not signed in"), "{alert}");
    assert_eq!(
        page.js(
            "return [document.getElementById('panel').hidden, document.getElementById('signin').hidden];",
            vec![]
        )
        .await,
        json!([true, true]),
        "no key list, and no admin-key form to paste into"
    );
    page.screenshot("session-ended").await;

    page.assert_console_clean(&[key.as_str()], &[401]).await;
}

/// The create form's fields all have labels.
async fn assert_accessible_form(page: &Page) {
    let unlabelled = page
        .js(
            "return [...document.querySelectorAll('#create-form input')].filter(e => e.labels.length === 0).map(e => e.id);",
            vec![],
        )
        .await;
    assert_eq!(unlabelled, json!([]), "fields without a label");
}

/// What the server holds before the browser opens.
struct History {
    admin: String,
    /// Never used, created 45 days ago, expiring in 12 days.
    idle_id: String,
    /// Last used 40 days ago.
    partner_id: String,
    /// The demo's clock: the flow moves it past a rotation's grace.
    clock: ManualClock,
}

/// Creates a key through the admin API; returns (key, id).
async fn create(addr: SocketAddr, admin: &str, body: Value) -> (String, String) {
    let answer = request(addr, Method::POST, "/admin/keys", Some(admin), Some(body)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let created: Value = serde_json::from_str(&answer.body).unwrap();
    (
        created["key"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    )
}

async fn flow(mut page: Page, addr: SocketAddr, history: History) {
    let History {
        admin,
        idle_id,
        partner_id,
        clock,
    } = history;
    // The page and its assets: public, with the security headers.
    for path in [
        "/admin/",
        "/admin",
        "/admin/panel.js",
        "/admin/panel.css",
        "/admin/limits.js",
    ] {
        let answer = request(addr, Method::GET, path, None, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        let csp = answer.headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(answer.headers["x-content-type-options"], "nosniff");
        assert_eq!(answer.headers["referrer-policy"], "no-referrer");
    }
    let page_answer = request(addr, Method::GET, "/admin/", None, None).await;
    assert_eq!(page_answer.headers["cache-control"], "no-store");
    assert!(page_answer.body.contains("Connector Access Control"));

    // 1. Open the panel: it asks for an admin key, with the focus on the field.
    page.client
        .goto(&format!("{}/admin/", page.base))
        .await
        .unwrap();
    page.until(
        "the sign-in form",
        "return !document.getElementById('signin').hidden;",
        vec![],
    )
    .await;
    assert_eq!(page.focused_id().await, "admin-key");
    // The stylesheet loaded under the CSP: the primary button has its colour.
    let colour = page
        .js(
            "return getComputedStyle(document.querySelector('#signin button')).backgroundColor;",
            vec![],
        )
        .await;
    assert_eq!(colour, json!("rgb(11, 92, 173)"));
    page.screenshot("sign-in").await;

    // 2. A wrong key: 401, said as such; nothing is kept.
    page.type_here(&format!("mkc_not-a-key{}", Key::Enter))
        .await;
    let alert = page
        .until(
            "the 401 message",
            "const a = document.getElementById('alert'); return !a.hidden && a.textContent;",
            vec![],
        )
        .await;
    assert!(
        alert.as_str().unwrap().starts_with("401 Unauthorized"),
        "{alert}"
    );
    page.screenshot("wrong-key").await;

    // 3. A valid key without `admin:keys`: 403, said as such.
    let (reader_key, _) = create(
        addr,
        &admin,
        json!({"name": "nightly-export", "scopes": ["reports:read"]}),
    )
    .await;
    page.type_into("#admin-key", &format!("{reader_key}{}", Key::Enter))
        .await;
    page.until(
        "the 403 message",
        "return document.getElementById('alert').textContent.startsWith('403 Forbidden');",
        vec![],
    )
    .await;
    assert!(page.text("#alert").await.contains("admin:keys"));
    page.screenshot("key-without-admin-scope").await;

    // 4. The admin key, from the keyboard: the list appears and takes the focus.
    page.type_into("#admin-key", &format!("{admin}{}", Key::Enter))
        .await;
    page.wait_for_panel().await;
    assert!(page.text("#alert").await.is_empty());
    assert_eq!(page.focused_id().await, "keys-title");
    assert!(
        page.text(&row_cell(&idle_id, "Last used"))
            .await
            .contains("never")
    );
    page.assert_no_key_left(&[&reader_key], &admin).await;
    // Dormant keys and keys expiring within 30 days stand out.
    assert_eq!(
        page.text(&row_cell(&idle_id, "State")).await,
        "expiring soon dormant"
    );
    assert_eq!(
        page.text(&row_cell(&partner_id, "State")).await,
        "active dormant"
    );
    assert!(
        page.text(&row_cell(&partner_id, "Last used"))
            .await
            .contains("40 days ago")
    );
    // (The admin key counts too until its first use is written: created 45 days ago.)
    assert!(page.text("#summary").await.contains(" dormant."));
    assert_accessible(&page).await;
    page.screenshot("signed-in").await;

    // 5. The scopes are the demo's catalogue, as checkboxes with their descriptions, all
    // of which this admin key may grant; there is no free-text field.
    let choices = page
        .js(
            "return [...document.querySelectorAll('#scope-list input[type=checkbox]')]\
             .map(b => [b.value, b.disabled, b.labels[0].textContent]);",
            vec![],
        )
        .await;
    let choices = choices.as_array().unwrap();
    let offered: Vec<&str> = choices.iter().map(|c| c[0].as_str().unwrap()).collect();
    assert_eq!(
        offered,
        [
            "admin:keys",
            "keys:rotate-self",
            "reports:read",
            "reports:write"
        ]
    );
    assert!(choices.iter().all(|c| c[1] == json!(false)), "{choices:?}");
    assert!(
        choices[2][2].as_str().unwrap().contains("Read reports"),
        "{choices:?}"
    );
    assert!(
        page.js(
            "return document.getElementById('scopes-text').hidden;",
            vec![]
        )
        .await
            == json!(true)
    );

    // A name hiding a right-to-left override: the API's error appears beside "Name".
    page.click("#new-key").await;
    assert_eq!(page.focused_id().await, "create-name");
    page.js(
        "document.getElementById('create-name').value = 'billing\\u202Ecsv.exe';",
        vec![],
    )
    .await;
    page.click("#create-submit").await;
    let error = page
        .until(
            "the name error",
            "const e = document.getElementById('create-name-error'); return !e.hidden && e.textContent;",
            vec![],
        )
        .await;
    assert!(error.as_str().unwrap().contains("invisible"), "{error}");
    let invalid = page
        .js(
            "return document.getElementById('create-name').getAttribute('aria-invalid');",
            vec![],
        )
        .await;
    assert_eq!(invalid, json!("true"));
    assert_eq!(page.focused_id().await, "create-name");
    assert!(page.text("#create-scopes-error").await.is_empty());
    page.screenshot("validation-error").await;

    // 6. Create for real from the checkboxes, expiring in 20 days: the key is shown once.
    page.click("#scope-list input[value='reports:read']").await;
    page.js(
        "const e = document.getElementById('create-expires'); e.value = arguments[0]; \
         e.dispatchEvent(new Event('input', {bubbles: true}));",
        vec![json!(utc_date(20))],
    )
    .await;
    page.type_into("#create-name", &format!("billing-sync{}", Key::Enter))
        .await;
    let key = page.one_time_key().await;
    assert!(is_key(&key), "the dialog shows a key");
    let id = key.split('_').nth(1).unwrap().to_owned();
    page.screenshot("new-key-shown-once").await;
    page.click("#once-copy").await;
    page.until(
        "the copy button's answer",
        "return document.getElementById('once-copy-status').textContent;",
        vec![],
    )
    .await;
    // Escape dismisses it, like the button.
    page.type_here(&Key::Escape.to_string()).await;
    page.wait_dismissed().await;
    assert_eq!(page.focused_id().await, format!("key-{id}"));
    page.assert_no_key_left(&[&key, &reader_key], &admin).await;
    assert!(
        page.text(&row_cell(&id, "State"))
            .await
            .contains("expiring soon")
    );
    // It holds the scope checked, and names the admin key that created it.
    assert_eq!(page.text(&row_cell(&id, "Scopes")).await, "reports:read");
    let admin_id = admin.split('_').nth(1).unwrap().to_owned();
    assert!(
        page.text(&row_cell(&id, "Created"))
            .await
            .ends_with(&format!("by {admin_id}")),
        "created by the admin key"
    );

    // 7. Use it, then reload until the flushed last-used time shows.
    let used = request(addr, Method::GET, "/ping", Some(&key), None).await;
    assert_eq!((used.status, used.body.as_str()), (StatusCode::OK, "pong"));
    assert!(used.headers.contains_key("apikey-expires"));
    let last_used = page.reload_until_used(&id).await;
    assert!(last_used.contains("UTC"), "{last_used}");
    assert!(
        page.text(&row_cell(&id, "Name"))
            .await
            .contains("billing-sync")
    );
    assert!(
        page.text(&row_cell(&idle_id, "Last used"))
            .await
            .contains("never")
    );
    page.screenshot("last-used-after-flush").await;

    // 7b. Its history: the events so far, and the day's request in a 30-day chart, in
    // the list beside last-used and in the history view.
    page.until(
        "the usage chart beside last-used",
        &format!(
            "return document.querySelectorAll(\"#key-{id} td[data-label='Last used'] svg.usage-chart rect:not([height='0'])\").length === 1;"
        ),
        vec![],
    )
    .await;
    page.click(&format!("#key-{id} button.history")).await;
    let types = page
        .until(
            "the key's history with its chart",
            "const d = document.getElementById('history'); \
             const bars = document.querySelectorAll(\"#history-usage rect:not([height='0'])\"); \
             const items = [...document.querySelectorAll('#history-events li')]; \
             return d && d.open && bars.length === 1 && items.length >= 2 \
               && items.map(li => li.dataset.type).join(' ');",
            vec![],
        )
        .await;
    assert_eq!(types, json!("first_used created"));
    page.screenshot("key-history").await;
    page.js("document.getElementById('history').close();", vec![])
        .await;

    // 8. Rotate: confirm, see the new key once; both rows, linked.
    page.click(&format!("#key-{id} button[aria-label^='Rotate']"))
        .await;
    page.until(
        "the rotate confirmation",
        "return document.getElementById('confirm').open;",
        vec![],
    )
    .await;
    assert!(page.text("#confirm-title").await.contains(&id));
    // The old key ends in an hour: a scheduled end, shown under its expiry.
    page.click("#overlap option[value='3600']").await;
    page.screenshot("rotate-confirm").await;
    page.click("#confirm-ok").await;
    let new_key = page.one_time_key().await;
    assert!(is_key(&new_key) && new_key != key);
    let new_id = new_key.split('_').nth(1).unwrap().to_owned();
    assert!(page.text("#once-title").await.contains(&id));
    page.screenshot("rotated-key-shown-once").await;
    page.click("#once-done").await;
    page.wait_dismissed().await;
    page.assert_no_key_left(&[&key, &new_key, &reader_key], &admin)
        .await;
    page.until(
        "the rotated pair",
        "return document.getElementById('key-' + arguments[0]) !== null;",
        vec![json!(new_id)],
    )
    .await;
    assert!(
        page.text(&row_cell(&new_id, "ID"))
            .await
            .contains(&format!("rotated from {id}"))
    );
    assert!(
        page.text(&row_cell(&id, "ID"))
            .await
            .contains(&format!("replaced by {new_id}"))
    );
    let old_answer = request(
        addr,
        Method::GET,
        &format!("/admin/keys/{id}"),
        Some(&admin),
        None,
    )
    .await;
    let old_record: Value = serde_json::from_str(&old_answer.body).unwrap();
    let ends_at = old_record["ends_at"].as_str().expect("the old key's end");
    let expires = page.text(&row_cell(&id, "Expires")).await;
    assert!(
        expires.contains(&format!("ends {} {} UTC", &ends_at[..10], &ends_at[11..16])),
        "the old key's scheduled end is shown: {expires}"
    );
    assert_eq!(
        page.text(&format!("{} .badge", row_cell(&id, "State")))
            .await,
        "expiring soon"
    );
    // The integration switches; the new key's last-used time shows the switch worked.
    let used = request(addr, Method::GET, "/ping", Some(&new_key), None).await;
    assert_eq!(used.status, StatusCode::OK);
    page.reload_until_used(&new_id).await;
    page.screenshot("rotated-pair").await;

    // 9. Revoke the old key: confirm (Cancel has the focus), and the row says so.
    page.click(&format!("#key-{id} button[aria-label^='Revoke']"))
        .await;
    page.until(
        "the revoke confirmation",
        "return document.getElementById('confirm').open;",
        vec![],
    )
    .await;
    assert_eq!(page.focused_id().await, "confirm-cancel");
    page.screenshot("revoke-confirm").await;
    page.click("#confirm-ok").await;
    page.until(
        "the revoked row",
        "const b = document.querySelector(arguments[0]); return b && b.textContent === 'revoked';",
        vec![json!(format!("{} .badge", row_cell(&id, "State")))],
    )
    .await;
    assert!(
        page.js(
            "return document.querySelector(arguments[0]) === null;",
            // Its history stays readable; nothing may change it.
            vec![json!(format!("#key-{id} td[data-label='Actions'] button"))]
        )
        .await
            == json!(true),
        "a revoked key has no actions left"
    );
    assert!(
        page.text(&row_cell(&id, "State"))
            .await
            .contains(&format!("by {admin_id}")),
        "revoked by the admin key"
    );
    assert_eq!(
        request(addr, Method::GET, "/ping", Some(&key), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        request(addr, Method::GET, "/ping", Some(&new_key), None)
            .await
            .status,
        StatusCode::OK
    );
    page.screenshot("revoked").await;

    // 9b. Limits: partner-feed was used from loopback, which its row shows; its editor
    // names a bad field, then "Restrict to recent addresses" fills the allowlist from
    // its recent addresses, and saving sends a PATCH that the API then shows.
    page.until(
        "partner-feed's recent address",
        "const e = document.querySelector(arguments[0]); return e && e.textContent;",
        vec![json!(format!("#key-{partner_id} .recent-ips"))],
    )
    .await;
    assert_eq!(
        page.text(&format!("#key-{partner_id} .recent-ips")).await,
        "from 127.0.0.1"
    );
    page.click(&format!("#key-{partner_id} button.limits"))
        .await;
    page.until(
        "the limits editor",
        "const d = document.getElementById('limits'); return d && d.open;",
        vec![],
    )
    .await;
    assert_eq!(page.focused_id().await, "limits-rate-requests");
    assert_eq!(page.text("#limits-recent code").await, "127.0.0.1");
    page.type_here("0").await;
    page.type_into("#limits-rate-per", "60").await;
    page.click("#limits-save").await;
    let refused = page
        .until(
            "the rate limit's error",
            "const e = document.getElementById('limits-rate_limit-error'); return e && !e.hidden && e.textContent;",
            vec![],
        )
        .await;
    assert!(
        refused.as_str().unwrap().contains("rate_limit.requests"),
        "{refused}"
    );
    assert_eq!(page.focused_id().await, "limits-rate-requests");
    page.type_into("#limits-rate-requests", "100").await;
    page.type_into("#limits-quota-requests", "10000").await;
    // The recent address is not checked until the person checks it; then a confirmation.
    page.click("#limits-recent input[type=checkbox]").await;
    page.click("#limits-restrict").await;
    page.until(
        "the confirmation before restricting",
        "const d = document.getElementById('limits-pin'); return d && d.open;",
        vec![],
    )
    .await;
    page.click("#limits-pin-ok").await;
    let filled = page
        .js(
            "return document.getElementById('limits-ips').value;",
            vec![],
        )
        .await;
    assert_eq!(filled, json!("127.0.0.1"));
    assert_accessible(&page).await;
    page.screenshot("limits-editor").await;
    page.click("#limits-save").await;
    page.until(
        "the saved limits in the row",
        "const d = document.getElementById('limits'); const e = document.querySelector(arguments[0]); \
         return !d.open && e && e.textContent;",
        vec![json!(format!("#key-{partner_id} ul.limits"))],
    )
    .await;
    assert_eq!(
        page.text(&format!("#key-{partner_id} ul.limits")).await,
        "100 requests / 60 s10000 requests / dayonly from 127.0.0.1/32"
    );
    let shown = request(
        addr,
        Method::GET,
        &format!("/admin/keys/{partner_id}"),
        Some(&admin),
        None,
    )
    .await;
    let record: Value = serde_json::from_str(&shown.body).unwrap();
    assert_eq!(
        record["rate_limit"],
        json!({"requests": 100, "per_secs": 60})
    );
    assert_eq!(record["quota"], json!({"requests": 10000, "per": "day"}));
    assert_eq!(record["allowed_ips"], json!(["127.0.0.1/32"]));
    assert_eq!(
        record["name"],
        json!("partner-feed"),
        "the name was left alone"
    );
    page.screenshot("limits-saved").await;

    // The panel as it opens now, for the README (docs/panel.png is made from it).
    page.client.set_window_size(1280, 1000).await.unwrap();
    page.client.refresh().await.unwrap();
    page.wait_for_panel().await;
    page.js(
        "document.activeElement.blur(); window.scrollTo(0, 0);",
        vec![],
    )
    .await;
    page.screenshot("overview").await;

    // 10. A narrow screen: the list becomes cards, with nothing to scroll sideways.
    page.client.set_window_size(390, 844).await.unwrap();
    page.until(
        "the narrow layout",
        "return window.innerWidth <= 400;",
        vec![],
    )
    .await;
    let overflow = page
        .js(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await;
    assert!(
        overflow.as_f64().unwrap() <= 0.0,
        "{overflow}px to scroll sideways"
    );
    page.screenshot("narrow-screen").await;
    page.client.set_window_size(1280, 900).await.unwrap();

    // 10b. Rotate until first use, with a short grace: the dialog explains it, the old
    // key's row says its end waits for the new key's first use, then shows the end the
    // first use set, and the old key is refused once the grace is over.
    page.click(&format!("#key-{new_id} button[aria-label^='Rotate']"))
        .await;
    page.until(
        "the rotate confirmation",
        "return document.getElementById('confirm').open;",
        vec![],
    )
    .await;
    assert!(
        page.text("#overlap-help").await.contains("first use"),
        "the dialog explains the choices"
    );
    page.click("#overlap option[value='first-use']").await;
    page.until(
        "the grace field",
        "return !document.getElementById('confirm-grace').hidden \
           && document.getElementById('grace').value === '300';",
        vec![],
    )
    .await;
    page.type_into("#grace", "2").await;
    page.screenshot("rotate-until-first-use").await;
    page.click("#confirm-ok").await;
    let next_key = page.one_time_key().await;
    let next_id = next_key.split('_').nth(1).unwrap().to_owned();
    page.click("#once-done").await;
    page.wait_dismissed().await;
    page.until(
        "the pending end",
        "const c = document.querySelector(arguments[0]); \
         return c !== null && c.textContent.includes(\"ends 2 s after the new key's first use\");",
        vec![json!(row_cell(&new_id, "Expires"))],
    )
    .await;
    assert!(
        page.text(&row_cell(&new_id, "ID"))
            .await
            .contains(&format!("replaced by {next_id}")),
        "the list shows the pair"
    );
    assert_eq!(
        request(addr, Method::GET, "/ping", Some(&next_key), None)
            .await
            .status,
        StatusCode::OK
    );
    // The first use is written on the next flush, and the old key's end with it.
    page.reload_until_used(&next_id).await;
    let old_answer = request(
        addr,
        Method::GET,
        &format!("/admin/keys/{new_id}"),
        Some(&admin),
        None,
    )
    .await;
    let old_record: Value = serde_json::from_str(&old_answer.body).unwrap();
    let ends_at = old_record["ends_at"]
        .as_str()
        .expect("the first use set the old key's end")
        .to_owned();
    let expires = page.text(&row_cell(&new_id, "Expires")).await;
    assert!(
        expires.contains(&format!("{} {} UTC", &ends_at[..10], &ends_at[11..16]))
            && !expires.contains("after the new key's first use"),
        "the old key's end is shown: {expires}"
    );
    page.screenshot("ended-after-first-use").await;
    // The demo's clock stands still: within the grace the old key still works on it,
    // and after it not.
    assert_eq!(
        request(addr, Method::GET, "/ping", Some(&new_key), None)
            .await
            .status,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        request(addr, Method::GET, "/ping", Some(&new_key), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        request(addr, Method::GET, "/ping", Some(&next_key), None)
            .await
            .status,
        StatusCode::OK
    );

    // 11. Forget the admin key: it leaves sessionStorage, the list leaves the page.
    page.click("#forget").await;
    page.until(
        "the sign-in form again",
        "return !document.getElementById('signin').hidden && sessionStorage.length === 0;",
        vec![],
    )
    .await;
    assert_eq!(
        page.js(
            "return document.querySelectorAll('#key-rows tr').length;",
            vec![]
        )
        .await,
        json!(0)
    );

    // 12. The same page at `/admin`, without the slash: its script, styles and API calls
    // still find their way (the page names them `./admin/…`, the script resolves the
    // API against its own URL).
    page.client
        .goto(&format!("{}/admin", page.base))
        .await
        .unwrap();
    page.until(
        "the sign-in form at /admin",
        "return !document.getElementById('signin').hidden;",
        vec![],
    )
    .await;
    page.type_into("#admin-key", &format!("{admin}{}", Key::Enter))
        .await;
    page.wait_for_panel().await;
    assert!(
        page.text(&row_cell(&new_id, "ID"))
            .await
            .contains(&format!("rotated from {id}"))
    );
    assert_eq!(
        page.client.current_url().await.unwrap().path(),
        "/admin",
        "no redirect, no key in the URL"
    );

    // 13. An admin key holding `admin:keys` alone may grant nothing else: the other
    // scopes are offered but disabled, and rotating a `reports:read` key is refused,
    // naming the scope.
    let (limited, limited_id) = create(
        addr,
        &admin,
        json!({"name": "junior admin", "scopes": ["admin:keys"]}),
    )
    .await;
    page.click("#forget").await;
    page.until(
        "the sign-in form for the junior admin",
        "return !document.getElementById('signin').hidden;",
        vec![],
    )
    .await;
    page.type_into("#admin-key", &format!("{limited}{}", Key::Enter))
        .await;
    page.wait_for_panel().await;
    assert!(
        page.text("#session-key").await.contains(&limited_id),
        "signed in as the junior admin"
    );
    let enabled = page
        .js(
            "return [...document.querySelectorAll('#scope-list input')].filter(b => !b.disabled).map(b => b.value);",
            vec![],
        )
        .await;
    assert_eq!(enabled, json!(["admin:keys"]));
    page.click(&format!("#key-{next_id} button[aria-label^='Rotate']"))
        .await;
    page.until(
        "the rotate confirmation",
        "return document.getElementById('confirm').open;",
        vec![],
    )
    .await;
    page.click("#confirm-ok").await;
    let alert = page
        .until(
            "the refusal",
            "const a = document.getElementById('alert'); return !a.hidden && a.textContent;",
            vec![],
        )
        .await;
    let alert = alert.as_str().unwrap();
    assert!(
        alert.contains("403") && alert.contains("may not grant reports:read"),
        "{alert}"
    );
    assert!(
        page.js("return document.getElementById('once') === null;", vec![])
            .await
            == json!(true),
        "no key was made"
    );
    page.screenshot("beyond-the-ceiling").await;

    // A rate-limited admin key (DESIGN §12): the form sets no limits, so the key it would
    // make is less restricted than itself. The panel says so, and keeps it signed in.
    let (restricted, restricted_id) = create(
        addr,
        &admin,
        json!({"name": "limited admin", "scopes": ["admin:keys"],
               "rate_limit": {"requests": 1000, "per_secs": 3600}}),
    )
    .await;
    page.click("#forget").await;
    page.until(
        "the sign-in form for the limited admin",
        "return !document.getElementById('signin').hidden;",
        vec![],
    )
    .await;
    page.type_into("#admin-key", &format!("{restricted}{}", Key::Enter))
        .await;
    page.wait_for_panel().await;
    page.type_into("#create-name", &format!("unlimited twin{}", Key::Enter))
        .await;
    let refused = page
        .until(
            "the restriction's refusal",
            "const e = document.getElementById('create-error'); return !e.hidden && e.textContent;",
            vec![],
        )
        .await;
    let refused = refused.as_str().unwrap();
    assert!(
        refused.contains("403") && refused.contains("less restricted than your own key"),
        "{refused}"
    );
    assert!(
        page.text("#session-key").await.contains(&restricted_id),
        "still signed in as the limited admin"
    );

    // Nothing reached the browser's console: no key, no blocked script or style, no error.
    // The browser notes each refused API call; those are the flow's own (wrong key,
    // key without the scope, invalid name, rotation beyond the ceiling, a key less
    // restricted than its maker), and all it may note.
    page.assert_console_clean(
        &[
            &key,
            &new_key,
            &next_key,
            &reader_key,
            &admin,
            &limited,
            &restricted,
        ]
        .map(String::as_str),
        &[401, 403, 422],
    )
    .await;
}

/// Every field has a label, every button a name, and messages a live region.
async fn assert_accessible(page: &Page) {
    let unlabelled = page
        .js(
            "return [...document.querySelectorAll('input, select')].filter(e => e.labels.length === 0).map(e => e.id);",
            vec![],
        )
        .await;
    assert_eq!(unlabelled, json!([]), "fields without a label");
    let nameless = page
        .js(
            "return [...document.querySelectorAll('button')].filter(b => !(b.getAttribute('aria-label') || b.textContent.trim())).length;",
            vec![],
        )
        .await;
    assert_eq!(nameless, json!(0), "buttons without a name");
    let live = page
        .js(
            "return document.querySelectorAll('[aria-live], [role=alert], [role=status]').length;",
            vec![],
        )
        .await;
    assert!(live.as_u64().unwrap() >= 2, "live regions for messages");
    let row_header = page
        .js(
            "return document.querySelectorAll('#key-rows th[scope=row]').length === document.querySelectorAll('#key-rows tr').length;",
            vec![],
        )
        .await;
    assert_eq!(
        row_header,
        json!(true),
        "each row is named by its key's name"
    );
}

// ---- axe-core: no serious accessibility violation, at phone and desktop width --------

/// The widths the panel is checked at: a phone (the card layout) and a desktop.
const WIDTHS: [(&str, u32, u32); 2] = [("phone", 375, 812), ("desktop", 1280, 900)];

/// axe-core's `axe.min.js`: `AXE_CORE`, or where `scripts/lib/axe.sh` (which
/// `scripts/test` runs) puts the pinned release, under the target directory.
fn axe_source() -> String {
    let path = std::env::var_os("AXE_CORE").map_or_else(
        || {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("the target directory")
                .join("axe-core/node_modules/axe-core/axe.min.js")
        },
        PathBuf::from,
    );
    fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the panel's accessibility test needs axe-core at {} ({e}); run \
             scripts/lib/axe.sh (scripts/test does), or set AXE_CORE to an axe.min.js",
            path.display()
        )
    })
}

/// Runs axe-core on the page as it stands and returns its serious and critical
/// violations, one line each: the view, the rule, what it asks, and the nodes.
async fn axe_violations(page: &mut Page, axe: &str, view: &str) -> Vec<String> {
    // Injected once per page load; WebDriver scripts are not bound by the page's CSP.
    let loaded = page.js("return typeof axe === 'object';", vec![]).await;
    if loaded != json!(true) {
        page.js(&format!("{axe}\nreturn true;"), vec![]).await;
    }
    let found = page
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, { resultTypes: ['violations'] })\
               .then((r) => done(r.violations\
                 .filter((v) => v.impact === 'serious' || v.impact === 'critical')\
                 .map((v) => `${v.id} (${v.impact}): ${v.help}: \
                   ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)))\
               .catch((e) => done([`axe-core failed: ${e}`]));",
            vec![],
        )
        .await
        .unwrap_or_else(|e| panic!("axe-core did not run on {view}: {e}"));
    let found: Vec<String> = serde_json::from_value(found).expect("a list of violations");
    if !found.is_empty() {
        page.screenshot(&format!("axe-{}", view.replace(' ', "-")))
            .await;
    }
    found.into_iter().map(|v| format!("{view}: {v}")).collect()
}

/// Resizes the window and waits until the page has the width asked for.
async fn resize(page: &mut Page, width: u32, height: u32) {
    page.client.set_window_size(width, height).await.unwrap();
    page.until(
        "the new width",
        "return window.innerWidth <= arguments[0] && window.innerWidth > arguments[0] - 40;",
        vec![json!(width)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_has_no_serious_accessibility_violations_at_phone_and_desktop_width() {
    let axe = axe_source();
    let _turn = BROWSER.lock().await;
    let chromium = tool("CHROMIUM", "/usr/bin/chromium", "Debian package chromium");
    let chromedriver = tool(
        "CHROMEDRIVER",
        "/usr/bin/chromedriver",
        "Debian package chromium-driver",
    );
    let demo = app::build(
        InMemoryKeyStore::new(),
        FLUSH,
        Arc::new(tower_apikey::SystemClock),
        app::FAILURES_PER_MINUTE,
    )
    .await
    .unwrap();
    let admin = demo.admin_key.expose_secret().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = demo.router;
    tokio::spawn(async move {
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await.unwrap()
    });
    // What an administrator's page holds after a while: keys of every kind, with
    // limits and restrictions, and more events than the activity list shows at once.
    let (_, limited) = create(
        addr,
        &admin,
        json!({"name": "partner-feed", "scopes": ["reports:read"],
               "rate_limit": {"requests": 10, "per_secs": 60},
               "quota": {"requests": 1000, "per": "day"},
               "allowed_ips": ["192.0.2.0/24"]}),
    )
    .await;
    // Enough changes that its history overflows its list too.
    for i in 0..24 {
        let renamed = request(
            addr,
            Method::PATCH,
            &format!("/admin/keys/{limited}"),
            Some(&admin),
            Some(json!({"name": format!("partner-feed v{i}")})),
        )
        .await;
        assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    }
    for i in 0..24 {
        let (_, id) = create(
            addr,
            &admin,
            json!({"name": format!("integration {i:02}"), "scopes": ["reports:read"]}),
        )
        .await;
        if i % 8 == 0 {
            let revoked = request(
                addr,
                Method::DELETE,
                &format!("/admin/keys/{id}"),
                Some(&admin),
                None,
            )
            .await;
            assert!(revoked.status.is_success(), "{}", revoked.body);
        }
    }

    let profile =
        std::env::temp_dir().join(format!("tower-apikey-panel-axe-{}", std::process::id()));
    let _ = fs::remove_dir_all(&profile);
    fs::create_dir_all(&profile).unwrap();
    let mut driver = Chromedriver::start(&chromedriver);
    let client = driver.session(&chromium, &profile).await;
    let page = Page {
        client: client.clone(),
        base: format!("http://{addr}"),
        shots: screenshots("e2e-axe-screenshots"),
        shot: 0,
        console: Vec::new(),
    };
    let flow = tokio::spawn(axe_flow(page, admin, limited, axe));
    let outcome = flow.await;
    let _ = client.close().await;
    drop(driver);
    let _ = fs::remove_dir_all(&profile);
    match outcome {
        Ok(violations) => assert!(
            violations.is_empty(),
            "axe-core found serious or critical violations (screenshots in \
             target/e2e-axe-screenshots):\n{}",
            violations.join("\n")
        ),
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// Signs in, then at each width runs axe-core on the sign-in form, the key list, a
/// key's history, its limits, a revocation's confirmation and a new key's one-time
/// dialog; returns every serious or critical violation.
async fn axe_flow(mut page: Page, admin: String, limited: String, axe: String) -> Vec<String> {
    let mut violations = Vec::new();
    page.client
        .goto(&format!("{}/admin/", page.base))
        .await
        .unwrap();
    page.until(
        "the sign-in form",
        "return !document.getElementById('signin').hidden;",
        vec![],
    )
    .await;
    for (width_name, width, height) in WIDTHS {
        resize(&mut page, width, height).await;
        let view = format!("{width_name} sign-in");
        violations.extend(axe_violations(&mut page, &axe, &view).await);
    }
    page.type_into("#admin-key", &format!("{admin}{}", Key::Enter))
        .await;
    page.wait_for_panel().await;

    let row = format!("#key-{limited}");
    for (width_name, width, height) in WIDTHS {
        resize(&mut page, width, height).await;
        // The list, with the activity list filled in and the limits shown.
        page.until(
            "the activity list and the limits",
            "return document.querySelectorAll('#activity-events li').length >= 20 \
             && document.querySelector(arguments[0] + ' button.limits') !== null;",
            vec![json!(row)],
        )
        .await;
        let view = format!("{width_name} key list");
        violations.extend(axe_violations(&mut page, &axe, &view).await);
        // The activity list scrolls, so the keyboard reaches it: Tab from the list's
        // last control lands on it, and the focus shows.
        page.js(
            "const all = document.querySelectorAll('#keys button:not([hidden]), #keys input, #keys select'); \
             all[all.length - 1].focus();",
            vec![],
        )
        .await;
        page.type_here(&Key::Tab.to_string()).await;
        let focused = page
            .js(
                "const e = document.activeElement; \
                 return [e.id, e.scrollHeight > e.clientHeight, getComputedStyle(e).outlineStyle];",
                vec![],
            )
            .await;
        assert_eq!(
            focused,
            json!(["activity-events", true, "solid"]),
            "{width_name}: Tab reaches the scrolling activity list, with a visible focus"
        );

        page.click(&format!("{row} button.history")).await;
        page.until(
            "the key's history",
            "const d = document.getElementById('history'); \
             return d && d.open && document.querySelectorAll('#history-events li').length > 20;",
            vec![],
        )
        .await;
        let view = format!("{width_name} key history");
        violations.extend(axe_violations(&mut page, &axe, &view).await);
        page.js("document.getElementById('history').close();", vec![])
            .await;

        page.click(&format!("{row} button.limits")).await;
        page.until(
            "the limits dialog",
            "const d = document.getElementById('limits'); return d && d.open;",
            vec![],
        )
        .await;
        let view = format!("{width_name} key limits");
        violations.extend(axe_violations(&mut page, &axe, &view).await);
        page.js("document.getElementById('limits').close();", vec![])
            .await;

        page.click(&format!("{row} button.danger")).await;
        page.until(
            "the revocation's confirmation",
            "return document.getElementById('confirm').open;",
            vec![],
        )
        .await;
        let view = format!("{width_name} revoke confirmation");
        violations.extend(axe_violations(&mut page, &axe, &view).await);
        page.click("#confirm-cancel").await;

        page.click("#new-key").await;
        page.type_into("#create-name", &format!("a11y {width_name}{}", Key::Enter))
            .await;
        page.one_time_key().await;
        let view = format!("{width_name} new key's one-time dialog");
        violations.extend(axe_violations(&mut page, &axe, &view).await);
        page.click("#once-done").await;
        page.wait_dismissed().await;
    }
    violations
}

// ---- the panel at scale (issue 21) ------------------------------------------------

/// How many keys the panel at scale is tested with.
const MANY: usize = 10_000;

/// The keys of the scale test, through the store directly: `service NNNNN`, created a
/// minute apart (service 00000 the oldest), every 50th revoked, every 7th used an hour
/// ago; one revoked key is named like a spreadsheet formula.
async fn load_many(store: &InMemoryKeyStore) -> Vec<tower_apikey::KeyRecord> {
    use tower_apikey::key::KeyDigest;
    use tower_apikey::record::KeyName;
    use tower_apikey::{KeyId, KeyRecord, KeyStoreAdmin, Scopes};
    let now = SystemTime::now();
    let mut records = Vec::with_capacity(MANY);
    for i in 0..MANY {
        let created = now - DAY - Duration::from_secs(60 * (MANY - i) as u64);
        let name = if i == 4_950 {
            "=HYPERLINK(\"http://evil.example\")".to_owned()
        } else {
            format!("service {i:05}")
        };
        let mut record = KeyRecord::new(
            KeyId::new(&format!("{i:016}")).unwrap(),
            KeyName::new(&name).unwrap(),
            Scopes::new(["reports:read"]).unwrap(),
            KeyDigest::from_bytes([0x5a; 32]),
            created,
            created + 300 * DAY,
        );
        if i % 50 == 0 {
            record = record.with_revoked_at(Some(now - Duration::from_secs(60)));
        }
        if i % 7 == 0 {
            record = record.with_last_used_at(Some(now - Duration::from_secs(3600)));
        }
        store.insert(&record).await.unwrap();
        records.push(record);
    }
    // The newest key replaced one of the oldest, which is far beyond the first page.
    let heir = KeyRecord::new(
        KeyId::new("R000000000000001").unwrap(),
        KeyName::new("service rotated").unwrap(),
        Scopes::new(["reports:read"]).unwrap(),
        KeyDigest::from_bytes([0x5a; 32]),
        now - Duration::from_secs(60),
        now + 300 * DAY,
    )
    .with_rotated_from(Some(*records[10].id()));
    store.insert(&heir).await.unwrap();
    records.push(heir);
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_finds_filters_sorts_and_exports_among_ten_thousand_keys() {
    let _turn = BROWSER.lock().await;
    let chromium = tool("CHROMIUM", "/usr/bin/chromium", "Debian package chromium");
    let chromedriver = tool(
        "CHROMEDRIVER",
        "/usr/bin/chromedriver",
        "Debian package chromium-driver",
    );
    let store = InMemoryKeyStore::new();
    let records = load_many(&store).await;
    let demo = app::build(
        store.clone(),
        FLUSH,
        Arc::new(tower_apikey::SystemClock),
        app::FAILURES_PER_MINUTE,
    )
    .await
    .unwrap();
    let admin = demo.admin_key.expose_secret().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = demo.router;
    tokio::spawn(async move {
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await.unwrap()
    });

    let shots = screenshots("e2e-scale-screenshots");
    let profile =
        std::env::temp_dir().join(format!("tower-apikey-panel-scale-{}", std::process::id()));
    let _ = fs::remove_dir_all(&profile);
    fs::create_dir_all(profile.join("downloads")).unwrap();
    let mut driver = Chromedriver::start(&chromedriver);
    let client = driver.session(&chromium, &profile).await;
    let page = Page {
        client: client.clone(),
        base: format!("http://{addr}"),
        shots,
        shot: 0,
        console: Vec::new(),
    };
    let flow = tokio::spawn(scale_flow(page, admin, records, profile.join("downloads")));
    let outcome = flow.await;
    let _ = client.close().await;
    drop(driver);
    let _ = fs::remove_dir_all(&profile);
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// Waits until the rows are exactly `names`.
async fn until_rows(page: &mut Page, what: &str, names: &[String]) {
    page.until(
        what,
        // The name is the header cell's first text: the History button follows it.
        "return JSON.stringify([...document.querySelectorAll('#key-rows th[scope=row]')]\
         .map(th => th.firstChild.textContent)) === JSON.stringify(arguments[0]);",
        vec![json!(names)],
    )
    .await;
}

async fn scale_flow(
    mut page: Page,
    admin: String,
    records: Vec<tower_apikey::KeyRecord>,
    downloads: PathBuf,
) {
    let name = |r: &tower_apikey::KeyRecord| r.name().to_string();
    // Newest first: the demo's admin key, then service 09999, 09998, …
    let mut newest: Vec<String> = records.iter().rev().map(name).collect();
    newest.insert(0, app::ADMIN_KEY_NAME.to_owned());

    // 1. Sign in: the first page appears, 100 keys, with more to load.
    page.client
        .goto(&format!("{}/admin/", page.base))
        .await
        .unwrap();
    page.until(
        "the sign-in form",
        "return !document.getElementById('signin').hidden;",
        vec![],
    )
    .await;
    page.type_into("#admin-key", &admin).await;
    let signed_in = Instant::now();
    page.click("#signin-form button[type=submit]").await;
    until_rows(&mut page, "the first page", &newest[..100]).await;
    // Measured for BENCHMARKS.md, not asserted: the machine is shared.
    println!(
        "panel at scale: the first page of {MANY} keys showed {} ms after sign-in",
        signed_in.elapsed().as_millis()
    );
    page.screenshot("first-page").await;
    assert!(
        page.text("#summary").await.contains("More keys follow"),
        "the summary says more keys follow"
    );
    // Incremental loading follows the Link header.
    page.click("#more").await;
    until_rows(&mut page, "the second page", &newest[..200]).await;

    // The rotation link to a key on no loaded page finds that key.
    page.click("#key-R000000000000001 a.row-link").await;
    until_rows(&mut page, "the replaced key", &["service 00010".to_owned()]).await;
    page.until(
        "focus on the replaced key",
        "return document.activeElement.id === 'key-0000000000000010';",
        vec![],
    )
    .await;

    // 2. Search finds one key by part of its name, ignoring case.
    page.type_into("#search", "SERVICE 04321").await;
    until_rows(
        &mut page,
        "the search result",
        &["service 04321".to_owned()],
    )
    .await;
    page.screenshot("search").await;
    // And by part of its id.
    page.type_into("#search", "00000000000777").await;
    let by_id: Vec<String> = records
        .iter()
        .rev()
        .filter(|r| r.id().as_str().contains("00000000000777"))
        .map(name)
        .collect();
    until_rows(&mut page, "the search by id", &by_id).await;

    // 3. A filter and a sort: revoked keys, oldest first (the Created header, twice).
    page.js(
        "const q = document.getElementById('search'); q.value = ''; \
         q.dispatchEvent(new Event('input'));",
        vec![],
    )
    .await;
    page.js(
        "const s = document.getElementById('state-filter'); s.value = 'revoked'; \
         s.dispatchEvent(new Event('change'));",
        vec![],
    )
    .await;
    let revoked: Vec<String> = records
        .iter()
        .rev()
        .filter(|r| r.revoked_at().is_some())
        .map(name)
        .collect();
    assert_eq!(revoked.len(), MANY / 50);
    page.until(
        "the state filter's first answer",
        "return document.querySelectorAll('#key-rows tr.state-revoked').length > 0;",
        vec![],
    )
    .await;
    until_rows(&mut page, "the revoked keys", &revoked[..100]).await;
    page.click("#key-table button.sort-by[data-sort=created]")
        .await;
    let oldest_revoked: Vec<String> = revoked.iter().rev().cloned().collect();
    until_rows(
        &mut page,
        "revoked keys, oldest first",
        &oldest_revoked[..100],
    )
    .await;
    let sorted = page
        .js(
            "return document.querySelector('#key-table th[data-sort=created]').getAttribute('aria-sort');",
            vec![],
        )
        .await;
    assert_eq!(
        sorted,
        json!("ascending"),
        "the header says how the list is sorted"
    );
    page.screenshot("revoked-oldest-first").await;

    // 4. The export downloads every revoked key (not only the 100 shown), oldest
    // first, with no key or digest, and a formula-like name made text.
    let csv = export_csv(&mut page, &downloads).await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        csv_fields(lines[0], ','),
        [
            "name",
            "id",
            "scopes",
            "created",
            "expires",
            "ends",
            "last used",
            "state",
            "created_by",
            // The demo's admin key is an operator's, who sees every tenant.
            "tenant"
        ]
    );
    assert_eq!(lines.len(), 1 + revoked.len(), "one row per revoked key");
    let rows: Vec<Vec<String>> = lines[1..].iter().map(|l| csv_fields(l, ',')).collect();
    let names: Vec<String> = rows.iter().map(|row| row[0].clone()).collect();
    let formula = "'=HYPERLINK(\"http://evil.example\")";
    let expected: Vec<String> = oldest_revoked
        .iter()
        .map(|n| {
            if n.starts_with('=') {
                formula.to_owned()
            } else {
                n.clone()
            }
        })
        .collect();
    assert_eq!(
        names, expected,
        "the rows of the current filter, in its order"
    );
    assert!(
        rows.iter().all(|row| row[7] == "revoked"),
        "every row is revoked"
    );
    assert_eq!(rows[0][1..3], ["0000000000000000", "reports:read"]);
    assert!(!csv.contains("mkc_"), "no key in the export");
    page.screenshot("exported").await;

    // 5. Search and filter together, newest first again (the README's screenshot).
    page.js(
        "const o = document.getElementById('sort'); o.value = '-created'; \
         o.dispatchEvent(new Event('change'));",
        vec![],
    )
    .await;
    page.type_into("#search", "service 04").await;
    let both: Vec<String> = revoked
        .iter()
        .filter(|n| n.starts_with("service 04"))
        .cloned()
        .collect();
    until_rows(&mut page, "revoked keys named service 04…", &both).await;
    page.screenshot("search-and-filters").await;
}

/// The cells of one CSV line as a spreadsheet whose list separator is `separator` reads
/// them: a cell that opens with `"` runs to the closing quote (`""` inside is one `"`),
/// and text after the closing quote joins the cell, as Excel does.
fn csv_fields(line: &str, separator: char) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut fresh = true;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().unwrap();
        if quoted {
            if c != '"' {
                field.push(c);
            } else if chars.peek() == Some(&'"') {
                chars.next();
                field.push('"');
            } else {
                quoted = false;
            }
        } else if c == separator {
            fields.push(String::new());
            fresh = true;
            continue;
        } else if c == '"' && fresh {
            quoted = true;
        } else {
            field.push(c);
        }
        fresh = false;
    }
    fields
}

// ---- the red team's findings on the panel (issue 28) -------------------------------

/// The demo over `store` on loopback, on the system clock, as the other tests serve
/// it; its address and admin key.
async fn serve_demo(store: InMemoryKeyStore) -> (SocketAddr, String) {
    let demo = app::build(
        store,
        FLUSH,
        Arc::new(tower_apikey::SystemClock),
        app::FAILURES_PER_MINUTE,
    )
    .await
    .unwrap();
    let admin = demo.admin_key.expose_secret().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = demo.router;
    tokio::spawn(async move {
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await.unwrap()
    });
    (addr, admin)
}

/// Runs `flow` in the browser (one at a time) against `addr`, with screenshots in
/// `target/<name>` and downloads in the directory it is given; the browser closes
/// however the flow ends, and the flow's failure is raised here.
async fn in_browser<F, Fut>(name: &str, addr: SocketAddr, flow: F)
where
    F: FnOnce(Page, PathBuf) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    in_browser_at(name, format!("http://{addr}"), flow).await;
}

/// [`in_browser`] at `base`, such as `http://localhost:PORT` for a `Secure` cookie.
async fn in_browser_at<F, Fut>(name: &str, base: String, flow: F)
where
    F: FnOnce(Page, PathBuf) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let _turn = BROWSER.lock().await;
    let chromium = tool("CHROMIUM", "/usr/bin/chromium", "Debian package chromium");
    let chromedriver = tool(
        "CHROMEDRIVER",
        "/usr/bin/chromedriver",
        "Debian package chromium-driver",
    );
    let shots = screenshots(name);
    let profile = std::env::temp_dir().join(format!("tower-apikey-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&profile);
    fs::create_dir_all(profile.join("downloads")).unwrap();
    let mut driver = Chromedriver::start(&chromedriver);
    let client = driver.session(&chromium, &profile).await;
    let page = Page {
        client: client.clone(),
        base,
        shots,
        shot: 0,
        console: Vec::new(),
    };
    let outcome = tokio::spawn(flow(page, profile.join("downloads"))).await;
    let _ = client.close().await;
    drop(driver);
    let _ = fs::remove_dir_all(&profile);
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// Opens the panel and signs in with `admin`, until the key list shows.
async fn sign_in(page: &mut Page, admin: &str) {
    page.client
        .goto(&format!("{}/admin/", page.base))
        .await
        .unwrap();
    page.until(
        "the sign-in form",
        "return !document.getElementById('signin').hidden;",
        vec![],
    )
    .await;
    page.type_into("#admin-key", admin).await;
    page.click("#signin-form button[type=submit]").await;
    page.wait_for_panel().await;
}

/// Names a spreadsheet in a `;` locale (or a tool that ignores quotes) would split into
/// a formula cell, and the name cell the export writes for each.
const FORMULA_NAMES: [(&str, &str); 5] = [
    (
        "Q3 export;=cmd|' /C calc'!A0",
        "Q3 export;'=cmd|' /C calc'!A0",
    ),
    (
        "Q3 export;@SUM(1+1)*cmd|' /C calc'!A0",
        "Q3 export;'@SUM(1+1)*cmd|' /C calc'!A0",
    ),
    ("totals, -2+3", "totals, '-2+3"),
    ("net; +1", "net; '+1"),
    (
        "=HYPERLINK(\"http://evil.example\")",
        "'=HYPERLINK(\"http://evil.example\")",
    ),
];

/// Whether a spreadsheet would run `cell` (spaces and, for tools that ignore quoting,
/// quotes before it skipped).
fn runs_as_formula(cell: &str) -> bool {
    cell.trim_start_matches(|c: char| c.is_whitespace() || c == '"')
        .starts_with(['=', '+', '-', '@'])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l4_the_csv_export_starts_no_cell_with_a_formula_whatever_the_separator() {
    let (addr, admin) = serve_demo(InMemoryKeyStore::new()).await;
    for (name, _) in FORMULA_NAMES {
        create(addr, &admin, json!({"name": name, "scopes": []})).await;
    }
    in_browser(
        "e2e-l4-screenshots",
        addr,
        move |mut page, downloads| async move {
            sign_in(&mut page, &admin).await;
            let csv = export_csv(&mut page, &downloads).await;
            page.screenshot("exported").await;

            let lines: Vec<&str> = csv.lines().collect();
            assert_eq!(lines.len(), 2 + FORMULA_NAMES.len(), "{csv}");
            // With `,`, `;` or tab as the list separator, quotes honoured or not, no
            // cell starts with a formula character ...
            for line in &lines {
                for separator in [',', ';', '\t'] {
                    for cell in csv_fields(line, separator)
                        .iter()
                        .map(String::as_str)
                        .chain(line.split(separator))
                    {
                        assert!(
                            !runs_as_formula(cell),
                            "split on {separator:?}, {cell:?} is a formula: {line}"
                        );
                    }
                }
            }
            // ... and read with `,`, as the file is written, each name is whole, with
            // a `'` before each formula character, and every cell is quoted, the
            // header's too (no `sep=` line).
            let names: Vec<String> = lines[1..]
                .iter()
                .map(|l| csv_fields(l, ',')[0].clone())
                .collect();
            for (name, cell) in FORMULA_NAMES {
                assert!(names.contains(&cell.to_owned()), "{name:?} -> {names:?}");
            }
            assert!(lines[0].starts_with("\"name\",\"id\","), "{csv}");
        },
    )
    .await;
}

/// `2026-05-01 12:00 UTC`, as the panel writes a time.
fn panel_utc(at: SystemTime) -> String {
    let at = OffsetDateTime::from(at);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l11_restricting_to_recent_addresses_shows_their_recency_and_asks_first() {
    use tower_apikey::key::KeyDigest;
    use tower_apikey::record::{KeyName, RecentIps};
    use tower_apikey::{KeyId, KeyRecord, KeyStoreAdmin, Scopes};
    // A key last used two hours ago from 203.0.113.66 (a thief, say), before that from
    // its owner's two addresses.
    let store = InMemoryKeyStore::new();
    let now = SystemTime::now();
    let last_used = now - Duration::from_secs(2 * 3600);
    let id = "L110000000000001";
    let record = KeyRecord::new(
        KeyId::new(id).unwrap(),
        KeyName::new("partner-feed").unwrap(),
        Scopes::new(["reports:read"]).unwrap(),
        KeyDigest::from_bytes([0x5a; 32]),
        now - DAY,
        now + 300 * DAY,
    )
    .with_last_used_at(Some(last_used))
    .with_recent_ips(RecentIps::from_newest(
        ["203.0.113.66", "192.0.2.10", "2001:db8::10"].map(|ip| ip.parse().unwrap()),
    ));
    store.insert(&record).await.unwrap();
    let (addr, admin) = serve_demo(store).await;

    in_browser("e2e-l11-screenshots", addr, move |mut page, _| async move {
        sign_in(&mut page, &admin).await;
        page.click(&format!("#key-{id} button.limits")).await;
        page.until(
            "the limits editor",
            "const d = document.getElementById('limits'); return d && d.open;",
            vec![],
        )
        .await;

        // Each address with when it was seen, newest first, none checked.
        let listed = page
            .js(
                "return [...document.querySelectorAll('#limits-recent li')].map(li => [\
                 li.querySelector('label').textContent, li.querySelector('input').checked, \
                 li.querySelector('.seen').textContent]);",
                vec![],
            )
            .await;
        assert_eq!(
            listed,
            json!([
                [
                    "203.0.113.66",
                    false,
                    format!("newest: the key's last use, {}", panel_utc(last_used))
                ],
                [
                    "192.0.2.10",
                    false,
                    "2nd newest: seen before the one above; no time recorded"
                ],
                [
                    "2001:db8::10",
                    false,
                    "3rd newest: seen before the one above; no time recorded"
                ],
            ])
        );
        let help = page.text("#limits-recent-help").await;
        assert!(help.contains("no time for the others"), "{help}");
        assert_accessible(&page).await;
        page.screenshot("recent-addresses").await;

        // Nothing checked: nothing to pin, and the page says so.
        page.click("#limits-restrict").await;
        let refused = page
            .until(
                "the ask to check addresses",
                "const e = document.getElementById('limits-restrict-error'); return !e.hidden && e.textContent;",
                vec![],
            )
            .await;
        assert!(refused.as_str().unwrap().contains("Check the addresses"));
        assert_eq!(page.focused_id().await, "limits-recent-0");
        let ips = "return document.getElementById('limits-ips').value;";
        assert_eq!(page.js(ips, vec![]).await, json!(""));

        // The owner's two addresses: a confirmation lists exactly them, and names the
        // one left out. Cancel changes nothing.
        page.click("#limits-recent-1").await;
        page.click("#limits-recent-2").await;
        let pin_open = "const d = document.getElementById('limits-pin'); return !!(d && d.open);";
        for confirm in [false, true] {
            page.click("#limits-restrict").await;
            page.until("the confirmation", pin_open, vec![]).await;
            let pinned = page
                .js(
                    "return [...document.querySelectorAll('#limits-pin-list li')].map(li => li.textContent);",
                    vec![],
                )
                .await;
            assert_eq!(pinned, json!(["192.0.2.10", "2001:db8::10"]));
            let others = page.text("#limits-pin-others").await;
            assert!(others.contains("203.0.113.66"), "{others}");
            assert_eq!(page.focused_id().await, "limits-pin-cancel");
            if confirm {
                page.screenshot("confirm-restrict").await;
                page.click("#limits-pin-ok").await;
            } else {
                page.click("#limits-pin-cancel").await;
            }
            page.until(
                "the confirmation to close",
                "const d = document.getElementById('limits-pin'); return !d.open;",
                vec![],
            )
            .await;
            let expected = if confirm { "192.0.2.10\n2001:db8::10" } else { "" };
            assert_eq!(page.js(ips, vec![]).await, json!(expected));
        }

        page.click("#limits-save").await;
        page.until(
            "the saved allowlist in the row",
            "const d = document.getElementById('limits'); const e = document.querySelector(arguments[0]); \
             return !d.open && e && e.textContent;",
            vec![json!(format!("#key-{id} ul.limits"))],
        )
        .await;
        let shown = request(
            addr,
            Method::GET,
            &format!("/admin/keys/{id}"),
            Some(&admin),
            None,
        )
        .await;
        let record: Value = serde_json::from_str(&shown.body).unwrap();
        assert_eq!(
            record["allowed_ips"],
            json!(["192.0.2.10/32", "2001:db8::10/128"])
        );
        page.screenshot("restricted").await;
    })
    .await;
}

/// M4 (DESIGN §10, heirs): before confirming, the revoke dialog says which keys the
/// revocation takes with it, the keys a key minted for itself by rotating itself (here
/// a thief's copy), and the page says what went; a key that minted none asks as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m4_the_revoke_dialog_names_the_keys_a_key_created_for_itself() {
    let (addr, admin) = serve_demo(InMemoryKeyStore::new()).await;
    // A self-rotating integration key, and a thief's heir of it.
    let (leaked, leaked_id) = create(
        addr,
        &admin,
        json!({"name": "billing-sync", "scopes": ["reports:read", "keys:rotate-self"]}),
    )
    .await;
    let stolen = request(
        addr,
        Method::POST,
        "/admin/self/rotate",
        Some(&leaked),
        Some(json!({"overlap_secs": null})),
    )
    .await;
    assert_eq!(stolen.status, StatusCode::CREATED);
    let stolen: Value = serde_json::from_str(&stolen.body).unwrap();
    let (heir, heir_id) = (
        stolen["key"].as_str().unwrap().to_owned(),
        stolen["id"].as_str().unwrap().to_owned(),
    );
    let (_, plain_id) = create(
        addr,
        &admin,
        json!({"name": "plain", "scopes": ["reports:read"]}),
    )
    .await;

    in_browser("e2e-heirs-screenshots", addr, move |mut page, _| async move {
        sign_in(&mut page, &admin).await;

        // A key that minted nothing: the dialog says nothing of heirs.
        page.click(&format!("#key-{plain_id} button[aria-label^='Revoke']"))
            .await;
        page.until(
            "the revoke confirmation",
            "return document.getElementById('confirm').open;",
            vec![],
        )
        .await;
        assert_eq!(
            page.js(
                "return document.getElementById('confirm-heirs').hidden;",
                vec![]
            )
            .await,
            json!(true),
            "no heirs, nothing said of them"
        );
        page.click("#confirm-cancel").await;

        // The leaked key: the dialog names the thief's key before anything is revoked.
        page.click(&format!("#key-{leaked_id} button[aria-label^='Revoke']"))
            .await;
        page.until(
            "the revoke confirmation with the heirs",
            "return document.getElementById('confirm').open \
             && !document.getElementById('confirm-heirs').hidden;",
            vec![],
        )
        .await;
        assert_eq!(
            page.text("#confirm-heirs-text").await,
            "This also revokes 1 key that this key created for itself:"
        );
        assert_eq!(
            page.text("#confirm-heirs-list li").await,
            format!("“billing-sync” ({heir_id})")
        );
        assert_eq!(page.focused_id().await, "confirm-cancel");
        page.screenshot("revoke-with-heirs").await;
        assert_eq!(
            request(addr, Method::POST, "/admin/self/rotate", Some(&heir), None)
                .await
                .status,
            StatusCode::CONFLICT,
            "asking revoked nothing: the heir still works (and may not rotate itself yet)"
        );

        page.click("#confirm-ok").await;
        page.until(
            "the message naming the heir",
            "return document.getElementById('status').textContent.includes(arguments[0]);",
            vec![json!(format!(
                "and 1 key it created for itself: “billing-sync” ({heir_id})"
            ))],
        )
        .await;
        page.until(
            "the heir's row, revoked",
            "const b = document.querySelector(arguments[0]); return b && b.textContent === 'revoked';",
            vec![json!(format!("{} .badge", row_cell(&heir_id, "State")))],
        )
        .await;
        page.screenshot("revoked-with-heirs").await;
        // The heir's history says what revoked it.
        page.click(&format!("#key-{heir_id} button.history")).await;
        page.until(
            "the heir's history naming the leaked key",
            "const d = document.getElementById('history'); \
             return d && d.open && [...document.querySelectorAll('#history-events li')] \
               .some(li => li.dataset.type === 'revoked' && li.textContent.includes(arguments[0]));",
            vec![json!(format!(
                "revoked with {leaked_id}, the key it descends from"
            ))],
        )
        .await;
        page.js("document.getElementById('history').close();", vec![])
            .await;
        for key in [&leaked, &heir] {
            assert_eq!(
                request(addr, Method::GET, "/ping", Some(key), None)
                    .await
                    .status,
                StatusCode::UNAUTHORIZED
            );
        }
    })
    .await;
}

// ---- tenants (issue 31, DESIGN §14) ---------------------------------------------------

/// Waits until the panel names whose keys it shows as `text`.
async fn until_shown(page: &mut Page, text: &str) {
    page.until(
        &format!("the panel to say {text:?}"),
        "return document.getElementById('tenant-shown').textContent === arguments[0];",
        vec![json!(text)],
    )
    .await;
}

/// The ids of the rows the list shows, sorted.
const ROW_IDS: &str = "return [...document.querySelectorAll('#key-rows tr')]\
     .map(tr => tr.id.replace(/^key-/, '')).sort();";

/// Exports the list as CSV and reads the file the browser downloaded into `downloads`.
async fn export_csv(page: &mut Page, downloads: &Path) -> String {
    for old in fs::read_dir(downloads).unwrap().flatten() {
        fs::remove_file(old.path()).unwrap();
    }
    page.click("#export").await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let done = fs::read_dir(downloads)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "csv"));
        if let Some(path) = done {
            return fs::read_to_string(&path).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no CSV downloaded within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_admin_sees_only_its_tenant_and_an_operator_filters_and_creates_by_tenant() {
    let (addr, operator) = serve_demo(InMemoryKeyStore::new()).await;
    let operator_id = operator.split('_').nth(1).unwrap().to_owned();
    let mut made = Vec::new();
    for (name, scopes, tenant) in [
        ("acme admin", &["admin:keys", "reports:read"][..], "acme"),
        ("acme sync", &["reports:read"], "acme"),
        ("globex admin", &["admin:keys"], "globex"),
        ("globex sync", &["reports:read"], "globex"),
    ] {
        let body = json!({"name": name, "scopes": scopes, "tenant": tenant});
        made.push(create(addr, &operator, body).await);
    }
    let [
        (acme_admin, acme_admin_id),
        (_, acme_sync),
        (_, globex_admin),
        (_, globex_sync),
    ] = <[_; 4]>::try_from(made).unwrap();

    in_browser(
        "e2e-tenants-screenshots",
        addr,
        move |mut page, downloads| async move {
            // As acme's administrator: the panel names acme and lists acme's keys only.
            sign_in(&mut page, &acme_admin).await;
            until_shown(&mut page, "Keys of tenant acme").await;
            let mut acme = vec![acme_admin_id.clone(), acme_sync.clone()];
            acme.sort();
            assert_eq!(page.js(ROW_IDS, vec![]).await, json!(acme));
            let operator_only = page
                .js(
                    "return ['tenant-filter-field', 'create-tenant-field', 'tenant-column']\
                     .map(id => document.getElementById(id).hidden);",
                    vec![],
                )
                .await;
            assert_eq!(
                operator_only,
                json!([true, true, true]),
                "no tenant filter, field or column"
            );
            page.screenshot("acme").await;
            let csv = export_csv(&mut page, &downloads).await;
            for other in [&globex_admin, &globex_sync] {
                assert!(
                    !csv.contains(other.as_str()),
                    "{other} in acme's export: {csv}"
                );
            }
            // The operator made acme's keys, so its id is their `created_by`; its own
            // key is no row.
            let mut ids: Vec<String> = csv
                .lines()
                .skip(1)
                .map(|l| csv_fields(l, ',')[1].clone())
                .collect();
            ids.sort();
            assert_eq!(ids, acme, "acme's keys alone: {csv}");
            // Every row names its tenant (DESIGN §14), in a tenant's export too.
            let header = csv_fields(csv.lines().next().unwrap(), ',');
            assert_eq!(header.last().map(String::as_str), Some("tenant"), "{csv}");
            for line in csv.lines().skip(1) {
                assert_eq!(
                    csv_fields(line, ',').last().map(String::as_str),
                    Some("acme")
                );
            }

            // As the operator: every tenant, a filter narrowing to one, a tenant column.
            page.click("#forget").await;
            sign_in(&mut page, &operator).await;
            until_shown(&mut page, "All tenants (operator)").await;
            let mut everyone = vec![
                operator_id.clone(),
                acme_admin_id.clone(),
                acme_sync.clone(),
                globex_admin.clone(),
                globex_sync.clone(),
            ];
            everyone.sort();
            assert_eq!(page.js(ROW_IDS, vec![]).await, json!(everyone));
            assert_eq!(page.text(&row_cell(&globex_sync, "Tenant")).await, "globex");
            assert_eq!(page.text(&row_cell(&operator_id, "Tenant")).await, "none");
            page.type_into("#tenant-filter", "globex").await;
            page.js(
                "document.getElementById('tenant-filter').dispatchEvent(new Event('change'));",
                vec![],
            )
            .await;
            let mut globex = vec![globex_admin.clone(), globex_sync.clone()];
            globex.sort();
            page.until(
                "globex's keys alone",
                "return JSON.stringify([...document.querySelectorAll('#key-rows tr')]\
                 .map(tr => tr.id.replace(/^key-/, '')).sort()) === JSON.stringify(arguments[0]);",
                vec![json!(globex)],
            )
            .await;
            assert_eq!(
                page.text("#tenant-shown").await,
                "Keys of tenant globex (operator)"
            );
            page.screenshot("operator-globex").await;
            let csv = export_csv(&mut page, &downloads).await;
            let header = csv_fields(csv.lines().next().unwrap(), ',');
            assert_eq!(header.last().map(String::as_str), Some("tenant"), "{csv}");
            assert!(
                csv.lines()
                    .skip(1)
                    .all(|l| csv_fields(l, ',').last().map(String::as_str) == Some("globex")),
                "{csv}"
            );

            // A tenant id outside the alphabet is refused beside its field, with the focus there.
            page.type_into("#create-name", "globex reports").await;
            page.type_into("#create-tenant", "glo bex").await;
            page.click("#create-submit").await;
            page.until(
                "the tenant field's error",
                "return !document.getElementById('create-tenant-error').hidden;",
                vec![],
            )
            .await;
            assert_eq!(page.focused_id().await, "create-tenant");

            // Create in a tenant: the key is made there.
            page.type_into("#create-tenant", "globex").await;
            page.click("#create-submit").await;
            let key = page.one_time_key().await;
            assert!(is_key(&key), "{key}");
            page.click("#once-done").await;
            page.wait_dismissed().await;
            let whoami = request(addr, Method::GET, "/whoami", Some(&key), None).await;
            assert_eq!(whoami.status, StatusCode::OK, "{}", whoami.body);
            let whoami: Value = serde_json::from_str(&whoami.body).unwrap();
            assert_eq!(whoami["tenant"], "globex");
            let id = key.split('_').nth(1).unwrap().to_owned();
            page.until(
                "the new key in globex's list",
                "return !!document.getElementById('key-' + arguments[0]);",
                vec![json!(id)],
            )
            .await;
            assert_eq!(page.text(&row_cell(&id, "Tenant")).await, "globex");
            page.screenshot("created-in-globex").await;
        },
    )
    .await;
}

/// Behind the example's login, Carol administers the tenant globex: the panel names
/// globex, lists globex's key alone (not acme's, nor the application's own), and her new
/// key is made in globex.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_person_behind_the_login_sees_and_creates_in_that_tenant_alone() {
    let store = InMemoryKeyStore::new();
    let manager = tower_apikey::KeyManager::new(store.clone());
    let mut ids = Vec::new();
    for tenant in [Some("acme"), Some("globex"), None] {
        let mut new = tower_apikey::NewKey::new(
            format!("{} sync", tenant.unwrap_or("own")),
            ["reports:read"],
        );
        if let Some(tenant) = tenant {
            new = new.tenant(tenant.parse::<tower_apikey::record::TenantId>().unwrap());
        }
        ids.push(manager.create(new).await.unwrap().record.id().to_string());
    }
    let globex_id = ids[1].clone();
    let (port, password) = serve_behind_login(store, "carol@globex.example").await;
    // `localhost`: browsers keep the `Secure` session cookie from it over plain HTTP.
    let base = format!("http://localhost:{port}");
    in_browser_at(
        "e2e-screenshots-login-tenant",
        base,
        move |mut page, _| async move {
            page.client.goto(&format!("{}/", page.base)).await.unwrap();
            page.type_into("input[name=email]", "carol@globex.example")
                .await;
            page.type_into("input[name=password]", &format!("{password}{}", Key::Enter))
                .await;
            page.until(
                "the panel of tenant globex, signed in as Carol",
                "return !document.getElementById('panel').hidden \
             && document.getElementById('tenant-shown').textContent === 'Keys of tenant globex' \
             && document.querySelectorAll('#key-rows tr').length > 0;",
                vec![],
            )
            .await;
            assert_eq!(page.js(ROW_IDS, vec![]).await, json!([globex_id]));
            let field_hidden = page
                .js(
                    "return document.getElementById('create-tenant-field').hidden;",
                    vec![],
                )
                .await;
            assert_eq!(
                field_hidden,
                json!(true),
                "no tenant field for a tenant's person"
            );
            page.screenshot("carol-of-globex").await;
            page.click("#scope-list input[value='reports:read']").await;
            page.type_into("#create-name", &format!("carol's export{}", Key::Enter))
                .await;
            let key = page.one_time_key().await;
            page.click("#once-done").await;
            page.wait_dismissed().await;
            let made = key.split('_').nth(1).unwrap().parse().unwrap();
            let record = manager.get(&made).await.unwrap();
            assert_eq!(record.tenant().map(|t| t.as_str()), Some("globex"));
            assert_eq!(
                record.created_by().map(|a| a.as_str()),
                Some("carol@globex.example")
            );
        },
    )
    .await;
}

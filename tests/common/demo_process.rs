//! The real demo binary (`examples/demo`) as a child process, for tests that drive it
//! from outside: its flags, its stdout and its signals.
//!
//! The binary is built once per test process by the cargo that runs the tests (after
//! `cargo test` built everything, this finds it up to date).

// Shared by the core's and the PostgreSQL crate's demo tests, which each use a part.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A bound on every wait for the demo, so that a broken behaviour fails instead of
/// hanging. Generous: a debug build on a busy machine, and PostgreSQL.
pub const GUARD: Duration = Duration::from_secs(60);

/// The demo's executable, built on first use.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // The core crate's example, from any crate of the workspace (the PostgreSQL
        // crate's tests run it too); it needs no `--features`.
        let mut command = std::process::Command::new(cargo);
        command
            .args([
                "build",
                "-p",
                "tower-apikey",
                "--example",
                "demo",
                "--message-format=json",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        let output = command
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo to build the demo");
        assert!(output.status.success(), "cargo could not build the demo");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|message| {
                message["reason"] == "compiler-artifact"
                    && message["target"]["name"] == "demo"
                    && message["target"]["kind"] == serde_json::json!(["example"])
            })
            .and_then(|message| message["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the demo's executable")
    })
}

/// A running demo.
pub struct DemoProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The key it printed as `admin key: <key>`.
    pub admin_key: String,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

impl DemoProcess {
    /// Starts the demo on a free loopback port with `args`, and waits until it
    /// listens. Panics, showing its log, if it does not.
    pub async fn start(args: &[&str]) -> Self {
        let mut child = spawn(args);
        let (stderr, listening, _) = read_stderr(&mut child);
        let (stdout, admin_key) = read_stdout(&mut child);
        let started = tokio::time::timeout(GUARD, async {
            let addr = listening.await.ok()?;
            let admin_key = admin_key.await.ok()?;
            Some((addr, admin_key))
        })
        .await;
        let Ok(Some((addr, admin_key))) = started else {
            let _ = child.start_kill();
            let status = child.wait().await;
            panic!(
                "the demo did not start ({status:?}); its log:\n{}",
                stderr.lock().unwrap()
            );
        };
        Self {
            child,
            addr,
            admin_key,
            stderr,
            stdout,
        }
    }

    /// Runs the demo with `args`, expecting it to fail at startup; returns its log.
    pub async fn fail(args: &[&str]) -> String {
        let mut child = spawn(args);
        let (stderr, _, reader) = read_stderr(&mut child);
        let (stdout, _) = read_stdout(&mut child);
        let status = tokio::time::timeout(GUARD, child.wait())
            .await
            .expect("the demo neither failed nor stopped")
            .unwrap();
        assert!(!status.success(), "the demo did not fail");
        reader.await.unwrap();
        assert_eq!(stdout.lock().unwrap().as_str(), "", "it printed no key");
        stderr.lock().unwrap().clone()
    }

    /// Where it serves `GET /metrics`: the address of its `metrics listening` line,
    /// logged before it listens when started with `--metrics-addr`. Panics without one.
    pub fn metrics_addr(&self) -> SocketAddr {
        let log = self.log();
        log.lines()
            .filter(|line| line.contains("metrics listening"))
            .find_map(|line| {
                line.split_whitespace()
                    .find_map(|field| field.strip_prefix("addr="))
                    .and_then(|addr| addr.parse().ok())
            })
            .unwrap_or_else(|| panic!("the demo logged no metrics listener:\n{log}"))
    }

    /// What it has printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until its log contains `text`.
    pub async fn wait_for_log(&self, text: &str) {
        let found = tokio::time::timeout(GUARD, async {
            while !self.stderr.lock().unwrap().contains(text) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "the demo never logged {text:?}; its log:\n{}",
            self.log()
        );
    }

    /// Sends it SIGTERM, as `kill` and service managers do.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("the demo is running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for it to exit.
    pub async fn wait(mut self) -> ExitStatus {
        tokio::time::timeout(GUARD, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the demo did not stop; its log:\n{}", self.log()))
            .unwrap()
    }

    /// Stops it with SIGTERM and checks that it stopped cleanly.
    pub async fn stop(self) {
        self.terminate();
        let log = self.stderr.clone();
        let status = self.wait().await;
        assert!(
            status.success(),
            "{status}; its log:\n{}",
            log.lock().unwrap()
        );
    }
}

fn spawn(args: &[&str]) -> Child {
    Command::new(binary())
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the demo")
}

/// Collects the demo's log, and sends the address from its `demo listening` line. The
/// task ends when the demo closes its stderr.
fn read_stderr(
    child: &mut Child,
) -> (
    Arc<Mutex<String>>,
    oneshot::Receiver<SocketAddr>,
    JoinHandle<()>,
) {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(String::new()));
    let (listening, addr) = oneshot::channel();
    let collected = Arc::clone(&log);
    let reader = tokio::spawn(async move {
        let mut listening = Some(listening);
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("demo listening") {
                let addr = line
                    .split_whitespace()
                    .find_map(|field| field.strip_prefix("addr="))
                    .and_then(|addr| addr.parse().ok());
                if let (Some(addr), Some(listening)) = (addr, listening.take()) {
                    let _ = listening.send(addr);
                }
            }
            let mut log = collected.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    (log, addr, reader)
}

/// Collects the demo's stdout, and sends the key of its first `admin key: <key>` line.
/// Reading it all also keeps the demo from blocking on a full pipe.
fn read_stdout(child: &mut Child) -> (Arc<Mutex<String>>, oneshot::Receiver<String>) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let printed = Arc::new(Mutex::new(String::new()));
    let (found, key) = oneshot::channel();
    let collected = Arc::clone(&printed);
    tokio::spawn(async move {
        let mut found = Some(found);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(key) = line.strip_prefix("admin key: ")
                && let Some(found) = found.take()
            {
                let _ = found.send(key.to_owned());
            }
            let mut printed = collected.lock().unwrap();
            printed.push_str(&line);
            printed.push('\n');
        }
    });
    (printed, key)
}

//! A real headless Chromium for tests, driven over WebDriver (`chromedriver` + `fantoccini`).
//!
//! [`Browser::start`] starts a private `chromedriver` on a free loopback port, waits until it
//! is ready, and opens a session on a headless Chromium with a throwaway profile and the
//! flags that keep it off the network (tests run without outside network access). Tests
//! drive the page through [`Browser::client`]; [`Browser::close`] ends the session and stops
//! the driver (dropping a `Browser` stops the driver too, as a fallback).
//!
//! The browser comes from Debian's `chromium` and `chromium-driver` packages. When they are
//! missing, `start` fails (the tests using it fail; they are never skipped). Other binaries
//! can be chosen with `HERALD_CHROMIUM` and `HERALD_CHROMEDRIVER`.

use anyhow::{Context, anyhow, bail};
use fantoccini::{Client, ClientBuilder};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Environment variable naming the `chromedriver` binary.
pub const CHROMEDRIVER_ENV: &str = "HERALD_CHROMEDRIVER";
/// Environment variable naming the Chromium binary.
pub const CHROMIUM_ENV: &str = "HERALD_CHROMIUM";

/// How long `chromedriver` may take to answer `GET /status` with `ready: true`.
const DRIVER_READY_DEADLINE: Duration = Duration::from_secs(20);
/// How long one `GET /status` may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between two `GET /status`.
const STATUS_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long opening the WebDriver session (launching Chromium) may take.
const SESSION_DEADLINE: Duration = Duration::from_secs(60);
/// How many times a driver that exited before answering is started again (on a new port: the
/// port picked may have been taken between picking it and the driver binding it).
const DRIVER_ATTEMPTS: usize = 3;

/// Chromium's host resolver answers "not found" for every name but loopback ones.
/// (`MAP *` also matches IP literals, hence the loopback addresses.)
const HOST_RESOLVER_RULES: &str =
    "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE [::1] , EXCLUDE localhost , EXCLUDE *.localhost";

/// The browser's time zone (UTC+05:30): times rendered in the viewer's zone differ from UTC.
pub const VIEWER_TIME_ZONE: &str = "Asia/Kolkata";

const INSTALL_HINT: &str = "install Debian's `chromium` and `chromium-driver` packages \
     (`apt-get install chromium chromium-driver`), or point HERALD_CHROMIUM and \
     HERALD_CHROMEDRIVER at a Chromium and a matching chromedriver";

/// A headless Chromium session driven through a private `chromedriver`.
pub struct Browser {
    /// The WebDriver client of the session.
    pub client: Client,
    driver: Child,
    profile: tempfile::TempDir,
    /// The driver's port on 127.0.0.1.
    port: u16,
    /// The WebDriver session, ended by `close` or, failing that, by `drop`.
    session: Option<String>,
}

impl Browser {
    /// Starts `chromedriver` on a free port of 127.0.0.1 and opens a headless Chromium
    /// session with a fresh profile. Takes about a second on a warm machine.
    ///
    /// # Errors
    /// When Chromium or chromedriver are missing (the message says what to install), when
    /// the driver does not become ready within 20 s, or when the session cannot be opened.
    pub async fn start() -> anyhow::Result<Browser> {
        let chromedriver = find_chromedriver()?;
        let chromium = find_chromium()?;
        let profile = tempfile::Builder::new()
            .prefix("herald-browser-")
            .tempdir()
            .context("creating the browser's temporary directory")?;

        // The driver is spawned with kill_on_drop: every early return below stops it.
        let (mut driver, port) = start_driver(&chromedriver, profile.path()).await?;
        let user_data_dir = profile.path().join("profile");
        let capabilities = capabilities(&chromium, &user_data_dir);
        let url = format!("http://127.0.0.1:{port}");
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let connect = builder.connect(&url);
        let client = match tokio::time::timeout(SESSION_DEADLINE, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                let _ = driver.start_kill();
                bail!(
                    "opening a Chromium session through chromedriver ({}) with Chromium {}: {e}{}",
                    chromedriver.display(),
                    chromium.display(),
                    log_tail(profile.path()),
                );
            }
            Err(_) => {
                let _ = driver.start_kill();
                bail!("opening a Chromium session took more than {SESSION_DEADLINE:?}{}", log_tail(profile.path()),);
            }
        };
        let session = match client.session_id().await {
            Ok(session) => session,
            Err(e) => {
                let _ = driver.start_kill();
                bail!("reading the WebDriver session id: {e}");
            }
        };
        Ok(Browser { client, driver, profile, port, session })
    }

    /// [`Browser::start`] for a test, with the rule of the PostgreSQL tests: where Chromium
    /// or its driver is missing, the test is skipped with a message (`None`), unless `CI` is
    /// set — in CI the browser tests must run, so it fails.
    pub async fn start_for_test(test: &str) -> Option<Browser> {
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        if !in_ci && (find_chromedriver().is_err() || find_chromium().is_err()) {
            eprintln!("{test}: skipped: no Chromium here ({INSTALL_HINT})");
            return None;
        }
        match Browser::start().await {
            Ok(b) => Some(b),
            Err(e) => panic!("{test}: {e:#}"),
        }
    }

    /// Resizes the browser window (e.g. 360 wide for the narrow-screen check).
    ///
    /// # Errors
    /// When the WebDriver command fails.
    pub async fn set_window(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.client
            .set_window_size(width, height)
            .await
            .with_context(|| format!("resizing the browser window to {width}x{height}"))
    }

    /// Takes a screenshot of the current page and writes it as PNG to `path` (creating the
    /// parent directories).
    ///
    /// # Errors
    /// When the screenshot cannot be taken or written.
    pub async fn screenshot_to(&self, path: &Path) -> anyhow::Result<()> {
        let png = self.client.screenshot().await.context("taking a screenshot")?;
        // std::fs on a blocking thread: the workspace's tokio has no `fs` feature, and turning
        // it on here would change tokio's features for every crate (testkit is a dependency of
        // the `herald` binary).
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(&path, &png).with_context(|| format!("writing the screenshot to {}", path.display()))
        })
        .await
        .context("writing the screenshot")?
    }

    /// The temporary directory of this browser: the Chromium profile (`profile/`) and the
    /// driver's log (`chromedriver.log`). Removed when the `Browser` is closed or dropped.
    pub fn dir(&self) -> &Path {
        self.profile.path()
    }

    /// Ends the WebDriver session (which quits Chromium), then stops the driver.
    ///
    /// # Errors
    /// When ending the session fails; the driver is stopped anyway.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let closed = self.client.clone().close().await;
        self.session = None;
        let _ = self.driver.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.driver.wait()).await;
        closed.context("ending the WebDriver session")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Fallback when `close` was not called (e.g. a test panicked). Killing the driver alone
        // leaves Chromium running, and the client's own shutdown runs on a task that the
        // ending test runtime does not finish: end the session synchronously, so that the
        // driver quits Chromium, then stop the driver.
        if let Some(session) = self.session.take() {
            delete_session_blocking(self.port, &session);
        }
        let _ = self.driver.start_kill();
    }
}

/// The `goog:chromeOptions` capabilities of a headless, offline Chromium.
fn capabilities(chromium: &Path, user_data_dir: &Path) -> fantoccini::wd::Capabilities {
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        format!("--user-data-dir={}", user_data_dir.display()),
        "--window-size=1280,900".to_owned(),
        // Belt and braces: even with the flags above Chromium still resolves Google and
        // search-engine hosts (sign-in, autofill, extension updates, search preconnect). Any
        // host name but loopback ones fails without a DNS query.
        format!("--host-resolver-rules={HOST_RESOLVER_RULES}"),
    ];
    let mut caps = fantoccini::wd::Capabilities::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": chromium.to_string_lossy(),
            "args": args,
        }),
    );
    caps
}

/// `HERALD_CHROMEDRIVER`, else `/usr/bin/chromedriver`, else `chromedriver` on `PATH`.
fn find_chromedriver() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(CHROMEDRIVER_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(anyhow!("{CHROMEDRIVER_ENV}={} is not a file: {INSTALL_HINT}", path.display()))
        };
    }
    let default = PathBuf::from("/usr/bin/chromedriver");
    if default.is_file() {
        return Ok(default);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromedriver"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "chromedriver not found (not in {CHROMEDRIVER_ENV}, /usr/bin/chromedriver or PATH): \
                 {INSTALL_HINT}"
            )
        })
}

/// `HERALD_CHROMIUM`, else `/usr/bin/chromium`.
fn find_chromium() -> anyhow::Result<PathBuf> {
    let (path, origin) = match std::env::var_os(CHROMIUM_ENV).filter(|v| !v.is_empty()) {
        Some(path) => (PathBuf::from(path), CHROMIUM_ENV),
        None => (PathBuf::from("/usr/bin/chromium"), "the default"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(anyhow!("Chromium not found at {} ({origin}): {INSTALL_HINT}", path.display()))
    }
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_loopback_port() -> anyhow::Result<u16> {
    let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("binding 127.0.0.1:0 to pick a port for chromedriver")?;
    Ok(listener.local_addr()?.port())
}

/// Starts chromedriver on a free loopback port and waits until it is ready for sessions.
async fn start_driver(chromedriver: &Path, dir: &Path) -> anyhow::Result<(Child, u16)> {
    let log_path = dir.join("chromedriver.log");
    let mut last_err = None;
    for _ in 0..DRIVER_ATTEMPTS {
        let port = free_loopback_port()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            // Chromium inherits it: a zone away from UTC (and without daylight saving), so
            // that pages which show times in the viewer's zone visibly do.
            .env("TZ", VIEWER_TIME_ZONE)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}: {INSTALL_HINT}", chromedriver.display()))?;
        match wait_ready(&mut child, port).await {
            Ok(()) => return Ok((child, port)),
            Err(DriverNotReady::Exited(status)) => {
                // Probably lost the port to someone else: try again on another one.
                last_err =
                    Some(anyhow!("{} exited before it was ready ({status}){}", chromedriver.display(), log_tail(dir)));
            }
            Err(DriverNotReady::Timeout) => {
                let _ = child.start_kill();
                bail!(
                    "{} did not answer GET /status with ready=true on 127.0.0.1:{port} within \
                     {DRIVER_READY_DEADLINE:?}{}",
                    chromedriver.display(),
                    log_tail(dir)
                );
            }
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow!("chromedriver did not start")))
}

/// The plain-http client of the readiness poll.
type StatusClient = HttpClient<HttpConnector, String>;

enum DriverNotReady {
    Exited(std::process::ExitStatus),
    Timeout,
}

/// Polls `GET /status` until the driver says it is ready, it exits, or the deadline passes.
async fn wait_ready(child: &mut Child, port: u16) -> Result<(), DriverNotReady> {
    let deadline = Instant::now() + DRIVER_READY_DEADLINE;
    let url = format!("http://127.0.0.1:{port}/status");
    let client: StatusClient = HttpClient::builder(TokioExecutor::new()).build(HttpConnector::new());
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(DriverNotReady::Exited(status));
        }
        if let Ok(Ok(true)) = tokio::time::timeout(STATUS_TIMEOUT, status_ready(&client, &url)).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(DriverNotReady::Timeout);
        }
        tokio::time::sleep(STATUS_POLL_INTERVAL).await;
    }
}

/// One `GET /status`: whether the driver answered 200 with `value.ready == true`.
async fn status_ready(client: &StatusClient, url: &str) -> anyhow::Result<bool> {
    let response = client.get(url.parse()?).await?;
    if response.status() != 200 {
        return Ok(false);
    }
    let body = response.into_body().collect().await?.to_bytes();
    let ready = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.pointer("/value/ready").and_then(serde_json::Value::as_bool));
    Ok(ready == Some(true))
}

/// `DELETE /session/{id}` with blocking I/O (for `Drop`): returns once the driver answered,
/// i.e. Chromium has quit, or after a few seconds. Errors are ignored (it is a fallback).
fn delete_session_blocking(port: u16, session: &str) {
    let addr = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return;
    };
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return;
    }
    // The driver answers once Chromium has quit; the head is enough (it keeps the connection
    // open despite `Connection: close`, so reading to the end would wait for the timeout).
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
}

/// The end of the driver's log, for error messages (empty when there is none).
fn log_tail(dir: &Path) -> String {
    let Ok(log) = std::fs::read_to_string(dir.join("chromedriver.log")) else {
        return String::new();
    };
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    if tail.trim().is_empty() { String::new() } else { format!("\nchromedriver log (last lines):\n{tail}") }
}

//! `spawn_app()`, a recording receiver, and helpers.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald::{Application, Deps, Settings};
use herald_delivery::StaticLookup;
use herald_domain::{Clock, ManualClock};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub const KEY: &str = "hk_000000000000000000000000000000000000000000000001";
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Awaits `cond` until it returns `Some`, checking every few milliseconds, failing the
/// test at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        if start.elapsed() > DEADLINE {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What the receiver answers on one path.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Hold the request until the gate opens.
    pub gated: bool,
    /// Take this long to answer.
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: String::new(), gated: false, delay: Duration::ZERO }
    }
    pub fn header(mut self, k: &'static str, v: &str) -> Self {
        self.headers.push((k, v.to_owned()));
        self
    }
    pub fn body(mut self, b: &str) -> Self {
        self.body = b.to_owned();
        self
    }
    pub fn gated(mut self) -> Self {
        self.gated = true;
        self
    }
    pub fn delayed(mut self, by: Duration) -> Self {
        self.delay = by;
        self
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    /// Scripted replies per path, used in order; then the default.
    script: Mutex<HashMap<String, VecDeque<Reply>>>,
    default: Mutex<HashMap<String, Reply>>,
    gate_open: Mutex<bool>,
    gate: Notify,
    arrived: Notify,
    in_flight: Mutex<HashMap<String, usize>>,
    max_in_flight: Mutex<HashMap<String, usize>>,
    /// Requests a path serves at once; beyond, it answers 503 at once (counted in `rejected`).
    capacity: Mutex<HashMap<String, usize>>,
    rejected: Mutex<HashMap<String, usize>>,
}

/// A loopback HTTP server that records every request.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
}

async fn receive(
    State(st): State<Arc<ReceiverState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let reply = {
        let mut script = st.script.lock().unwrap();
        script.get_mut(&path).and_then(|q| q.pop_front())
    }
    .or_else(|| st.default.lock().unwrap().get(&path).cloned())
    .unwrap_or_else(|| Reply::status(200));
    {
        let mut f = st.in_flight.lock().unwrap();
        let n = f.entry(path.clone()).or_default();
        if st.capacity.lock().unwrap().get(&path).is_some_and(|cap| *n >= *cap) {
            *st.rejected.lock().unwrap().entry(path.clone()).or_default() += 1;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        *n += 1;
        let mut m = st.max_in_flight.lock().unwrap();
        let mx = m.entry(path.clone()).or_default();
        *mx = (*mx).max(*n);
    }
    st.received.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body: body.to_vec(),
        at: std::time::Instant::now(),
    });
    st.arrived.notify_waiters();
    if reply.gated {
        loop {
            let n = st.gate.notified();
            if *st.gate_open.lock().unwrap() {
                break;
            }
            n.await;
        }
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    *st.in_flight.lock().unwrap().get_mut(&path).unwrap() -= 1;
    let mut r = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (k, v) in reply.headers {
        r.headers_mut().insert(k, v.parse().unwrap());
    }
    r
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new().route("/{path}", axum::routing::post(receive)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        self.state.script.lock().unwrap().entry(path.into()).or_default().extend(replies);
    }

    pub fn always(&self, path: &str, reply: Reply) {
        self.state.default.lock().unwrap().insert(path.into(), reply);
    }

    pub fn open_gate(&self) {
        *self.state.gate_open.lock().unwrap() = true;
        self.state.gate.notify_waiters();
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.state.received.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    pub fn max_in_flight(&self, path: &str) -> usize {
        self.state.max_in_flight.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Starts counting the most requests in flight on `path` afresh.
    pub fn reset_max_in_flight(&self, path: &str) {
        self.state.max_in_flight.lock().unwrap().remove(path);
    }

    /// `path` serves at most `n` requests at once and answers 503 to the rest (not recorded
    /// as received; counted by [`Receiver::rejected`]).
    pub fn capacity(&self, path: &str, n: usize) {
        self.state.capacity.lock().unwrap().insert(path.into(), n);
    }

    pub fn rejected(&self, path: &str) -> usize {
        self.state.rejected.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Waits until `path` has received at least `n` requests.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        eventually(&format!("{n} requests on /{path}"), || async {
            let r = self.received(path);
            (r.len() >= n).then_some(r)
        })
        .await
    }
}

/// Test settings: temp data dir, port 0, loopback targets allowed, no jitter.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings::defaults();
    s.listen = "127.0.0.1:0".into();
    s.data_dir = dir.to_path_buf();
    s.allow_private_targets = true;
    s.retry_jitter = 0.0;
    s.bootstrap_api_key = Some(herald::settings::SecretText::new(KEY));
    // Many PostgreSQL tests share one loaded 2-core machine: a publish may wait for a pooled
    // connection longer than a production 503 would allow (the outage test sets its own).
    s.pg_acquire_timeout = Duration::from_secs(30);
    s.smtp_domains = "agents.test".into();
    s.smtp_hostname = "mx.herald.test".into();
    s
}

/// The store a test app runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `<name>::on_sqlite` and `<name>::on_postgres` from `async fn <name>(Backend)`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                super::$name($crate::support::Backend::Postgres).await
            }
        }
    )*};
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The SMTP listener, when the test asked for one (`smtp_listen`).
    pub smtp_addr: Option<SocketAddr>,
    /// The app's DNS server (`HERALD_DNS_SERVER`), on loopback: tests publish records here;
    /// nothing reaches public DNS.
    pub dns: Arc<herald_testkit::LoopbackDns>,
    pub http: reqwest::Client,
    pub clock: Option<Arc<ManualClock>>,
    pub cancel: CancellationToken,
    pub store: Arc<dyn herald_store::Store>,
    pub _dir: Arc<tempfile::TempDir>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The scratch PostgreSQL database (dropped with the app).
    _db: Option<herald_store_postgres::test_db::TestDb>,
}

pub struct Options {
    pub manual_clock: bool,
    pub lookup: Option<StaticLookup>,
    pub tweak: Box<dyn FnOnce(&mut Settings)>,
    pub wrap_store: Option<herald::StoreWrapper>,
}

impl Default for Options {
    fn default() -> Self {
        Self { manual_clock: false, lookup: None, tweak: Box::new(|_| {}), wrap_store: None }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// A test app on `backend`; `None` when PostgreSQL is asked for but not configured (outside
/// CI only: in CI a missing PostgreSQL fails the test).
pub async fn spawn_on(backend: Backend, opts: Options) -> Option<TestApp> {
    match backend {
        Backend::Sqlite => Some(spawn_app_with(opts).await),
        Backend::Postgres => {
            let db = herald_store_postgres::test_db::TestDb::create("api test").await?;
            let url = db.url.clone();
            let tweak = opts.tweak;
            let mut app = spawn_app_with(Options {
                tweak: Box::new(move |s| {
                    s.database_url = Some(url);
                    // Tests run side by side: stay well under the server's connection limit.
                    s.pg_pool_size = 4;
                    tweak(s);
                }),
                ..opts
            })
            .await;
            app._db = Some(db);
            Some(app)
        }
    }
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    let dns = Arc::new(herald_testkit::LoopbackDns::start().await);
    settings.dns_server = Some(dns.addr());
    (opts.tweak)(&mut settings);
    let clock = opts.manual_clock.then(|| Arc::new(ManualClock::starting_now()));
    let deps = Deps {
        clock: clock.clone().map(|c| c as Arc<dyn Clock>).unwrap_or_else(|| Arc::new(herald_domain::SystemClock)),
        lookup: opts.lookup.map(|l| Arc::new(l) as Arc<dyn herald_delivery::Lookup>),
        wrap_store: opts.wrap_store,
        ..Deps::default()
    };
    let app = Application::build(settings, deps).await.expect("app builds");
    let addr = app.local_addr();
    let smtp_addr = app.smtp_addr();
    let store = app.store();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(cancel.clone()));
    TestApp {
        addr,
        smtp_addr,
        dns,
        http: reqwest::Client::new(),
        clock,
        cancel,
        store,
        _dir: dir,
        task: Some(task),
        _db: None,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(KEY, method, path, body).await
    }

    pub async fn call_as(&self, key: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// A second account, `name`; returns its API key.
    pub async fn other_account(&self, name: &str) -> herald_domain::ApiKey {
        let key = herald_domain::ApiKey::generate();
        self.store.create_account(name, &key.hash(), time::OffsetDateTime::now_utc()).await.unwrap();
        key
    }

    pub async fn create_webhook(&self, body: Value) -> Value {
        let (status, v) = self.call(reqwest::Method::POST, "/api/v1/webhooks", Some(body)).await;
        assert_eq!(status, 201, "{v}");
        v
    }

    /// A webhook for `email.received` at `url`; returns (id, secret).
    pub async fn webhook(&self, url: &str) -> (String, String) {
        let v = self.create_webhook(json!({"url": url, "events": ["email.received"]})).await;
        (v["id"].as_str().unwrap().into(), v["signing_secret"].as_str().unwrap().into())
    }

    pub async fn publish(&self, body: Value) -> Value {
        let (status, v) = self.call(reqwest::Method::POST, "/api/v1/events", Some(body)).await;
        assert_eq!(status, 202, "{v}");
        v
    }

    pub async fn publish_received(&self) -> Value {
        self.publish(json!({"type": "email.received", "data": {"n": 1}})).await
    }

    pub async fn deliveries(&self, webhook: &str) -> Vec<Value> {
        let (s, v) =
            self.call(reqwest::Method::GET, &format!("/api/v1/webhooks/{webhook}/deliveries?limit=100"), None).await;
        assert_eq!(s, 200, "{v}");
        v["items"].as_array().unwrap().clone()
    }

    pub async fn delivery(&self, id: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, &format!("/api/v1/deliveries/{id}"), None).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// Waits until the webhook's only delivery satisfies `pred`; returns it.
    pub async fn wait_delivery(&self, webhook: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        eventually(what, || async {
            let ds = self.deliveries(webhook).await;
            let d = ds.first()?.clone();
            if !pred(&d) {
                return None;
            }
            let id = d["id"].as_str().unwrap().to_owned();
            Some(self.delivery(&id).await)
        })
        .await
    }

    /// Moves the manual clock and wakes the engine, as a real tick would.
    pub fn advance(&self, by: Duration) {
        self.clock.as_ref().expect("manual clock").advance(by);
        self.store.work_signal().raise();
    }

    /// The app's database: its scratch PostgreSQL database, or its SQLite file.
    pub fn database_url(&self) -> String {
        match &self._db {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", self._dir.path().join("herald.db").display()),
        }
    }

    /// Keeps the scratch database (if any) past the app's end, for checks after a stop.
    pub fn take_db(&mut self) -> Option<herald_store_postgres::test_db::TestDb> {
        self._db.take()
    }

    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A `herald serve` process that has printed where it listens.
pub struct Served {
    pub child: tokio::process::Child,
    /// The API's base URL.
    pub base: String,
    /// The SMTP listener, when it has one.
    pub smtp: Option<SocketAddr>,
    /// The rest of its standard output.
    pub stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

/// Spawns `cmd` (a `herald serve`; its stdout is piped here, and it is killed when dropped)
/// and reads its output up to the `herald listening on` line, the last one it prints.
pub async fn spawn_served(mut cmd: tokio::process::Command) -> Served {
    use tokio::io::AsyncBufReadExt;
    let mut child = cmd.stdout(std::process::Stdio::piped()).kill_on_drop(true).spawn().expect("the binary starts");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut smtp = None;
    loop {
        let line = stdout.next_line().await.unwrap().expect("the binary prints its address");
        if let Some(a) = line.strip_prefix("herald smtp listening on ") {
            smtp = a.parse().ok();
        }
        if let Some(a) = line.strip_prefix("herald listening on ") {
            return Served { child, base: a.to_owned(), smtp, stdout };
        }
    }
}

//! Delivery control across replicas (PostgreSQL; FIFO also on one SQLite app): the order of
//! every FIFO lane holds with concurrent publishers on three replicas, a receiver that fails
//! at random and is killed once mid-run; the rate limit holds at the receiver; the adaptive
//! limit finds a receiver's capacity with three replicas sending.

use crate::support::*;
use axum::extract::State;
use axum::http::StatusCode;
use herald_store_postgres::test_db::TestDb;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn replicas(db: &TestDb, n: usize) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for _ in 0..n {
        let url = db.url.clone();
        let tweak = Box::new(move |s: &mut herald::Settings| {
            s.database_url = Some(url);
            s.pg_pool_size = 4;
        });
        apps.push(spawn_app_with(Options { tweak, ..Default::default() }).await);
    }
    apps
}

/// A receiver of `{key, seq}` events that fails about one request in four and can be killed.
#[derive(Default)]
struct Lanes {
    /// (key, seq, answered 200) in arrival order.
    log: Mutex<Vec<(String, u64, bool)>>,
    n: AtomicU64,
    dead: AtomicBool,
    hits_while_dead: AtomicU64,
}

async fn lane_receive(State(st): State<Arc<Lanes>>, body: axum::body::Bytes) -> StatusCode {
    // A few milliseconds of work: a kill finds requests in flight.
    tokio::time::sleep(Duration::from_millis(5)).await;
    if st.dead.load(Ordering::SeqCst) {
        st.hits_while_dead.fetch_add(1, Ordering::SeqCst);
        // A killed process: the connection drops without an answer.
        panic!("receiver killed");
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let (key, seq) = (v["data"]["key"].as_str().unwrap().to_owned(), v["data"]["seq"].as_u64().unwrap());
    let n = st.n.fetch_add(1, Ordering::SeqCst);
    let ok = (n.wrapping_mul(2_654_435_761) >> 7) % 4 != 0;
    st.log.lock().unwrap().push((key, seq, ok));
    if ok { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR }
}

async fn serve_lanes(st: Arc<Lanes>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route("/lanes", axum::routing::post(lane_receive)).with_state(st);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }))
}

/// 1,000 events over 20 keys, each key's published one after another (through the apps in
/// turn), all keys at once: every key's events arrive in publish order — a repeat of the one
/// in flight allowed, a reorder never — and each is accepted exactly once or more.
async fn lanes_keep_their_order(apps: &[TestApp]) {
    let st = Arc::new(Lanes::default());
    let (addr, server) = serve_lanes(st.clone()).await;
    let body = json!({"url": format!("http://{addr}/lanes"), "events": ["email.received"], "max_in_flight": 8,
        "ordering": "fifo", "retry_schedule": vec!["20ms"; 20]});
    apps[0].create_webhook(body).await;
    let (keys, per_key) = (20u64, 50u64);
    let mut publishers = Vec::new();
    for k in 0..keys {
        let targets: Vec<(String, reqwest::Client)> =
            apps.iter().map(|a| (a.url("/api/v1/events"), a.http.clone())).collect();
        publishers.push(tokio::spawn(async move {
            for seq in 0..per_key {
                let (url, http) = &targets[((k + seq) % targets.len() as u64) as usize];
                let key = format!("k{k}");
                let event = json!({"type": "email.received", "data": {"key": key, "seq": seq}, "ordering_key": key});
                let r = http.post(url).bearer_auth(KEY).json(&event).send().await.unwrap();
                assert_eq!(r.status(), 202);
            }
        }));
    }
    // Kill the receiver once mid-run: for a while every request (those in flight and new
    // ones) loses its connection without an answer; then it serves again.
    let accepted = |st: &Lanes| st.log.lock().unwrap().iter().filter(|e| e.2).count();
    eventually("300 accepted before the kill", || async { (accepted(&st) >= 300).then_some(()) }).await;
    st.dead.store(true, Ordering::SeqCst);
    eventually("20 requests met the killed receiver", || async {
        (st.hits_while_dead.load(Ordering::SeqCst) >= 20).then_some(())
    })
    .await;
    st.dead.store(false, Ordering::SeqCst);
    for p in publishers {
        p.await.unwrap();
    }
    eventually("every event accepted", || async {
        let log = st.log.lock().unwrap();
        let done: BTreeSet<(&str, u64)> = log.iter().filter(|e| e.2).map(|e| (e.0.as_str(), e.1)).collect();
        (done.len() as u64 == keys * per_key).then_some(())
    })
    .await;
    let log = st.log.lock().unwrap().clone();
    let mut by_key: HashMap<&str, Vec<(u64, bool)>> = HashMap::new();
    for (key, seq, ok) in &log {
        by_key.entry(key.as_str()).or_default().push((*seq, *ok));
    }
    for (key, arrivals) in &by_key {
        for pair in arrivals.windows(2) {
            let ((a, a_ok), (b, _)) = (pair[0], pair[1]);
            assert!(b == a || (b == a + 1 && a_ok), "{key}: {b} arrived after {a} (accepted: {a_ok})");
        }
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_lanes_keep_their_order_on_one_sqlite_app() {
    let app = spawn_app().await;
    lanes_keep_their_order(std::slice::from_ref(&app)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_lanes_keep_their_order_across_three_replicas() {
    let Some(db) = TestDb::create("fifo_replicas").await else { return };
    let apps = replicas(&db, 3).await;
    lanes_keep_their_order(&apps).await;
    for a in apps {
        a.stop().await;
    }
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_across_three_replicas() {
    let Some(db) = TestDb::create("rate_replicas").await else { return };
    let apps = replicas(&db, 3).await;
    let rx = Receiver::start().await;
    let body = json!({"url": rx.url("rate"), "events": ["email.received"], "max_in_flight": 32,
        "rate_limit_per_second": 10});
    apps[0].create_webhook(body).await;
    for i in 0..150 {
        apps[i % 3].publish(json!({"type": "email.received", "data": {"i": i}})).await;
    }
    // Arrival instants, as the receiver saw them.
    let got = rx.wait_for("rate", 150).await;
    let start = got[0].at;
    let at: Vec<Duration> = got.iter().map(|r| r.at - start).collect();
    // In any 10 s window, within one request a second of 10/s: the bucket allows 101 starts
    // (the burst of one), and arrivals may bunch a little after their starts.
    for (i, t) in at.iter().enumerate() {
        let within = at[i..].iter().take_while(|u| **u < *t + Duration::from_secs(10)).count();
        assert!(within <= 110, "{within} requests within 10 s from {t:?}");
    }
    assert!(*at.last().unwrap() >= Duration::from_millis(14_500), "150 at 10/s took {:?}", at.last());
    for a in apps {
        a.stop().await;
    }
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adaptive_limit_holds_across_three_replicas() {
    let Some(db) = TestDb::create("adaptive_replicas").await else { return };
    let apps = replicas(&db, 3).await;
    crate::delivery_control::adaptive_limit_against_a_receiver_of_capacity_4(&apps).await;
    for a in apps {
        a.stop().await;
    }
    db.drop_now().await;
}

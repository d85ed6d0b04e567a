//! Delivery control end to end, as a user drives it through the API: the adaptive limit
//! against a receiver of fixed capacity, the rate limit at the receiver, FIFO lanes with
//! `block` and `skip`, and a webhook's own retry schedule and `max_age` on a manual clock.

use crate::on_both_stores;
use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_stores!(
    the_adaptive_limit_finds_a_receivers_capacity_and_follows_it_up,
    the_rate_limit_holds_at_the_receiver,
    a_blocked_lane_waits_for_a_skip_and_a_skipping_lane_moves_on,
    a_webhooks_own_schedule_and_max_age_drive_its_retries,
);

/// Publishes `n` events of `kind` from 8 tasks at once, spread over `apps` (replicas).
pub async fn publish_many(apps: &[TestApp], n: usize, kind: &str) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let app = &apps[t % apps.len()];
        let (url, http) = (app.url("/api/v1/events"), app.http.clone());
        let kind = kind.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in (t..n).step_by(8) {
                let r = http
                    .post(&url)
                    .bearer_auth(KEY)
                    .json(&json!({"type": "email.received", "data": {"kind": kind, "i": i}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn get_webhook(app: &TestApp, id: &str) -> Value {
    let (s, v) = app.call(Method::GET, &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn the_adaptive_limit_finds_a_receivers_capacity_and_follows_it_up(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    adaptive_limit_against_a_receiver_of_capacity_4(std::slice::from_ref(&app)).await;
}

/// Against a receiver that serves 4 at once (503 beyond), through `apps` (one, or replicas
/// of one database): the limit comes down, holds, and follows the capacity up.
pub async fn adaptive_limit_against_a_receiver_of_capacity_4(apps: &[TestApp]) {
    let app = &apps[0];
    let rx = Receiver::start().await;
    rx.capacity("cap", 4);
    rx.always("cap", Reply::status(200).delayed(Duration::from_millis(20)));
    let body = json!({"url": rx.url("cap"), "events": ["email.received"], "max_in_flight": 32,
        "retry_schedule": vec!["200ms"; 20]});
    let w = app.create_webhook(body).await;
    assert_eq!((w["concurrency"].as_str(), w["effective_max_in_flight"].as_u64()), (Some("adaptive"), Some(32)));
    let id = w["id"].as_str().unwrap();
    // 1. It starts at 32 against a capacity of 4: 503s until the limit comes down.
    publish_many(apps, 400, "first").await;
    rx.wait_for("cap", 400).await;
    let converging = rx.rejected("cap");
    assert!(converging > 0, "a limit of 32 must have met the capacity of 4");
    assert!(converging <= 200, "{converging} 503s before the limit came down");
    let limit = get_webhook(app, id).await["effective_max_in_flight"].as_u64().unwrap();
    assert!((1..=5).contains(&limit), "effective limit {limit}");
    // 2. Converged: the next 150 go through without a 503 — but for at most one probe of the
    //    level above (a couple of 503s; the first comes after 200 successes at the held level,
    //    which a loaded machine may not have reached in step 1).
    publish_many(apps, 150, "second").await;
    rx.wait_for("cap", 550).await;
    let after = rx.rejected("cap") - converging;
    assert!(after <= 3, "{after} 503s once converged");
    // 3. Capacity triples: the limit follows it up (after a probe, within a few hundred).
    rx.capacity("cap", 12);
    rx.reset_max_in_flight("cap");
    publish_many(apps, 900, "third").await;
    rx.wait_for("cap", 1450).await;
    // The receiver saw more than 4 at once. (Where the limit stands at the end varies: growth
    // past 12 meets a 503 and halves it, and it climbs back from there.)
    let now = get_webhook(app, id).await["effective_max_in_flight"].as_u64().unwrap();
    assert!(rx.max_in_flight("cap") > 4, "{} at once (limit now {now})", rx.max_in_flight("cap"));
}

async fn the_rate_limit_holds_at_the_receiver(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let rx = Receiver::start().await;
    let body = json!({"url": rx.url("rate"), "events": ["email.received"], "max_in_flight": 16,
        "rate_limit_per_second": 10});
    let w = app.create_webhook(body).await;
    assert_eq!(w["rate_limit_per_second"], 10);
    let started = Instant::now();
    publish_many(std::slice::from_ref(&app), 60, "rate").await;
    let got = rx.wait_for("rate", 60).await;
    let elapsed = started.elapsed();
    // 60 at 10/s with a burst of one: at least 5.9 s, and not much more.
    assert!(elapsed >= Duration::from_millis(5_800), "60 requests in {elapsed:?}");
    assert!(got.len() == 60, "no attempt beyond the events: {}", got.len());
    // At the receiver: in any 5 s, at most 10/s × 5 s plus one a second.
    for (i, r) in got.iter().enumerate() {
        let within = got[i..].iter().take_while(|u| u.at < r.at + Duration::from_secs(5)).count();
        assert!(within <= 55, "{within} requests within 5 s");
    }
    // Once the outcomes are recorded: one attempt each (waiting for a token is not an attempt).
    let ds = eventually("the outcomes recorded", || async {
        let ds = app.deliveries(w["id"].as_str().unwrap()).await;
        ds.iter().all(|d| d["status"] == "delivered").then_some(ds)
    })
    .await;
    assert!(ds.iter().all(|d| d["attempts"] == 1), "waiting for a token is not an attempt");
}

/// FIFO webhooks on a receiver that fails event 0 of lane `k` for good (two attempts).
async fn a_blocked_lane_waits_for_a_skip_and_a_skipping_lane_moves_on(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let rx = Receiver::start().await;
    let mut wh = String::new();
    for path in ["block", "skip"] {
        rx.script(path, vec![Reply::status(500), Reply::status(500)]);
        let body = json!({"url": rx.url(path), "events": ["email.received"], "max_in_flight": 4,
            "ordering": "fifo", "on_final_failure": path, "retry_schedule": ["10ms"]});
        let w = app.create_webhook(body).await;
        assert_eq!((w["ordering"].as_str(), w["on_final_failure"].as_str()), (Some("fifo"), Some(path)));
        if path == "block" {
            wh = w["id"].as_str().unwrap().to_owned();
        }
    }
    for i in 0..3 {
        app.publish(json!({"type": "email.received", "data": {"i": i}, "ordering_key": "k"})).await;
    }
    // `skip`: event 0 fails twice, then 1 and 2 follow in order.
    let got = rx.wait_for("skip", 4).await;
    let order: Vec<i64> = got.iter().map(|r| r.json()["data"]["i"].as_i64().unwrap()).collect();
    assert_eq!(order, [0, 0, 1, 2]);
    // `block`: event 0 fails twice and holds the lane.
    rx.wait_for("block", 2).await;
    let blocked = eventually("the head blocked", || async {
        app.deliveries(&wh).await.into_iter().find(|d| d["status"] == "blocked")
    })
    .await;
    let pending = app.deliveries(&wh).await.into_iter().filter(|d| d["status"] == "pending").count();
    assert_eq!(pending, 2, "the rest of the lane waits");
    // Another lane still goes: once its event has arrived, lane k has had every chance to move.
    app.publish(json!({"type": "email.received", "data": {"i": 100}, "ordering_key": "other"})).await;
    eventually("the other lane's event", || async {
        rx.received("block").iter().any(|r| r.json()["data"]["i"] == 100).then_some(())
    })
    .await;
    let order = |path: &str| -> Vec<i64> {
        rx.received(path).iter().map(|r| r.json()["data"]["i"].as_i64().unwrap()).filter(|i| *i < 100).collect()
    };
    assert_eq!(order("block"), [0, 0], "nothing after the blocked head was sent");
    // A skip ends it failed and lets the lane go on, in order.
    let id = blocked["id"].as_str().unwrap();
    let (s, v) = app.call(Method::POST, &format!("/api/v1/deliveries/{id}/skip"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["status"].as_str(), v["last_error"].as_str()), (Some("failed"), Some("skipped")));
    eventually("the rest of lane k", || async { (order("block").len() == 4).then_some(()) }).await;
    assert_eq!(order("block"), [0, 0, 1, 2]);
    // A skipped (failed) delivery cannot be skipped again.
    let (s, v) = app.call(Method::POST, &format!("/api/v1/deliveries/{id}/skip"), None).await;
    assert_eq!(s, 409, "{v}");
}

async fn a_webhooks_own_schedule_and_max_age_drive_its_retries(backend: Backend) {
    let Some(app) = spawn_on(backend, Options { manual_clock: true, ..Default::default() }).await else { return };
    let rx = Receiver::start().await;
    rx.always("own", Reply::status(500));
    rx.always("aged", Reply::status(500));
    let own = app
        .create_webhook(json!({"url": rx.url("own"), "events": ["email.received"], "retry_schedule": ["10m", "1h"]}))
        .await;
    assert_eq!(own["retry_schedule"], json!(["10m", "1h"]));
    assert_eq!(own["custom_retry_schedule"], true);
    let aged = app.create_webhook(json!({"url": rx.url("aged"), "events": ["email.received"], "max_age": "30m"})).await;
    assert_eq!(aged["max_age"], "30m");
    assert_eq!(aged["custom_retry_schedule"], false, "{aged}");
    app.publish_received().await;
    let own = own["id"].as_str().unwrap();
    let d = app.wait_delivery(own, "first failure", |d| d["attempts"] == 1).await;
    assert_eq!((d["status"].as_str(), d["max_attempts"].as_u64()), (Some("pending"), Some(3)));
    // `max_age` 30m with the server's schedule (1 min, 5 min, …).
    let aged = aged["id"].as_str().unwrap();
    app.wait_delivery(aged, "first failure", |d| d["attempts"] == 1).await;
    app.advance(Duration::from_secs(600));
    app.wait_delivery(own, "second failure, 10 min later", |d| d["attempts"] == 2).await;
    app.wait_delivery(aged, "second failure", |d| d["attempts"] == 2).await;
    app.advance(Duration::from_secs(3600));
    let d = app.wait_delivery(own, "third and last failure, 1 h later", |d| d["status"] == "failed").await;
    assert_eq!(d["attempts"], 3);
    // The aged delivery's third attempt fell due at +15 min but is claimed at +70 min, past
    // its 30 min max_age: it ends failed without being sent.
    let d = app.wait_delivery(aged, "failed past its max_age", |d| d["status"] == "failed").await;
    assert!(d["last_error"].as_str().unwrap().contains("max_age"), "{d}");
    assert_eq!(rx.received("aged").len(), 2);
    assert_eq!(rx.received("own").len(), 3);
}

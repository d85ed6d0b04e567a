//! The consumer portal in a real headless Chromium (Debian's `chromium` + `chromedriver`):
//! open a link, create a webhook, see its secret once, send a test and read the answer,
//! watch a failure, retry it, rotate, read the chart, set delivery controls, and prove
//! isolation and CSRF. Also takes the README's screenshots (into `HERALD_SCREENSHOTS_DIR`
//! when set).

use crate::support::*;
use fantoccini::{Client, Locator};
use herald_testkit::browser::Browser;
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

fn shots_dir(fallback: &std::path::Path) -> PathBuf {
    std::env::var_os("HERALD_SCREENSHOTS_DIR").map(PathBuf::from).unwrap_or_else(|| fallback.join("shots"))
}

/// The element, once the page shows it (a click that navigates returns before the next
/// page is there).
async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait().at_most(DEADLINE).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"))
}

async fn text(c: &Client, css: &str) -> String {
    find(c, css).await.text().await.unwrap()
}

async fn click(c: &Client, css: &str) {
    find(c, css).await.click().await.unwrap();
}

async fn value(c: &Client, css: &str) -> String {
    find(c, css).await.prop("value").await.unwrap().unwrap_or_default()
}

/// Waits (without reloading) until `css` contains `want`: the page after a click.
async fn wait_text(c: &Client, css: &str, want: &str) {
    eventually(&format!("{css} contains {want}"), || async {
        let t = c.find(Locator::Css(css)).await.ok()?.text().await.ok()?;
        t.contains(want).then_some(())
    })
    .await
}

/// Reloads the page until `css` reads `want` (the engine works in the background).
async fn until_text(c: &Client, css: &str, want: &str) {
    eventually(&format!("{css} reads {want}"), || async {
        c.refresh().await.unwrap();
        let t = c.find(Locator::Css(css)).await.ok()?.text().await.ok()?;
        (t.trim() == want).then_some(())
    })
    .await
}

/// The attempts chart's bars: (delivered, failed) per bucket, as drawn.
async fn chart_bars(c: &Client) -> Vec<Value> {
    let bars = js(
        c,
        "return Array.from(document.querySelectorAll('#attempts-chart g.bucket')).map(g => \
         [Number(g.dataset.delivered), Number(g.dataset.failed)]);",
    )
    .await;
    bars.as_array().unwrap().clone()
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap_or_else(|e| panic!("{script}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_owner_manages_their_webhooks_in_the_browser() {
    let rx = Receiver::start().await;
    rx.always("hook", Reply::status(200).body("ok from the receiver"));
    let app = spawn_app_with(Options {
        // One retry 300 ms after a failure, then `failed`: the failure is seen quickly.
        tweak: Box::new(|s| s.retry_schedule = vec![Duration::from_millis(300)]),
        ..Options::default()
    })
    .await;
    let Some(browser) = Browser::start_for_test("a_receiver_owner_manages_their_webhooks_in_the_browser").await else {
        return;
    };
    let shots = shots_dir(browser.dir());
    let c = &browser.client;

    // The link is opened from another site (here a data: page): the SameSite=Strict cookie
    // is not sent on that redirect, and the portal's own extra step gets the user in.
    let (_, v) = app.call(Method::POST, "/api/v1/portal-sessions", Some(json!({}))).await;
    let link = v["url"].as_str().unwrap().to_owned();
    c.goto(&format!("data:text/html,%3Ca%20id%3Dgo%20href%3D%22{link}%22%3Eopen%20the%20portal%3C/a%3E"))
        .await
        .unwrap();
    click(c, "#go").await;
    find(c, "a[href='/portal/webhooks/new']").await;
    let at = c.current_url().await.unwrap();
    assert_eq!(at.path(), "/portal/");
    assert!(!at.as_str().contains("token"), "the token leaves the address bar: {at}");
    assert!(text(c, "main").await.contains("No webhooks yet"));

    // Create: URL, two event types; the secret is shown once.
    click(c, "a[href='/portal/webhooks/new']").await;
    c.find(Locator::Css("#url")).await.unwrap().send_keys(&rx.url("hook")).await.unwrap();
    c.find(Locator::Css("#description")).await.unwrap().send_keys("Orders service").await.unwrap();
    click(c, "input[name=events][value='email.received']").await;
    click(c, "input[name=events][value='webhook.test']").await;
    click(c, "form.stack button[type=submit]").await;
    let first_secret = value(c, "#secret").await;
    assert!(first_secret.starts_with("whsec_"), "{first_secret}");
    browser.screenshot_to(&shots.join("secret-once.png")).await.unwrap();
    click(c, "a.button[href^='/portal/webhooks/']").await;
    find(c, "#send-test").await;
    let wh = c.current_url().await.unwrap().path().rsplit('/').next().unwrap().to_owned();
    assert!(!c.source().await.unwrap().contains(&first_secret), "shown once only");

    // A test send shows the endpoint's answer inline.
    click(c, "#send-test").await;
    assert_eq!(text(c, "#test-status").await, "200");
    assert!(text(c, "#test-body").await.contains("ok from the receiver"));
    assert!(text(c, "#test-duration").await.ends_with("ms"));
    browser.screenshot_to(&shots.join("test-send.png")).await.unwrap();

    // The receiver fails: both attempts of an event answer 503 and the delivery fails.
    rx.script(
        "hook",
        vec![Reply::status(503).body("down for maintenance"), Reply::status(503).body("down for maintenance")],
    );
    let published = app.publish_received().await;
    let event_id = published["id"].as_str().unwrap().to_owned();
    let failed =
        app.wait_delivery(&wh, "failed", |d| d["event_id"] == event_id.as_str() && d["status"] == "failed").await;
    let delivery = failed["id"].as_str().unwrap().to_owned();
    c.goto(&app.url(&format!("/portal/webhooks/{wh}?status=failed"))).await.unwrap();
    let rows = c.find_all(Locator::Css("#deliveries tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1, "one failed delivery");
    click(c, &format!("a[href='/portal/deliveries/{delivery}']")).await;
    assert_eq!(text(c, "#delivery-status").await, "failed");
    let attempts = c.find_all(Locator::Css("#attempts li")).await.unwrap();
    assert_eq!(attempts.len(), 2);
    let first = text(c, "#attempts li[data-attempt='1']").await;
    assert!(first.contains("503") && first.contains("down for maintenance"), "{first}");
    browser.screenshot_to(&shots.join("failed-delivery.png")).await.unwrap();

    // The receiver has recovered (its script is spent): retry, and it is delivered.
    click(c, "#retry").await;
    wait_text(c, "main", "Retry queued").await;
    until_text(c, "#delivery-status", "delivered").await;
    assert_eq!(c.find_all(Locator::Css("#attempts li")).await.unwrap().len(), 3);

    // Rotate: a new secret, shown once, different from the first.
    c.goto(&app.url(&format!("/portal/webhooks/{wh}"))).await.unwrap();
    click(c, "#rotate").await;
    let second_secret = value(c, "#secret").await;
    assert!(second_secret.starts_with("whsec_") && second_secret != first_secret);
    assert!(text(c, "main").await.contains("previous secret keeps signing"));

    // The chart counts what the stats API counts: 2 delivered (test, retry), 2 failed.
    c.goto(&app.url(&format!("/portal/webhooks/{wh}"))).await.unwrap();
    let bars = chart_bars(c).await;
    assert_eq!(bars.len(), 24, "24 hourly bars");
    let sum = |i: usize| bars.iter().map(|b| b[i].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum(0), sum(1)), (2, 2));
    let (_, stats) = app.call(Method::GET, &format!("/api/v1/webhooks/{wh}/stats"), None).await;
    assert_eq!((stats["totals"]["delivered"].as_u64(), stats["totals"]["failed"].as_u64()), (Some(2), Some(2)));
    let drawn =
        js(c, "return document.querySelectorAll('#attempts-chart rect.bad[height]:not([height=\"0.0\"])').length;")
            .await;
    assert!(drawn.as_u64().unwrap() >= 1, "a visible failed bar");
    // Times are shown in the viewer's zone, with the UTC value on hover.
    let time = js(c, "const t = document.querySelector('main time'); return [t.textContent, t.title];").await;
    assert!(time[1].as_str().unwrap().ends_with("UTC"), "UTC on hover: {time}");
    assert!(
        time[0].as_str().unwrap().contains("GMT+5:30"),
        "shown in the browser's zone ({}): {time}",
        herald_testkit::browser::VIEWER_TIME_ZONE
    );
    c.goto(&app.url("/portal/")).await.unwrap();
    assert!(text(c, "#webhooks").await.contains("Orders service"));
    c.goto(&app.url(&format!("/portal/events/{event_id}"))).await.unwrap();
    assert!(text(c, "#payload").await.contains(&event_id));
    assert!(text(c, "#event-deliveries").await.contains(&delivery));
    browser.screenshot_to(&shots.join("event.png")).await.unwrap();

    // Keyboard: the first Tab reaches the skip link.
    c.goto(&app.url(&format!("/portal/webhooks/{wh}"))).await.unwrap();
    c.find(Locator::Css("body")).await.unwrap().send_keys("\u{E004}").await.unwrap();
    let focused = js(c, "return document.activeElement.className;").await;
    assert_eq!(focused, "skip");

    // 360 px wide: nothing wider than the screen (tables scroll inside their box).
    browser.set_window(360, 800).await.unwrap();
    c.goto(&app.url(&format!("/portal/webhooks/{wh}"))).await.unwrap();
    let widths = js(c, "return [document.documentElement.scrollWidth, window.innerWidth];").await;
    assert!(widths[0].as_u64() <= widths[1].as_u64(), "no sideways scrolling at 360 px: {widths}");
    browser.screenshot_to(&shots.join("narrow.png")).await.unwrap();
    browser.set_window(1280, 900).await.unwrap();

    // Delivery control through the edit form: a fixed limit of 3, a rate limit, FIFO order.
    let edit = app.url(&format!("/portal/webhooks/{wh}/edit"));
    c.goto(&edit).await.unwrap();
    assert_eq!(value(c, "#concurrency").await, "adaptive", "a new webhook's limit adapts");
    assert_eq!(value(c, "#rate_limit_per_second").await, "", "and has no rate limit");
    find(c, "#max_in_flight").await.clear().await.unwrap();
    find(c, "#max_in_flight").await.send_keys("3").await.unwrap();
    find(c, "#concurrency").await.select_by_value("fixed").await.unwrap();
    find(c, "#rate_limit_per_second").await.send_keys("25").await.unwrap();
    find(c, "#ordering").await.select_by_value("fifo").await.unwrap();
    find(c, "#on_final_failure").await.select_by_value("skip").await.unwrap();
    find(c, "#retry_schedule").await.send_keys("30s, 5m").await.unwrap();
    click(c, "form.stack button[type=submit]").await;
    wait_text(c, "main", "Saved.").await;
    assert_eq!(text(c, "#concurrency").await, "fixed");
    assert_eq!(text(c, "#effective-in-flight").await, "3", "fixed: the limit is the maximum");
    assert_eq!(text(c, "#rate-limit").await, "25 per second");
    let ordering = text(c, "#ordering").await;
    assert!(ordering.starts_with("fifo") && ordering.contains("skip"), "{ordering}");
    assert_eq!(text(c, "#retry-schedule").await, "30s, 5m");
    let (_, w) = app.call(Method::GET, &format!("/api/v1/webhooks/{wh}"), None).await;
    assert_eq!(
        (w["concurrency"].as_str(), w["rate_limit_per_second"].as_u64(), w["ordering"].as_str()),
        (Some("fixed"), Some(25), Some("fifo")),
        "{w}"
    );
    // The form shows the settings again; emptied fields remove them.
    c.goto(&edit).await.unwrap();
    assert_eq!(value(c, "#concurrency").await, "fixed");
    assert_eq!(value(c, "#ordering").await, "fifo");
    assert_eq!(value(c, "#rate_limit_per_second").await, "25");
    find(c, "#rate_limit_per_second").await.clear().await.unwrap();
    find(c, "#retry_schedule").await.clear().await.unwrap();
    find(c, "#ordering").await.select_by_value("none").await.unwrap();
    click(c, "form.stack button[type=submit]").await;
    wait_text(c, "main", "Saved.").await;
    assert_eq!(text(c, "#rate-limit").await, "none");
    assert!(text(c, "#retry-schedule").await.contains("the server's"));
    let (_, w) = app.call(Method::GET, &format!("/api/v1/webhooks/{wh}"), None).await;
    assert!(w.get("rate_limit_per_second").is_none() && w["custom_retry_schedule"] == false, "{w}");
    assert_eq!((w["concurrency"].as_str(), w["ordering"].as_str()), (Some("fixed"), Some("none")), "{w}");

    // A form without the CSRF token changes nothing.
    c.goto(&app.url(&format!("/portal/webhooks/{wh}"))).await.unwrap();
    js(c, "document.querySelector('form[action$=\"/enabled\"] input[name=csrf]').remove(); return null;").await;
    click(c, "#disable").await;
    wait_text(c, "h1", "Form expired").await;
    let (_, w) = app.call(Method::GET, &format!("/api/v1/webhooks/{wh}"), None).await;
    assert_eq!(w["enabled"], true);

    // Another account's objects are out of reach; a used link opens nothing.
    let other = app.other_account("other").await;
    let (_, theirs) = app
        .call_as(
            other.expose(),
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/b", "events": ["email.received"]})),
        )
        .await;
    c.goto(&app.url(&format!("/portal/webhooks/{}", theirs["id"].as_str().unwrap()))).await.unwrap();
    assert!(text(c, "main").await.contains("No such webhook"));
    c.goto(&link).await.unwrap();
    assert!(text(c, "h1").await.contains("Link expired"));

    browser.close().await.unwrap();
    app.stop().await;
}

/// A day of traffic on a manual clock, read through the portal: the chart has a bar for
/// every hour and counts what the stats API counts. (Also the README's screenshots of the
/// list and of a webhook's page.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_traffic_is_charted_hour_by_hour() {
    let rx = Receiver::start().await;
    rx.always("orders", Reply::status(200).body("ok"));
    rx.always("billing", Reply::status(200).body("ok"));
    let app = spawn_app_with(Options { manual_clock: true, ..Options::default() }).await;
    let (orders, _) = app.webhook(&rx.url("orders")).await;
    let (billing, _) = app.webhook(&rx.url("billing")).await;
    app.call(Method::PATCH, &format!("/api/v1/webhooks/{billing}"), Some(json!({"description": "Billing (paused)"})))
        .await;
    app.call(Method::PATCH, &format!("/api/v1/webhooks/{orders}"), Some(json!({"description": "Orders service"})))
        .await;
    app.create_webhook(json!({"url": rx.url("crm"), "events": ["email.sent"], "description": "CRM sync"})).await;

    let mut sent = 0;
    for hour in 0..24u64 {
        // Some hours the receiver stumbles: a 500 answer, retried a minute later.
        let failures = usize::from(hour % 7 == 3) + usize::from(hour == 20) * 2;
        rx.script("orders", vec![Reply::status(500).body("upstream timeout"); failures]);
        let n = 2 + (hour * 5 % 7) as usize;
        for _ in 0..n {
            app.publish_received().await;
        }
        sent += n;
        // Every first attempt so far, and the retries of earlier hours' failures, received
        // AND recorded (moving the clock past an unrecorded attempt's lease would send it
        // again and drop its outcome).
        let attempts = (sent + failures_before(hour)) as u64;
        rx.wait_for("orders", attempts as usize).await;
        eventually("every attempt recorded", || async {
            let (_, v) = app.call(Method::GET, &format!("/api/v1/webhooks/{orders}/stats?window=2d"), None).await;
            let recorded = v["totals"]["delivered"].as_u64()? + v["totals"]["failed"].as_u64()?;
            (recorded == attempts).then_some(())
        })
        .await;
        app.advance(Duration::from_secs(3600));
    }
    app.call(Method::PATCH, &format!("/api/v1/webhooks/{billing}"), Some(json!({"enabled": false}))).await;

    let Some(browser) = Browser::start_for_test("a_day_of_traffic_is_charted_hour_by_hour").await else { return };
    let shots = shots_dir(browser.dir());
    let c = &browser.client;
    let (_, v) = app.call(Method::POST, "/api/v1/portal-sessions", Some(json!({}))).await;
    c.goto(v["url"].as_str().unwrap()).await.unwrap();
    let list = text(c, "#webhooks").await;
    assert!(list.contains("disabled (manual)") && list.contains("Orders service"), "{list}");
    browser.screenshot_to(&shots.join("webhooks.png")).await.unwrap();

    c.goto(&app.url(&format!("/portal/webhooks/{orders}"))).await.unwrap();
    let bars = chart_bars(c).await;
    let busy = bars.iter().filter(|b| b[0].as_u64().unwrap() + b[1].as_u64().unwrap() > 0).count();
    assert!(busy >= 22, "traffic in (nearly) every hour of the window: {busy}");
    let sum = |i: usize| bars.iter().map(|b| b[i].as_u64().unwrap()).sum::<u64>();
    let (_, stats) = app.call(Method::GET, &format!("/api/v1/webhooks/{orders}/stats"), None).await;
    assert_eq!(
        (Some(sum(0)), Some(sum(1))),
        (stats["totals"]["delivered"].as_u64(), stats["totals"]["failed"].as_u64())
    );
    assert_eq!(sum(1), failures_before(24) as u64, "every failed attempt is drawn");
    browser.screenshot_to(&shots.join("webhook.png")).await.unwrap();
    browser.close().await.unwrap();
    app.stop().await;
}

/// Failed attempts made before `hour`: each was retried (one more request) an hour later.
fn failures_before(hour: u64) -> usize {
    (0..hour).map(|h| usize::from(h % 7 == 3) + usize::from(h == 20) * 2).sum()
}

/// The signature scheme is chosen in the form: an Ed25519 webhook shows no secret, links the
/// public keys that sign it and offers no secret rotation; switching it back to HMAC shows the
/// fresh secret once, and that secret signs the next delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signature_scheme_is_chosen_in_the_form() {
    let rx = Receiver::start().await;
    rx.always("signed", Reply::status(200).body("ok"));
    let app = spawn_app().await;
    let Some(browser) = Browser::start_for_test("the_signature_scheme_is_chosen_in_the_form").await else { return };
    let c = &browser.client;
    let (_, v) = app.call(Method::POST, "/api/v1/portal-sessions", Some(json!({}))).await;
    c.goto(v["url"].as_str().unwrap()).await.unwrap();

    // Create with Ed25519: no secret page, the webhook's page instead.
    click(c, "a[href='/portal/webhooks/new']").await;
    assert_eq!(value(c, "#signature").await, "hmac", "HMAC unless chosen");
    find(c, "#url").await.send_keys(&rx.url("signed")).await.unwrap();
    click(c, "input[name=events][value='email.received']").await;
    find(c, "#signature").await.select_by_value("ed25519").await.unwrap();
    click(c, "form.stack button[type=submit]").await;
    wait_text(c, "p.notice", "Created.").await;
    assert!(text(c, "#signature").await.starts_with("Ed25519"));
    assert!(c.find(Locator::Css("#secret")).await.is_err(), "no secret to show");
    assert!(c.find(Locator::Css("#rotate")).await.is_err(), "no secret to rotate");
    let wh = c.current_url().await.unwrap().path().rsplit('/').next().unwrap().to_owned();
    let (_, w) = app.call(Method::GET, &format!("/api/v1/webhooks/{wh}"), None).await;
    assert_eq!(w["signature"], "ed25519", "{w}");
    // The page links the key set that signs the deliveries.
    let keys = find(c, "#signature a").await.attr("href").await.unwrap().expect("a link to the public keys");
    let jwks: Value = reqwest::get(app.url(&keys)).await.unwrap().json().await.unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().expect("a published key").to_owned();
    app.publish_received().await;
    let got = rx.wait_for("signed", 1).await;
    assert!(got[0].header("webhook-signature").starts_with("v1a,"));
    assert_eq!(got[0].header("webhook-key-id"), kid);

    // Edit: the form shows Ed25519; switching to HMAC shows the fresh secret once.
    let edit = app.url(&format!("/portal/webhooks/{wh}/edit"));
    c.goto(&edit).await.unwrap();
    assert_eq!(value(c, "#signature").await, "ed25519");
    find(c, "#signature").await.select_by_value("hmac").await.unwrap();
    click(c, "form.stack button[type=submit]").await;
    wait_text(c, "h1", "Signing switched to HMAC").await;
    let secret = value(c, "#secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    app.publish_received().await;
    let got = rx.wait_for("signed", 2).await;
    let secret = herald_domain::SigningSecret::from_stored(secret);
    assert!(herald_domain::signing::verify_e2a(got[1].header("x-e2a-signature"), &got[1].body, &secret));

    // Saving again without changing the scheme shows no secret.
    c.goto(&edit).await.unwrap();
    assert_eq!(value(c, "#signature").await, "hmac");
    click(c, "form.stack button[type=submit]").await;
    wait_text(c, "main", "Saved.").await;
    assert!(text(c, "#signature").await.starts_with("HMAC"));
    assert!(c.find(Locator::Css("#rotate")).await.is_ok(), "an HMAC secret can be rotated");

    // A form opened before someone else switched the scheme saves its other fields and keeps
    // the scheme switched to (it does not switch it back).
    c.goto(&edit).await.unwrap();
    assert_eq!(value(c, "#signature").await, "hmac");
    let (s, v) =
        app.call(Method::PATCH, &format!("/api/v1/webhooks/{wh}"), Some(json!({"signature": "ed25519"}))).await;
    assert_eq!(s, 200, "{v}");
    find(c, "#description").await.send_keys("edited in a stale form").await.unwrap();
    click(c, "form.stack button[type=submit]").await;
    wait_text(c, "p.notice", "Saved.").await;
    let (_, w) = app.call(Method::GET, &format!("/api/v1/webhooks/{wh}"), None).await;
    assert_eq!((w["signature"].as_str(), w["description"].as_str()), (Some("ed25519"), Some("edited in a stale form")));

    browser.close().await.unwrap();
    app.stop().await;
}

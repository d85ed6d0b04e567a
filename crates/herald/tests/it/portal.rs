//! The consumer portal over plain HTTP (the browser tests are in `portal_browser`): links,
//! cookies, security headers, CSRF, read-only sessions, tenancy, and the stats API.

use crate::support::*;
use reqwest::Method;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE, X_FRAME_OPTIONS};
use serde_json::{Value, json};
use std::time::Duration;

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn link_as(app: &TestApp, key: &str, body: Value) -> String {
    let (s, v) = app.call_as(key, Method::POST, "/api/v1/portal-sessions", Some(body)).await;
    assert_eq!(s, 201, "{v}");
    v["url"].as_str().unwrap().to_owned()
}

/// Opens a link; returns the cookie pair (`herald_portal=…`).
async fn open(link: &str) -> String {
    let res = no_redirects().get(link).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let set = res.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    set.split(';').next().unwrap().to_owned()
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> (u16, String) {
    let res = no_redirects().get(app.url(path)).header("cookie", cookie).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn post_form(app: &TestApp, cookie: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let res = no_redirects()
        .post(app.url(path))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The CSRF token a page's forms carry.
fn csrf_of(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let at = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

async fn links_open_once_into_a_cookie_session_with_strict_headers(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    for bad in [json!({"expires_in_seconds": 0}), json!({"expires_in_seconds": 86_401}), json!({"nope": 1})] {
        let (s, v) = app.call(Method::POST, "/api/v1/portal-sessions", Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, _) = app.call_as("hk_nope", Method::POST, "/api/v1/portal-sessions", None).await;
    assert_eq!(s, 401);
    let (s, v) = app.call(Method::POST, "/api/v1/portal-sessions", None).await;
    assert_eq!(s, 201);
    let link = v["url"].as_str().unwrap();
    assert!(link.starts_with(&format!("http://{}/portal/login?token=hpl_", app.addr)), "{link}");
    let expires =
        time::OffsetDateTime::parse(v["expires_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    let ttl = expires - time::OffsetDateTime::now_utc();
    assert!(ttl > time::Duration::minutes(59) && ttl <= time::Duration::hours(1), "default 1 h: {ttl}");

    let res = no_redirects().get(link).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()[LOCATION].to_str().unwrap();
    assert!(location.starts_with("/portal/") && !location.contains("token"), "{location}");
    let set = res.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/portal", "Max-Age="] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains("Secure"), "plain http: not Secure ({set})");
    let cookie = set.split(';').next().unwrap().to_owned();

    let replay = no_redirects().get(link).send().await.unwrap();
    assert_eq!(replay.status(), 403, "a link opens once");
    assert!(replay.headers().get(SET_COOKIE).is_none());
    assert!(replay.text().await.unwrap().contains("Link expired"));

    let res = no_redirects().get(app.url("/portal/")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
    for d in
        ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"]
    {
        assert!(csp.contains(d), "{d} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(res.headers()[X_FRAME_OPTIONS], "DENY");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let body = res.text().await.unwrap();
    assert!(body.contains("Webhooks") && !body.contains("<script>"), "no inline script");

    for forged in ["herald_portal=hps_000000000000000000000000000000000000000000000000", "herald_portal=garbage", ""] {
        let (s, body) = page(&app, forged, "/portal/").await;
        assert_eq!(s, 403, "{forged:?}");
        assert!(body.contains("Link expired"));
    }
    // Straight after the login redirect without the cookie (a cross-site start): one more step.
    let (s, body) = page(&app, "", "/portal/?from=login").await;
    assert_eq!(s, 200);
    assert!(body.contains(r#"http-equiv="refresh""#));
    // Assets are served from the binary.
    for asset in ["/portal/assets/portal.css", "/portal/assets/portal.js"] {
        let res = no_redirects().get(app.url(asset)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{asset}");
    }
}

async fn sessions_end_with_their_link_lifetime(backend: Backend) {
    let opts = Options { manual_clock: true, ..Options::default() };
    let Some(app) = spawn_on(backend, opts).await else { return };
    let unopened = link_as(&app, KEY, json!({"expires_in_seconds": 60})).await;
    let cookie = open(&link_as(&app, KEY, json!({"expires_in_seconds": 60})).await).await;
    assert_eq!(page(&app, &cookie, "/portal/").await.0, 200);
    app.advance(Duration::from_secs(61));
    let (s, body) = page(&app, &cookie, "/portal/").await;
    assert_eq!(s, 403);
    assert!(body.contains("Link expired"));
    let res = no_redirects().get(&unopened).send().await.unwrap();
    assert_eq!(res.status(), 403, "an expired link opens nothing");
}

async fn forms_need_the_csrf_token_and_read_only_sessions_change_nothing(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let cookie = open(&link_as(&app, KEY, json!({})).await).await;
    let (_, form) = page(&app, &cookie, "/portal/webhooks/new").await;
    let csrf = csrf_of(&form);
    let url = rx.url("p");
    for bad_csrf in ["", "0123456789abcdef0123456789abcdef"] {
        let (s, body) = post_form(
            &app,
            &cookie,
            "/portal/webhooks",
            &[("csrf", bad_csrf), ("url", &url), ("events", "email.received"), ("enabled", "true")],
        )
        .await;
        assert_eq!(s, 403, "{body}");
    }
    let (_, list) = app.call(Method::GET, "/api/v1/webhooks", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "nothing created without the token");

    // Field errors come back next to the fields, in words, and nothing is stored.
    let (s, body) =
        post_form(&app, &cookie, "/portal/webhooks", &[("csrf", &csrf), ("url", "ftp://x"), ("max_in_flight", "1")])
            .await;
    assert_eq!(s, 400);
    assert!(body.contains(r#"id="url-error""#) && body.contains(r#"id="events-error""#), "{body}");
    assert!(body.contains("ftp://x"), "the form keeps what was typed");

    let (s, body) = post_form(
        &app,
        &cookie,
        "/portal/webhooks",
        &[
            ("csrf", &csrf),
            ("url", &url),
            ("events", "email.received"),
            ("events", "webhook.test"),
            ("enabled", "true"),
        ],
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert!(body.contains("whsec_"), "the secret is shown once");
    let (_, list) = app.call(Method::GET, "/api/v1/webhooks", None).await;
    let w = &list["items"][0];
    assert_eq!(w["events"], json!(["email.received", "webhook.test"]));
    let id = w["id"].as_str().unwrap().to_owned();
    let (_, detail) = page(&app, &cookie, &format!("/portal/webhooks/{id}")).await;
    assert!(!detail.contains("whsec_"), "and never again");

    let ro = open(&link_as(&app, KEY, json!({"read_only": true})).await).await;
    let (s, detail) = page(&app, &ro, &format!("/portal/webhooks/{id}")).await;
    assert_eq!(s, 200);
    assert!(detail.contains("read-only") && !detail.contains("id=\"rotate\""), "no change buttons");
    let ro_csrf = csrf_of(&detail);
    for (path, form) in [
        (format!("/portal/webhooks/{id}/enabled"), vec![("csrf", ro_csrf.as_str()), ("enabled", "false")]),
        (format!("/portal/webhooks/{id}/rotate"), vec![("csrf", ro_csrf.as_str())]),
        (
            format!("/portal/webhooks/{id}"),
            vec![
                ("csrf", ro_csrf.as_str()),
                ("url", url.as_str()),
                ("events", "email.received"),
                ("signature", "ed25519"),
            ],
        ),
        (
            "/portal/webhooks".to_owned(),
            vec![("csrf", ro_csrf.as_str()), ("url", url.as_str()), ("events", "email.received")],
        ),
    ] {
        let (s, body) = post_form(&app, &ro, &path, &form).await;
        assert_eq!(s, 403, "{path}: {body}");
        assert!(body.contains("Read-only"));
    }
    let (_, w) = app.call(Method::GET, &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(
        (w["enabled"].as_bool(), w["signature"].as_str()),
        (Some(true), Some("hmac")),
        "a read-only session changed nothing"
    );
    let (_, list) = app.call(Method::GET, "/api/v1/webhooks", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

async fn a_session_never_reaches_another_accounts_objects(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let other = app.other_account("other").await;
    let (theirs, _) = {
        let (s, v) = app
            .call_as(
                other.expose(),
                Method::POST,
                "/api/v1/webhooks",
                Some(json!({"url": "http://127.0.0.1:9/b", "events": ["email.received"], "description": "B-ONLY"})),
            )
            .await;
        assert_eq!(s, 201);
        (v["id"].as_str().unwrap().to_owned(), ())
    };
    let (_, ev) = app
        .call_as(
            other.expose(),
            Method::POST,
            "/api/v1/events",
            Some(json!({"type": "email.received", "data": {"secret": "B-PAYLOAD"}})),
        )
        .await;
    let their_event = ev["id"].as_str().unwrap().to_owned();
    let (_, deliveries) =
        app.call_as(other.expose(), Method::GET, &format!("/api/v1/webhooks/{theirs}/deliveries"), None).await;
    let their_delivery = deliveries["items"][0]["id"].as_str().unwrap().to_owned();

    let cookie = open(&link_as(&app, KEY, json!({})).await).await;
    let (_, home) = page(&app, &cookie, "/portal/").await;
    assert!(!home.contains("B-ONLY"));
    let (_, events) = page(&app, &cookie, "/portal/events").await;
    assert!(!events.contains(&their_event));
    for path in [
        format!("/portal/webhooks/{theirs}"),
        format!("/portal/webhooks/{theirs}/edit"),
        format!("/portal/events/{their_event}"),
        format!("/portal/deliveries/{their_delivery}"),
    ] {
        let (s, body) = page(&app, &cookie, &path).await;
        assert_eq!(s, 404, "{path}");
        assert!(!body.contains("B-ONLY") && !body.contains("B-PAYLOAD"));
    }
    let csrf = csrf_of(&home);
    for (path, form) in [
        (format!("/portal/webhooks/{theirs}/enabled"), vec![("csrf", csrf.as_str()), ("enabled", "false")]),
        (format!("/portal/webhooks/{theirs}/rotate"), vec![("csrf", csrf.as_str())]),
        (
            format!("/portal/webhooks/{theirs}"),
            vec![("csrf", csrf.as_str()), ("url", "http://127.0.0.1:9/x"), ("events", "email.received")],
        ),
        (format!("/portal/deliveries/{their_delivery}/retry"), vec![("csrf", csrf.as_str())]),
        (format!("/portal/deliveries/{their_delivery}/skip"), vec![("csrf", csrf.as_str())]),
    ] {
        let (s, _) = post_form(&app, &cookie, &path, &form).await;
        assert_eq!(s, 404, "{path}");
    }
    let (_, w) = app.call_as(other.expose(), Method::GET, &format!("/api/v1/webhooks/{theirs}"), None).await;
    assert_eq!((w["enabled"].as_bool(), w["url"].as_str()), (Some(true), Some("http://127.0.0.1:9/b")));
    // The stats API is scoped the same way.
    let (s, _) = app.call(Method::GET, &format!("/api/v1/webhooks/{theirs}/stats"), None).await;
    assert_eq!(s, 404);
}

async fn stats_count_attempts_per_bucket_by_outcome(backend: Backend) {
    let rx = Receiver::start().await;
    rx.script("s", vec![Reply::status(500)]);
    rx.always("s", Reply::status(200));
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let (wh, _) = app.webhook(&rx.url("s")).await;
    for _ in 0..3 {
        app.publish_received().await;
    }
    // One first attempt fails (500) and is retried later; the other two are delivered.
    rx.wait_for("s", 3).await;
    let stats = eventually("attempts counted", || async {
        let (s, v) = app.call(Method::GET, &format!("/api/v1/webhooks/{wh}/stats?window=2h&bucket=1h"), None).await;
        assert_eq!(s, 200, "{v}");
        (v["totals"]["delivered"] == 2 && v["totals"]["failed"] == 1).then_some(v)
    })
    .await;
    let buckets = stats["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2);
    assert_eq!(stats["bucket_seconds"], 3600);
    // The attempts may straddle an hour: the buckets add up to the totals.
    let sum = |k: &str| buckets.iter().map(|b| b[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("delivered"), sum("failed")), (2, 1));
    for b in buckets {
        let attempts = b["delivered"].as_u64().unwrap() + b["failed"].as_u64().unwrap();
        assert_eq!(b["p50_ms"].is_u64(), attempts > 0, "a percentile exactly where there are attempts: {b}");
        let start =
            time::OffsetDateTime::parse(b["start"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
                .unwrap();
        assert_eq!((start.minute(), start.second(), start.nanosecond()), (0, 0, 0), "aligned to the hour: {b}");
    }
    assert!(stats["totals"]["p99_ms"].is_u64());
    let (s, v) = app.call(Method::GET, &format!("/api/v1/webhooks/{wh}/stats"), None).await;
    assert_eq!((s, v["buckets"].as_array().unwrap().len()), (200, 24), "default 24 h in 1 h buckets");
    for bad in ["window=banana", "window=24h&bucket=7m", "bucket=10s", "window=40d", "window=1d&bucket=1m", "x=1"] {
        let (s, v) = app.call(Method::GET, &format!("/api/v1/webhooks/{wh}/stats?{bad}"), None).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, _) = app.call(Method::GET, "/api/v1/webhooks/wh_00000000000000000000000000000000/stats", None).await;
    assert_eq!(s, 404);
}

async fn hostile_portal_requests_get_a_plain_4xx_and_change_nothing(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let (wh, _) = app.webhook("http://127.0.0.1:9/h").await;
    let cookie = open(&link_as(&app, KEY, json!({})).await).await;
    let (_, home) = page(&app, &cookie, "/portal/").await;
    let csrf = csrf_of(&home);
    let raw = |path: String, content_type: &'static str, body: Vec<u8>| {
        let cookie = cookie.clone();
        let url = app.url(&path);
        async move {
            let res = no_redirects()
                .post(url)
                .header("cookie", cookie)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        }
    };
    let form = "application/x-www-form-urlencoded";
    let good = |extra: &str| format!("csrf={csrf}&{extra}").into_bytes();
    let cases: Vec<(String, &'static str, Vec<u8>)> = vec![
        (format!("/portal/webhooks/{wh}/enabled"), "application/json", br#"{"enabled":false}"#.to_vec()),
        (format!("/portal/webhooks/{wh}/enabled"), form, good("enabled=maybe")),
        (format!("/portal/webhooks/{wh}/enabled"), form, [good("enabled=false&x="), vec![0xff, 0xfe]].concat()),
        (format!("/portal/webhooks/{wh}/enabled"), form, good("enabled=false&x=%FF%FE")),
        (format!("/portal/webhooks/{wh}/enabled"), form, good(&format!("enabled=false&pad={}", "a".repeat(70_000)))),
        (format!("/portal/webhooks/{wh}/rotate"), form, good("grace_hours=-1")),
        (format!("/portal/webhooks/{wh}/rotate"), form, good("grace_hours=99999999999999999999")),
        (
            format!("/portal/webhooks/{wh}"),
            form,
            good("url=http://127.0.0.1:9/h&events=email.received&max_in_flight=-5"),
        ),
        (format!("/portal/webhooks/{wh}"), form, good("url=http://127.0.0.1:9/h&events=nope")),
        (
            format!("/portal/webhooks/{wh}"),
            form,
            good("url=http://127.0.0.1:9/h&events=email.received&concurrency=fixed&rate_limit_per_second=-1"),
        ),
        (
            format!("/portal/webhooks/{wh}"),
            form,
            good("url=http://127.0.0.1:9/h&events=email.received&concurrency=fixed&retry_schedule=5x"),
        ),
        (format!("/portal/webhooks/{wh}"), form, good("url=http://127.0.0.1:9/h&events=email.received&ordering=lifo")),
        (format!("/portal/webhooks/{wh}"), form, good("url=http://127.0.0.1:9/h&events=email.received&signature=rsa")),
        ("/portal/webhooks".into(), form, good("url=http://127.0.0.1:9/h&events=email.received&signature=rsa")),
        (format!("/portal/webhooks/{wh}/recover"), form, good("since=yesterday")),
        (format!("/portal/webhooks/{wh}/recover"), form, good("since=2026-01-01T00:00&tz_offset=99999999999")),
        (format!("/portal/webhooks/{wh}/recover"), form, good("since=2026-01-02T00:00&until=2026-01-01T00:00")),
        (format!("/portal/webhooks/{wh}/recover"), form, good("since=9999-12-31T23:59&tz_offset=-60")),
        (format!("/portal/webhooks/{wh}/recover"), form, good("since=2026-01-01T00:00&tz_offset=-2147483648")),
        ("/portal/webhooks/wh_nothex/enabled".into(), form, good("enabled=false")),
        ("/portal/deliveries/../../etc/retry".into(), form, good("")),
        ("/portal/deliveries/whd_00000000000000000000000000000000/retry".into(), form, good("")),
        ("/portal/deliveries/whd_00000000000000000000000000000000/skip".into(), form, good("")),
    ];
    for (path, ct, body) in cases {
        let status = raw(path.clone(), ct, body).await;
        assert!((400..500).contains(&status), "{path} ({ct}) → {status}");
    }
    for path in [
        "/portal/webhooks/%ff",
        "/portal/events/evt_x",
        "/portal/events?after=%27%22&type=%3Cscript%3E",
        "/portal/?after=zzz",
    ] {
        let (status, body) = page(&app, &cookie, path).await;
        assert!(status < 500 && !body.contains("<script>"), "{path} → {status}");
    }
    let (_, w) = app.call(Method::GET, &format!("/api/v1/webhooks/{wh}"), None).await;
    assert_eq!((w["enabled"].as_bool(), w["max_in_flight"].as_u64()), (Some(true), Some(1)), "nothing changed: {w}");
    assert_eq!(w["events"], json!(["email.received"]));
    assert_eq!((w["concurrency"].as_str(), w["ordering"].as_str()), (Some("adaptive"), Some("none")), "{w}");
    let (_, all) = app.call(Method::GET, "/api/v1/webhooks", None).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(1), "a refused create made nothing: {all}");
}

async fn sign_out_ends_the_session_wherever_the_cookie_went(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let cookie = open(&link_as(&app, KEY, json!({})).await).await;
    let (_, home) = page(&app, &cookie, "/portal/").await;
    let (s, body) = post_form(&app, &cookie, "/portal/logout", &[("csrf", "wrong")]).await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(page(&app, &cookie, "/portal/").await.0, 200, "a forged sign-out ends nothing");
    let (s, body) = post_form(&app, &cookie, "/portal/logout", &[("csrf", &csrf_of(&home))]).await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = page(&app, &cookie, "/portal/").await;
    assert_eq!(s, 403, "a copy of the cookie opens nothing after sign-out");
    assert!(body.contains("Link expired"));
    // Two different portal cookies (one set for a narrower path by a sibling site) are refused.
    let mine = open(&link_as(&app, KEY, json!({})).await).await;
    let tossed = "herald_portal=hps_000000000000000000000000000000000000000000000000";
    assert_eq!(page(&app, &format!("{tossed}; {mine}"), "/portal/").await.0, 403);
    assert_eq!(page(&app, &format!("{mine}; {mine}"), "/portal/").await.0, 200);
}

async fn an_agents_endpoint_is_never_a_webhook_of_the_portal(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let (s, v) = app
        .call(
            Method::POST,
            "/api/v1/agents",
            Some(json!({"address": "bot@agents.test", "webhook_url": "http://127.0.0.1:9/bot"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let agent = app
        .store
        .get_agent(&account_id(&app).await, &herald_domain::AgentAddress::parse("bot@agents.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    let target = agent.target.to_string();
    let cookie = open(&link_as(&app, KEY, json!({})).await).await;
    let (_, home) = page(&app, &cookie, "/portal/").await;
    let csrf = csrf_of(&home);
    assert_eq!(page(&app, &cookie, &format!("/portal/webhooks/{target}")).await.0, 404);
    for (path, form) in [
        (format!("/portal/webhooks/{target}/rotate"), vec![("csrf", csrf.as_str()), ("grace_hours", "0")]),
        (format!("/portal/webhooks/{target}/enabled"), vec![("csrf", csrf.as_str()), ("enabled", "false")]),
        (format!("/portal/webhooks/{target}/test"), vec![("csrf", csrf.as_str())]),
    ] {
        let (s, body) = post_form(&app, &cookie, &path, &form).await;
        assert_eq!(s, 404, "{path}: {body}");
        assert!(!body.contains("whsec_"));
    }
    // Nor through the API's webhook routes.
    let (s, _) = app.call(Method::POST, &format!("/api/v1/webhooks/{target}/rotate-secret"), None).await;
    assert_eq!(s, 404);
}

async fn account_id(app: &TestApp) -> herald_domain::AccountId {
    app.store.account_by_key_hash(&herald_domain::ApiKey::parse(KEY).unwrap().hash()).await.unwrap().unwrap().id
}

async fn embedding_and_https_settings_shape_the_headers_and_the_cookie(backend: Backend) {
    let opts = Options {
        tweak: Box::new(|s| {
            s.portal_frame_ancestors = "https://app.example.com".into();
            s.public_url = Some("https://hooks.example.com".into());
        }),
        ..Options::default()
    };
    let Some(app) = spawn_on(backend, opts).await else { return };
    let (_, v) = app.call(Method::POST, "/api/v1/portal-sessions", None).await;
    let link = v["url"].as_str().unwrap();
    assert!(link.starts_with("https://hooks.example.com/portal/login?token="), "{link}");
    // Herald itself speaks http here (TLS ends at the proxy): open the same path locally.
    let local = link.replace("https://hooks.example.com", &format!("http://{}", app.addr));
    let res = no_redirects().get(&local).send().await.unwrap();
    let set = res.headers()[SET_COOKIE].to_str().unwrap();
    assert!(set.contains("; Secure"), "{set}");
    let csp = res.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors https://app.example.com"), "{csp}");
    assert!(res.headers().get(X_FRAME_OPTIONS).is_none(), "X-Frame-Options cannot name an origin");
}

crate::on_both_stores!(
    sign_out_ends_the_session_wherever_the_cookie_went,
    an_agents_endpoint_is_never_a_webhook_of_the_portal,
    embedding_and_https_settings_shape_the_headers_and_the_cookie,
    hostile_portal_requests_get_a_plain_4xx_and_change_nothing,
    links_open_once_into_a_cookie_session_with_strict_headers,
    sessions_end_with_their_link_lifetime,
    forms_need_the_csrf_token_and_read_only_sessions_change_nothing,
    a_session_never_reaches_another_accounts_objects,
    stats_count_attempts_per_bucket_by_outcome,
);

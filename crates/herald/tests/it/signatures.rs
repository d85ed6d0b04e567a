//! Ed25519 signatures end to end: deliveries of an `ed25519` webhook (and agent) verified by
//! an independent path (`ed25519-dalek` directly, and the JWK Set parsed by hand per RFC
//! 7517/8037 with the RFC 7638 thumbprint recomputed), rotation with overlap, switching
//! schemes, and the private key never in an answer or in clear in the database.

use crate::on_both_stores;
use crate::support::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, VerifyingKey};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;

on_both_stores!(
    ed25519_deliveries_verify_with_the_published_keys_through_a_rotation,
    switching_schemes_and_ed25519_agents
);

/// The HERALD_SECRET_KEY of these tests.
const SEALING_KEY: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

fn sealed() -> Options {
    Options {
        tweak: Box::new(|s| s.secret_key = Some(herald::settings::SecretText::new(SEALING_KEY))),
        ..Options::default()
    }
}

/// A JWK Set read by hand: every key checked against RFC 7517/8037 (OKP, Ed25519, a 32-byte
/// `x`, no private part) and its `kid` against the RFC 7638 thumbprint, by kid.
async fn fetch_jwks(url: &str) -> HashMap<String, VerifyingKey> {
    let res = reqwest::get(url).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/jwk-set+json");
    let cache = res.headers()["cache-control"].to_str().unwrap().to_owned();
    let set: Value = res.json().await.unwrap();
    match set["keys"].as_array().is_some_and(|k| k.is_empty()) {
        true => assert_eq!(cache, "no-store", "an empty set is never cached"),
        false => assert!(cache.contains("public") && cache.contains("max-age="), "{cache}"),
    }
    let mut keys = HashMap::new();
    for k in set["keys"].as_array().expect("a `keys` array") {
        assert_eq!((k["kty"].as_str(), k["crv"].as_str()), (Some("OKP"), Some("Ed25519")), "{k}");
        assert!(k.get("d").is_none(), "a public JWK has no private part: {k}");
        assert_eq!((k["use"].as_str(), k["alg"].as_str()), (Some("sig"), Some("EdDSA")));
        let x = k["x"].as_str().unwrap();
        let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(x).unwrap().try_into().expect("32 bytes");
        let thumbprint = URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#).as_bytes()));
        assert_eq!(k["kid"].as_str(), Some(thumbprint.as_str()), "kid is the RFC 7638 thumbprint");
        keys.insert(thumbprint, VerifyingKey::from_bytes(&bytes).unwrap());
    }
    keys
}

/// The JWK Set's current entity tag, after checking that a receiver revalidating its copy
/// (RFC 9110 §13.1.2: a list, compared weakly) gets a 304 with no body and the same
/// validator and cache time.
async fn etag_revalidates(url: &str) -> String {
    let res = reqwest::get(url).await.unwrap();
    let cache = res.headers()["cache-control"].to_str().unwrap().to_owned();
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2, "a strong entity tag: {etag}");
    let again =
        reqwest::Client::new().get(url).header("if-none-match", format!("\"stale\", W/{etag}")).send().await.unwrap();
    assert_eq!((again.status().as_u16(), again.headers()["etag"].to_str().unwrap()), (304, etag.as_str()));
    assert_eq!(again.headers()["cache-control"].to_str().unwrap(), cache);
    assert!(again.bytes().await.unwrap().is_empty(), "a 304 has no body");
    etag
}

/// The `v1a` signatures of a delivery, in header order, checked by `ed25519-dalek`: which
/// of `keys` (by kid) made each entry.
fn signers(r: &Received, keys: &HashMap<String, VerifyingKey>) -> Vec<String> {
    let signed =
        [r.header("webhook-id").as_bytes(), b".", r.header("webhook-timestamp").as_bytes(), b".", &r.body].concat();
    r.header("webhook-signature")
        .split(' ')
        .map(|entry| {
            let b64 = entry.strip_prefix("v1a,").unwrap_or_else(|| panic!("a v1a entry: {entry}"));
            let sig = Signature::from_bytes(&STANDARD.decode(b64).unwrap().try_into().unwrap());
            let by: Vec<&String> =
                keys.iter().filter(|(_, k)| k.verify_strict(&signed, &sig).is_ok()).map(|(kid, _)| kid).collect();
            assert_eq!(by.len(), 1, "each entry verifies with exactly one published key");
            by[0].clone()
        })
        .collect()
}

async fn ed25519_deliveries_verify_with_the_published_keys_through_a_rotation(backend: Backend) {
    let Some(app) = spawn_on(backend, sealed()).await else { return };
    let rx = Receiver::start().await;
    let (s, w) = app
        .call(
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({"url": rx.url("ed"), "events": ["email.received"], "signature": "ed25519"})),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    assert_eq!(w["signature"], "ed25519");
    assert!(w.get("signing_secret").is_none(), "an ed25519 webhook has no shared secret: {w}");
    let jwks_url = w["jwks_url"].as_str().unwrap().to_owned();
    let (s, account) = app.call(Method::GET, "/api/v1/signing-keys", None).await;
    assert_eq!(s, 200, "{account}");
    assert_eq!(account["jwks_url"], jwks_url.as_str());
    assert!(jwks_url.ends_with("/jwks.json") && jwks_url.contains("/.well-known/herald/acc_"), "{jwks_url}");
    let mut answers = vec![w.to_string(), account.to_string()];

    app.publish_received().await;
    let got = rx.wait_for("ed", 1).await;
    let first = &got[0];
    assert!(first.headers.get("x-e2a-signature").is_none(), "no shared secret, so no X-E2A-Signature");
    let keys = fetch_jwks(&jwks_url).await;
    assert_eq!(keys.len(), 1);
    let kid = first.header("webhook-key-id").to_owned();
    assert_eq!(signers(first, &keys), vec![kid.clone()], "one signature, by the key the header names");
    assert_eq!(account["keys"][0]["kid"], kid.as_str());
    assert_eq!(account["keys"][0]["current"], true);
    let whpk = account["keys"][0]["public_key"].as_str().unwrap();
    assert_eq!(STANDARD.decode(&whpk[5..]).unwrap(), keys[&kid].to_bytes(), "whpk_ is the same key as the JWK");
    // Herald's own verifier (`herald listen`) agrees with the independent one.
    let public = herald_domain::asymmetric::PublicKey::from_whpk(whpk).unwrap();
    let (id, ts) = (first.header("webhook-id"), first.header("webhook-timestamp"));
    assert!(public.verify_v1a(first.header("webhook-signature"), id, ts, &first.body));
    assert!(!public.verify_v1a(first.header("webhook-signature"), id, ts, b"{\"tampered\":true}"));

    // Rotation: during the grace both keys sign; the header names the new one.
    let before = etag_revalidates(&jwks_url).await;
    let (s, rotated) =
        app.call(Method::POST, "/api/v1/signing-keys/rotate", Some(json!({"grace_period_seconds": 3600}))).await;
    assert_eq!(s, 200, "{rotated}");
    answers.push(rotated.to_string());
    let listed: Vec<(&str, bool)> = rotated["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["current"] == true))
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], (kid.as_str(), false), "the replaced key, in grace: {rotated}");
    assert!(rotated["keys"][1]["expires_at"].is_string());
    let new_kid = listed[0].0.to_owned();
    app.publish_received().await;
    let got = rx.wait_for("ed", 2).await;
    let keys = fetch_jwks(&jwks_url).await;
    assert_eq!(keys.len(), 2, "the JWK Set holds the current key and the one in grace");
    // A receiver revalidating its copy from before the rotation gets the new set.
    let res = reqwest::Client::new().get(&jwks_url).header("if-none-match", &before).send().await.unwrap();
    assert_eq!(res.status(), 200, "the set changed");
    assert_ne!(res.headers()["etag"].to_str().unwrap(), before);
    assert_ne!(etag_revalidates(&jwks_url).await, before);
    assert_eq!(got[1].header("webhook-key-id"), new_kid);
    assert_eq!(signers(&got[1], &keys), vec![new_kid.clone(), kid.clone()], "current first, then the one in grace");

    // A rotation without grace: only the newest key signs, and the JWK Set drops the
    // replaced one (the first key is still in its own grace).
    let (_, again) =
        app.call(Method::POST, "/api/v1/signing-keys/rotate", Some(json!({"grace_period_seconds": 0}))).await;
    answers.push(again.to_string());
    let newest = again["keys"][0]["kid"].as_str().unwrap().to_owned();
    let keys = fetch_jwks(&jwks_url).await;
    assert!(keys.contains_key(&newest) && keys.contains_key(&kid) && !keys.contains_key(&new_kid));
    app.publish_received().await;
    let got = rx.wait_for("ed", 3).await;
    assert_eq!(signers(&got[2], &keys), vec![newest.clone(), kid.clone()]);

    // Bad input changes nothing; other accounts see nothing; the JWKS is public but exact.
    for bad in [json!({"grace_period_seconds": 604801}), json!({"grace": 1})] {
        let (s, v) = app.call(Method::POST, "/api/v1/signing-keys/rotate", Some(bad)).await;
        assert_eq!(s, 400, "{v}");
    }
    assert_eq!(fetch_jwks(&jwks_url).await.len(), 2);
    let other = app.other_account("other").await;
    let (_, theirs) = app.call_as(other.expose(), Method::GET, "/api/v1/signing-keys", None).await;
    assert_eq!(theirs["keys"], json!([]), "keys are per account");
    assert_ne!(theirs["jwks_url"], jwks_url.as_str());
    assert_eq!(fetch_jwks(theirs["jwks_url"].as_str().unwrap()).await.len(), 0);
    for path in
        ["/.well-known/herald/acc_00000000000000000000000000000000/jwks.json", "/.well-known/herald/nope/jwks.json"]
    {
        let res = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    let (s, v) =
        app.call(Method::POST, &format!("/api/v1/webhooks/{}/rotate-secret", w["id"].as_str().unwrap()), None).await;
    assert_eq!(s, 409, "an ed25519 webhook has no secret to rotate: {v}");
    let (s, v) = app
        .call(
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({"url": rx.url("x"), "events": ["email.received"], "signature": "rsa"})),
        )
        .await;
    assert_eq!((s, v["errors"][0]["field"].as_str()), (400, Some("signature")), "{v}");

    // The private keys: sealed in the database, and in no answer.
    let (_, listed) = app.call(Method::GET, &format!("/api/v1/webhooks/{}", w["id"].as_str().unwrap()), None).await;
    answers.push(listed.to_string());
    let private = stored_private_keys(&app).await;
    assert_eq!(private.len(), 3);
    let cipher = herald_store::codec::SecretCipher::from_key_text(SEALING_KEY).unwrap();
    for stored in &private {
        assert!(stored.starts_with("enc1:"), "a private key is stored sealed");
        let plain = cipher.open(stored).unwrap();
        let seed = plain.strip_prefix("whsk_").expect("a whsk_ key");
        for a in &answers {
            assert!(!a.contains(seed) && !a.contains("whsk_"), "an answer holds a private key: {a}");
        }
        if backend == Backend::Sqlite {
            for f in std::fs::read_dir(app._dir.path()).unwrap() {
                let bytes = std::fs::read(f.unwrap().path()).unwrap_or_default();
                assert!(!bytes.windows(seed.len()).any(|w| w == seed.as_bytes()), "a private key in clear on disk");
            }
        }
    }
}

/// Every stored `private_key`, read from the app's database directly.
async fn stored_private_keys(app: &TestApp) -> Vec<String> {
    let url = app.database_url();
    let sql = "SELECT private_key FROM signing_keys";
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
    }
}

async fn switching_schemes_and_ed25519_agents(backend: Backend) {
    let Some(app) = spawn_on(backend, sealed()).await else { return };
    let rx = Receiver::start().await;
    // An HMAC webhook switched to Ed25519, then back: the switch back answers a fresh secret,
    // which signs from then on.
    let (id, _) = app.webhook(&rx.url("w")).await;
    let path = format!("/api/v1/webhooks/{id}");
    let (s, v) = app.call(Method::PATCH, &path, Some(json!({"signature": "ed25519"}))).await;
    assert_eq!((s, v["signature"].as_str()), (200, Some("ed25519")), "{v}");
    assert!(v["jwks_url"].is_string() && v.get("signing_secret").is_none());
    app.publish_received().await;
    let got = rx.wait_for("w", 1).await;
    assert!(got[0].header("webhook-signature").starts_with("v1a,"));
    assert!(!got[0].header("webhook-key-id").is_empty());
    let (s, v) = app.call(Method::PATCH, &path, Some(json!({"signature": "hmac"}))).await;
    assert_eq!((s, v["signature"].as_str()), (200, Some("hmac")), "{v}");
    assert!(v.get("jwks_url").is_none());
    let secret = v["signing_secret"].as_str().expect("a fresh secret on the switch to hmac").to_owned();
    app.publish_received().await;
    let got = rx.wait_for("w", 2).await;
    let secret = herald_domain::SigningSecret::from_stored(secret);
    assert!(herald_domain::signing::verify_e2a(got[1].header("x-e2a-signature"), &got[1].body, &secret));
    assert!(got[1].headers.get("webhook-key-id").is_none());
    let entries: Vec<&str> = got[1].header("webhook-signature").split(' ').collect();
    assert!(entries.iter().all(|e| e.starts_with("v1,")), "HMAC only: {entries:?}");
    // The switch is a rotation: the fresh secret signs, and the stored one beside it.
    assert!(herald_domain::signing::verify_standard(
        got[1].header("webhook-signature"),
        got[1].header("webhook-id"),
        got[1].header("webhook-timestamp"),
        &got[1].body,
        &secret
    ));

    // Two switches at once (a double submit): each secret answered signs the next delivery
    // (the last rotation's is current, the other signs beside it for the switch's grace).
    let (s, _) = app.call(Method::PATCH, &path, Some(json!({"signature": "ed25519"}))).await;
    assert_eq!(s, 200);
    let switch = || app.call(Method::PATCH, &path, Some(json!({"signature": "hmac"})));
    let (a, b) = tokio::join!(switch(), switch());
    assert_eq!((a.0, b.0), (200, 200));
    let answered: Vec<&str> = [&a.1, &b.1].iter().filter_map(|v| v["signing_secret"].as_str()).collect();
    assert!(!answered.is_empty(), "the switch answers a secret: {a:?} {b:?}");
    app.publish_received().await;
    let got = rx.wait_for("w", 3).await;
    for secret in answered {
        let secret = herald_domain::SigningSecret::from_stored(secret.to_owned());
        let (id, ts) = (got[2].header("webhook-id"), got[2].header("webhook-timestamp"));
        assert!(herald_domain::signing::verify_standard(
            got[2].header("webhook-signature"),
            id,
            ts,
            &got[2].body,
            &secret
        ));
    }

    // An Ed25519 agent: its Payload has no auth signature (the body's v1a covers it).
    let (s, a) = app
        .call(
            Method::POST,
            "/api/v1/agents",
            Some(json!({"address": "bot@agents.test", "webhook_url": rx.url("bot"), "signature": "ed25519"})),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    assert!(a.get("signing_secret").is_none() && a["jwks_url"].is_string(), "{a}");
    let raw = "From: a@sender.test\r\nTo: bot@agents.test\r\nMessage-ID: <sig1@x>\r\nSubject: Hi\r\n\r\nHi\r\n";
    let r = app
        .http
        .post(app.url("/api/v1/agents/bot@agents.test/messages"))
        .bearer_auth(KEY)
        .header("content-type", "message/rfc822")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let got = rx.wait_for("bot", 1).await;
    let keys = fetch_jwks(a["jwks_url"].as_str().unwrap()).await;
    assert_eq!(signers(&got[0], &keys), vec![got[0].header("webhook-key-id").to_owned()]);
    assert!(got[0].headers.get("x-e2a-signature").is_none());
    assert!(
        got[0].headers.keys().all(|h| !h.as_str().starts_with("x-e2a-auth-")),
        "no unsigned auth headers: the signed body has them"
    );
    let payload = got[0].json();
    assert!(payload["auth_headers"].get("X-E2A-Auth-Signature").is_none(), "{payload}");
    assert!(payload["auth_headers"]["X-E2A-Auth-Timestamp"].is_string());
    let (s, _) = app.call(Method::POST, "/api/v1/agents/bot@agents.test/rotate-secret", None).await;
    assert_eq!(s, 409);
    let (s, v) = app.call(Method::PATCH, "/api/v1/agents/bot@agents.test", Some(json!({"signature": "hmac"}))).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["signing_secret"].as_str().is_some_and(|s| s.starts_with("whsec_")), "{v}");
    let (s, v) = app.call(Method::PATCH, "/api/v1/agents/bot@agents.test", Some(json!({"signature": "rsa"}))).await;
    assert_eq!((s, v["errors"][0]["field"].as_str()), (400, Some("signature")), "{v}");
}

//! Write rounds: publishes, claims and outcomes waiting together commit in one transaction,
//! and one job the database refuses fails only its own caller.

use herald_domain::{AccountId, EventId};
use herald_store::{Accounts, EventLog, FanoutRules, NewEvent, NewWebhook, Queue, Webhooks};
use herald_store_sqlite::{Durability, SqliteStore};
use std::time::Duration;
use time::OffsetDateTime;

fn event(id: EventId, account: &AccountId, now: OffsetDateTime) -> NewEvent {
    let data = serde_json::value::RawValue::from_string("{\"n\":1}".into()).unwrap();
    NewEvent {
        envelope: herald_domain::Envelope::build(&id, "order.paid", now, &data),
        id,
        account_id: account.clone(),
        event_type: "order.paid".into(),
        routing: Default::default(),
        ordering_key: None,
        idempotency_key: None,
        created_at: now,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_publish_fails_only_its_caller_while_the_others_and_a_claim_commit() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    let store = SqliteStore::open(&url, Durability::Process).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let account = store.create_account("a", "h", now).await.unwrap().id;
    let webhook = NewWebhook {
        signature: Default::default(),
        id: herald_domain::WebhookId::generate(),
        account_id: account.clone(),
        url: "http://127.0.0.1:9/hook".into(),
        description: String::new(),
        events: vec!["order.paid".into()],
        filters: Default::default(),
        enabled: true,
        max_in_flight: 1000,
        control: herald_domain::DeliveryControl::default(),
        secret: herald_domain::SigningSecret::generate(),
        created_at: now,
    };
    store.create_webhook(webhook, 50).await.unwrap();
    let rules = FanoutRules::default();
    let taken = EventId::generate();
    store.publish(event(taken.clone(), &account, now), &rules).await.unwrap();

    // Many jobs at once: they queue behind each other's rounds (and most likely share them;
    // the answers must be right either way).
    let mut claimed: Vec<String> = Vec::new();
    let ids = |c: Vec<herald_store::Claimed>| c.into_iter().map(|c| c.delivery_id.as_str().to_owned());
    claimed.extend(ids(store.claim_due(now, Duration::from_secs(30), 1000).await.unwrap()));
    for _ in 0..5 {
        let mut publishes = Vec::new();
        for i in 0..20 {
            let store = store.clone();
            let rules = rules.clone();
            // Every fifth publish reuses an event id: the database refuses it.
            let id = if i % 5 == 0 { taken.clone() } else { EventId::generate() };
            let new = event(id, &account, now);
            publishes.push(tokio::spawn(async move { store.publish(new, &rules).await }));
        }
        let claim = store.claim_due(now, Duration::from_secs(30), 1000);
        claimed.extend(ids(claim.await.expect("a claim beside a refused publish still commits")));
        let mut ok = 0;
        let mut refused = 0;
        for p in publishes {
            match p.await.unwrap() {
                Ok(p) => {
                    assert_eq!(p.deliveries, 1);
                    ok += 1;
                }
                Err(_) => refused += 1,
            }
        }
        assert_eq!((ok, refused), (16, 4), "only the publishes reusing an id fail");
    }
    claimed.extend(ids(store.claim_due(now, Duration::from_secs(30), 1000).await.unwrap()));
    let distinct: std::collections::HashSet<&String> = claimed.iter().collect();
    assert_eq!(distinct.len(), claimed.len(), "no delivery is claimed twice");
    assert_eq!(claimed.len(), 1 + 5 * 16, "every committed delivery is claimed");
}

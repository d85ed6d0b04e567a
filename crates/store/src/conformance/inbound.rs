//! Agents and the inbox: uniqueness, scoping, ingest atomicity, dedupe, per-agent claims.

use super::*;
use crate::{AgentDelivery, AgentPatch, InboundItem, InboundRules, Ingested, NewAgent, NewMessage, Page, StoreError};
use herald_domain::{AgentAddress, AuthResults, DeliveryId, DeliveryStatus, MessageId, ParsedMail};

fn address(s: &str) -> AgentAddress {
    AgentAddress::parse(s).unwrap()
}

async fn agent(store: &dyn Store, account: &AccountId, addr: &str, url: Option<&str>) -> crate::Agent {
    store
        .create_agent(
            NewAgent {
                signature: Default::default(),
                address: address(addr),
                account_id: account.clone(),
                name: "Bot".into(),
                webhook_url: url.map(str::to_owned),
                max_in_flight: 1,
                secret: SigningSecret::generate(),
                target: WebhookId::generate(),
                created_at: t0(),
            },
            10,
        )
        .await
        .unwrap()
}

fn item(a: &crate::Agent, message_id: Option<&str>, at: OffsetDateTime, with_delivery: bool) -> InboundItem {
    let parsed = ParsedMail {
        message_id: message_id.map(str::to_owned),
        from: "alice@sender.test".into(),
        to: vec![a.address.to_string()],
        ..Default::default()
    };
    let raw = format!("Message-ID: <{}>\r\n\r\nhello", message_id.unwrap_or("none")).into_bytes();
    let event_id = EventId::generate();
    let data = serde_json::value::RawValue::from_string("{}".into()).unwrap();
    InboundItem {
        message: NewMessage {
            id: MessageId::generate(),
            account_id: a.account_id.clone(),
            agent: a.address.clone(),
            target: a.target.clone(),
            conversation_id: "cnv_1".into(),
            dedupe_key: herald_domain::inbound::dedupe_key(&parsed, &raw),
            parsed,
            auth: AuthResults::none(),
            raw,
            received_at: at,
        },
        event: NewEvent {
            id: event_id.clone(),
            account_id: a.account_id.clone(),
            event_type: "email.received".into(),
            envelope: Envelope::build(&event_id, "email.received", at, &data),
            routing: RoutingAttributes { agent_id: Some(a.address.to_string()), ..Default::default() },
            ordering_key: None,
            idempotency_key: None,
            created_at: at,
        },
        agent_delivery: with_delivery.then(|| AgentDelivery {
            id: DeliveryId::generate(),
            target: a.target.clone(),
            payload: br#"{"recipient":"x"}"#.to_vec(),
        }),
    }
}

pub async fn agents_are_unique_scoped_and_never_listed_as_webhooks(store: &dyn Store) {
    let a = account(store, "a").await;
    let b = account(store, "b").await;
    let bot = agent(store, &a, "Bot@Agents.Test", Some("http://127.0.0.1:9/bot")).await;
    assert_eq!(bot.address.as_str(), "bot@agents.test");
    let again = NewAgent {
        signature: Default::default(),
        address: address("bot@agents.test"),
        account_id: b.clone(),
        name: String::new(),
        webhook_url: None,
        max_in_flight: 1,
        secret: SigningSecret::generate(),
        target: WebhookId::generate(),
        created_at: t0(),
    };
    assert!(matches!(store.create_agent(again, 10).await, Err(StoreError::AlreadyExists)), "unique across accounts");
    assert!(store.get_agent(&b, &bot.address).await.unwrap().is_none(), "another account's agent is not found");
    assert!(store.list_webhooks(&a, Page { after: None, limit: 100 }).await.unwrap().is_empty());
    assert!(store.get_webhook(&a, &bot.target).await.unwrap().is_none());
    let r = store.find_recipient(&bot.address).await.unwrap().unwrap();
    assert_eq!((r.account_id, r.has_webhook_url), (a.clone(), true));
    agent(store, &a, "another@agents.test", None).await;
    let all = store.list_agents(&a, Page { after: None, limit: 100 }).await.unwrap();
    assert_eq!(all.iter().map(|x| x.address.as_str()).collect::<Vec<_>>(), ["another@agents.test", "bot@agents.test"]);
    let page2 = store.list_agents(&a, Page { after: Some("another@agents.test".into()), limit: 1 }).await.unwrap();
    assert_eq!(page2.len(), 1);
    let patch = AgentPatch {
        signature: Default::default(),
        name: Some("Renamed".into()),
        webhook_url: Some(None),
        max_in_flight: Some(4),
    };
    let p = store.update_agent(&a, &bot.address, patch, t0()).await.unwrap().unwrap();
    assert_eq!((p.name.as_str(), p.webhook_url.as_deref(), p.max_in_flight), ("Renamed", None, 4));
    assert!(store.update_agent(&b, &bot.address, AgentPatch::default(), t0()).await.unwrap().is_none());
    assert!(!store.delete_agent(&b, &bot.address, t0()).await.unwrap());
    assert!(store.delete_agent(&a, &bot.address, t0()).await.unwrap());
    assert!(store.find_recipient(&bot.address).await.unwrap().is_none());
}

pub async fn ingest_commits_message_event_and_agent_delivery_together(store: &dyn Store) {
    let a = account(store, "a").await;
    let wh = webhook(store, &a, 1).await;
    let bot = agent(store, &a, "bot@agents.test", Some("http://127.0.0.1:9/bot")).await;
    let it = item(&bot, Some("m1@sender.test"), t0(), true);
    let out = store.ingest(vec![it.clone()], &InboundRules::default()).await.unwrap();
    let Ingested::Stored { message, deliveries, agent_delivery: Some(direct), .. } = &out[0] else {
        panic!("stored with an agent delivery: {out:?}")
    };
    assert_eq!(*deliveries, 1, "the subscribed webhook gets the event");
    let claimed = store.claim_due(t0(), LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let mine = claimed.iter().find(|c| &c.delivery_id == direct).expect("the agent delivery is claimable");
    assert!(mine.agent_payload);
    assert_eq!(mine.body.as_deref(), Some(&br#"{"recipient":"x"}"#[..]));
    assert_eq!(mine.message_raw.as_deref(), Some(&it.message.raw[..]), "the message comes with the lease");
    assert_eq!(mine.webhook_id, bot.target);
    let other = claimed.iter().find(|c| c.webhook_id == wh).unwrap();
    assert!(!other.agent_payload);
    assert!(other.message_raw.is_none());
    let (d, _) = store.get_delivery(&a, direct).await.unwrap().unwrap();
    assert_eq!(d.agent.as_deref(), Some("bot@agents.test"));
    let m = store.get_message(&a, message).await.unwrap().unwrap();
    assert_eq!((m.agent.as_str(), m.size), ("bot@agents.test", it.message.raw.len() as u64));
    assert_eq!(store.raw_message(&a, message).await.unwrap().unwrap(), it.message.raw);
    let b = account(store, "b").await;
    assert!(store.get_message(&b, message).await.unwrap().is_none(), "scoped by account");
    let listed = store.list_messages(&a, &bot.address, Page { after: None, limit: 10 }).await.unwrap();
    assert_eq!(listed.len(), 1);
    let conv = store.conversation_of(&a, &bot.address, &["x@y".into(), "m1@sender.test".into()]).await.unwrap();
    assert_eq!(conv.as_deref(), Some("cnv_1"));
    // The agent deleted: its pending delivery ends as failed.
    store.release_leases(&[(mine.delivery_id.clone(), mine.lease_token.clone())], t0()).await.unwrap();
    store.delete_agent(&a, &bot.address, t0()).await.unwrap();
    let (d, _) = store.get_delivery(&a, direct).await.unwrap().unwrap();
    assert_eq!((d.status, d.last_error.as_deref()), (DeliveryStatus::Failed, Some("agent deleted")));
}

pub async fn a_failed_ingest_stores_nothing(store: &dyn Store) {
    let a = account(store, "a").await;
    webhook(store, &a, 1).await;
    let bot = agent(store, &a, "bot@agents.test", Some("http://127.0.0.1:9/bot")).await;
    let good = item(&bot, Some("good@x"), t0(), true);
    let mut bad = item(&bot, Some("bad@x"), t0(), true);
    // The second item reuses the first's delivery id: the transaction fails as a whole.
    bad.agent_delivery.as_mut().unwrap().id = good.agent_delivery.as_ref().unwrap().id.clone();
    assert!(store.ingest(vec![good, bad], &InboundRules::default()).await.is_err());
    assert!(store.list_messages(&a, &bot.address, Page { after: None, limit: 10 }).await.unwrap().is_empty());
    assert!(store.claim_due(t0(), LEASE, 10).await.unwrap().is_empty(), "no delivery (subscriber or agent)");
    let events = store.list_events(&a, Default::default(), Page { after: None, limit: 10 }).await.unwrap();
    assert!(events.is_empty(), "no event either: {events:?}");
}

pub async fn duplicates_within_the_window_create_nothing(store: &dyn Store) {
    let a = account(store, "a").await;
    let bot = agent(store, &a, "bot@agents.test", Some("http://127.0.0.1:9/bot")).await;
    let rules = InboundRules::default();
    let first = store.ingest(vec![item(&bot, Some("same@x"), t0(), true)], &rules).await.unwrap();
    let Ingested::Stored { message, .. } = &first[0] else { panic!() };
    let later = t0() + Duration::from_secs(6 * 86400);
    let again = store.ingest(vec![item(&bot, Some("same@x"), later, true)], &rules).await.unwrap();
    assert_eq!(again[0], Ingested::Duplicate { message: message.clone() });
    assert_eq!(store.claim_due(t0(), LEASE, 10).await.unwrap().len(), 1, "no second delivery");
    let other_agent = agent(store, &a, "other@agents.test", None).await;
    let to_other = store.ingest(vec![item(&other_agent, Some("same@x"), later, false)], &rules).await.unwrap();
    assert!(matches!(to_other[0], Ingested::Stored { agent_delivery: None, .. }), "per agent");
    let past_window = t0() + Duration::from_secs(8 * 86400);
    let anew = store.ingest(vec![item(&bot, Some("same@x"), past_window, true)], &rules).await.unwrap();
    assert!(matches!(anew[0], Ingested::Stored { .. }), "after the window the same id is a new message");
}

pub async fn concurrent_copies_of_one_message_are_stored_once(store: &dyn Store) {
    let a = account(store, "a").await;
    let bot = agent(store, &a, "bot@agents.test", Some("http://127.0.0.1:9/bot")).await;
    let rules = InboundRules::default();
    let tries = (0..6).map(|_| store.ingest(vec![item(&bot, Some("race@x"), t0(), true)], &rules));
    let results = futures_util::future::join_all(tries).await;
    let stored = results.iter().filter(|r| matches!(r.as_ref().map(|v| &v[0]), Ok(Ingested::Stored { .. }))).count();
    assert_eq!(stored, 1, "{results:?}");
    assert!(results.iter().all(|r| r.is_ok()), "the others are duplicates, not errors: {results:?}");
    assert_eq!(store.list_messages(&a, &bot.address, Page { after: None, limit: 10 }).await.unwrap().len(), 1);
}

pub async fn an_address_created_again_starts_afresh(store: &dyn Store) {
    let a = account(store, "a").await;
    let b = account(store, "b").await;
    let rules = InboundRules::default();
    let old = agent(store, &a, "bot@agents.test", Some("http://127.0.0.1:9/a")).await;
    store.ingest(vec![item(&old, Some("same@x"), t0(), true)], &rules).await.unwrap();
    store.delete_agent(&a, &old.address, t0()).await.unwrap();
    let new = agent(store, &b, "bot@agents.test", Some("http://127.0.0.1:9/b")).await;
    let out = store.ingest(vec![item(&new, Some("same@x"), t0(), true)], &rules).await.unwrap();
    assert!(matches!(out[0], Ingested::Stored { .. }), "not a duplicate of the old owner's message: {out:?}");
    assert_eq!(store.conversation_of(&b, &new.address, &["same@x".into()]).await.unwrap().as_deref(), Some("cnv_1"));
    assert!(store.list_messages(&b, &new.address, Page { after: None, limit: 10 }).await.unwrap().len() == 1);
    let claimed = store.claim_due(t0(), LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "only the new owner's delivery (the old one ended with its agent)");
    assert_eq!(claimed[0].webhook_id, new.target);
}

pub async fn an_agent_endpoint_respects_its_own_cap(store: &dyn Store) {
    let a = account(store, "a").await;
    let bot = agent(store, &a, "bot@agents.test", Some("http://127.0.0.1:9/a")).await;
    let rules = InboundRules::default();
    for n in 0..3 {
        store.ingest(vec![item(&bot, Some(&format!("m{n}@x")), t0(), true)], &rules).await.unwrap();
    }
    assert_eq!(store.claim_due(t0(), LEASE, 10).await.unwrap().len(), 1, "max_in_flight 1");
    let patch = AgentPatch { max_in_flight: Some(5), ..Default::default() };
    store.update_agent(&a, &bot.address, patch, t0()).await.unwrap();
    assert_eq!(store.claim_due(t0(), LEASE, 10).await.unwrap().len(), 2, "the rest once the cap is raised");
    // Without a URL the endpoint's deliveries wait; with one again they resume.
    let park = AgentPatch { webhook_url: Some(None), ..Default::default() };
    store.update_agent(&a, &bot.address, park, t0()).await.unwrap();
    store.ingest(vec![item(&bot, Some("later@x"), t0(), true)], &rules).await.unwrap();
    assert!(store.claim_due(t0(), LEASE, 10).await.unwrap().is_empty());
    let resume = AgentPatch { webhook_url: Some(Some("http://127.0.0.1:9/b".into())), ..Default::default() };
    store.update_agent(&a, &bot.address, resume, t0()).await.unwrap();
    let c = store.claim_due(t0(), LEASE, 10).await.unwrap();
    assert_eq!((c.len(), c[0].url.as_str()), (1, "http://127.0.0.1:9/b"));
}

pub async fn an_agent_deleted_before_the_commit_gets_nothing(store: &dyn Store) {
    let a = account(store, "a").await;
    let old = agent(store, &a, "bot@agents.test", Some("http://127.0.0.1:9/a")).await;
    let looked_up = item(&old, Some("m@x"), t0(), true);
    store.delete_agent(&a, &old.address, t0()).await.unwrap();
    let again = agent(store, &a, "bot@agents.test", Some("http://127.0.0.1:9/b")).await;
    let out = store.ingest(vec![looked_up], &InboundRules::default()).await.unwrap();
    assert_eq!(out, vec![Ingested::AgentGone], "the agent looked up is gone (its address now names another)");
    assert!(store.list_messages(&a, &again.address, Page { after: None, limit: 10 }).await.unwrap().is_empty());
    assert!(store.claim_due(t0(), LEASE, 10).await.unwrap().is_empty(), "no orphan delivery");
}

pub async fn messages_expire_with_the_janitor(store: &dyn Store) {
    let a = account(store, "a").await;
    let bot = agent(store, &a, "bot@agents.test", None).await;
    let rules = InboundRules::default();
    store.ingest(vec![item(&bot, Some("old@x"), t0(), false)], &rules).await.unwrap();
    let later = t0() + rules.message_ttl + Duration::from_secs(1);
    store.delete_expired(later, 5000).await.unwrap();
    assert!(store.list_messages(&a, &bot.address, Page { after: None, limit: 10 }).await.unwrap().is_empty());
}

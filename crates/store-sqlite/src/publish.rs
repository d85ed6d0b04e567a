//! Publishing inside a write round (see `round.rs`): events and their deliveries, fanned out
//! to the account's matching subscriptions.

use crate::rows::*;
use crate::unavailable;
use herald_domain::{DeliveryId, EventId, Filters, to_millis};
use herald_store::codec::{parse_json, to_json as json};
use herald_store::*;

/// Publishes events inside the caller's transaction: each event and one delivery per
/// matching enabled subscription (idempotency keys honoured across the batch).
pub(crate) async fn publish_in<'a>(
    tx: &mut sqlx::SqliteConnection,
    jobs: impl Iterator<Item = (&'a NewEvent, &'a FanoutRules)>,
) -> StoreResult<Vec<Published>> {
    use std::collections::HashMap;
    let mut subscriptions: HashMap<String, Vec<Subscription>> = HashMap::new();
    let mut keys_in_batch: HashMap<(String, String), Published> = HashMap::new();
    let mut events = Vec::new();
    let mut deliveries = Vec::new();
    let mut out = Vec::new();
    for (new, rules) in jobs {
        let now = to_millis(new.created_at);
        let account = new.account_id.as_str().to_owned();
        if let Some(key) = &new.idempotency_key {
            if let Some(p) = keys_in_batch.get(&(account.clone(), key.clone())) {
                out.push(Published { replayed: true, ..p.clone() });
                continue;
            }
            let prior = sqlx::query(
                "SELECT id, type, created_at, deliveries FROM events WHERE account_id = ? AND idempotency_key = ?",
            )
            .bind(&account)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
            if let Some(r) = prior {
                let created: i64 = get(&r, 2)?;
                if rules.idempotency_holds(created, now) {
                    out.push(Published {
                        id: EventId::from_trusted(get(&r, 0)?),
                        event_type: get(&r, 1)?,
                        created_at: herald_domain::from_millis(created),
                        deliveries: get::<i64>(&r, 3)? as u32,
                        replayed: true,
                    });
                    continue;
                }
                // The key's window has passed: it may name a new event.
                sqlx::query("UPDATE events SET idempotency_key = NULL WHERE account_id = ? AND idempotency_key = ?")
                    .bind(&account)
                    .bind(key)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
        }
        if !subscriptions.contains_key(&account) {
            let rows = sqlx::query(
                "SELECT id, events, filters, retry_schedule, ordering FROM webhooks \
                 WHERE account_id = ? AND enabled = 1 AND agent IS NULL",
            )
            .bind(&account)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            let subs = rows
                .iter()
                .map(|r| {
                    Ok(Subscription {
                        id: get(r, 0)?,
                        events: parse_json(&get::<String>(r, 1)?)?,
                        filters: parse_json(&get::<String>(r, 2)?)?,
                        schedule_steps: get::<Option<String>>(r, 3)?
                            .map(|s| herald_store::control::schedule_from_json(&s).map(|v| v.len()))
                            .transpose()?,
                        fifo: get::<String>(r, 4)? == herald_domain::OrderingMode::Fifo.as_str(),
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            subscriptions.insert(account.clone(), subs);
        }
        let targets: Vec<&Subscription> = subscriptions[&account]
            .iter()
            .filter(|s| s.filters.wants(&s.events, &new.event_type, &new.routing))
            .collect();
        let envelope =
            std::str::from_utf8(new.envelope.as_bytes()).map_err(|e| StoreError::Invalid(Box::new(e)).counted())?;
        events.push(serde_json::json!([
            new.id.as_str(),
            account,
            new.event_type,
            envelope,
            new.routing.agent_id,
            new.routing.conversation_id,
            json(&new.routing.labels),
            new.idempotency_key,
            targets.len(),
            now,
            rules.event_expiry(now),
            new.ordering_key,
        ]));
        for wh in &targets {
            deliveries.push(serde_json::json!([
                DeliveryId::generate().as_str(),
                account,
                wh.id,
                new.id.as_str(),
                new.event_type,
                wh.schedule_steps.map_or(rules.max_attempts, |n| n as u32 + 1),
                now,
                rules.delivery_expiry(now),
                wh.fifo.then(|| new.ordering_key.as_deref().unwrap_or_default()),
            ]));
        }
        let p = Published {
            id: new.id.clone(),
            event_type: new.event_type.clone(),
            created_at: new.created_at,
            deliveries: targets.len() as u32,
            replayed: false,
        };
        if let Some(key) = &new.idempotency_key {
            keys_in_batch.insert((account.clone(), key.clone()), p.clone());
        }
        out.push(p);
    }
    if !events.is_empty() {
        sqlx::query(
            "INSERT INTO events (id, account_id, type, payload, agent_id, conversation_id, labels, idempotency_key, \
             deliveries, created_at, expires_at, ordering_key) \
             SELECT value ->> 0, value ->> 1, value ->> 2, CAST(value ->> 3 AS BLOB), value ->> 4, value ->> 5, \
                    value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11 FROM json_each(?)",
        )
        .bind(json(&events))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    if !deliveries.is_empty() {
        sqlx::query(
            "INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, \
             max_attempts, next_retry_at, created_at, expires_at, ordering_key) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, 'pending', 0, \
                    value ->> 5, value ->> 6, value ->> 6, value ->> 7, value ->> 8 FROM json_each(?) ORDER BY key",
        )
        .bind(json(&deliveries))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    Ok(out)
}

/// An enabled webhook of the account, as fan-out sees it.
struct Subscription {
    id: String,
    events: Vec<String>,
    filters: Filters,
    /// Steps of its own retry schedule (`None`: the server's).
    schedule_steps: Option<usize>,
    fifo: bool,
}

//! Recording attempt outcomes inside a write round: set-based compare-and-set on
//! (id, lease token, pending).

use crate::unavailable;
use herald_domain::to_millis;
use herald_store::codec::to_json as json;
use herald_store::plan::{self, OutcomeRow, touched_webhooks};
use herald_store::*;
use time::OffsetDateTime;

/// Records `outcomes` (ids unique; see `round::record`) inside the round's transaction.
pub(crate) async fn record_in(
    tx: &mut sqlx::SqliteConnection,
    outcomes: &[Outcome],
    now: OffsetDateTime,
) -> StoreResult<Recorded> {
    let now_ms = to_millis(now);
    // Set-based: one UPDATE for all outcomes (compare-and-set on id, lease token and
    // pending), one INSERT for the attempts of those that applied.
    let rows: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            let r = OutcomeRow::of(o, now_ms);
            serde_json::json!([
                r.id,
                r.token,
                r.status,
                r.attempt,
                r.error,
                (r.status_code != 0).then_some(r.status_code),
                r.started_ms,
                r.next_ms,
                r.duration_ms,
                r.status_code,
                r.response_body,
                r.kind,
            ])
        })
        .collect();
    let applied: Vec<String> = sqlx::query_scalar(
        "UPDATE deliveries SET status = o.value ->> 2, attempts = o.value ->> 3, last_error = o.value ->> 4, \
           last_status_code = o.value ->> 5, last_attempt_at = o.value ->> 6, next_retry_at = o.value ->> 7, \
           lease_token = NULL \
         FROM json_each(?) AS o \
         WHERE deliveries.id = o.value ->> 0 AND deliveries.lease_token = o.value ->> 1 \
           AND deliveries.status = 'pending' \
         RETURNING deliveries.id",
    )
    .bind(json(&rows))
    .fetch_all(&mut *tx)
    .await
    .map_err(unavailable)?;
    // Ids are unique in the batch (`round::record` sees to it), so the returned ids say which applied.
    let applied: std::collections::HashSet<String> = applied.into_iter().collect();
    let was_applied = |o: &Outcome| applied.contains(o.delivery_id.as_str());
    let done: Vec<&serde_json::Value> =
        outcomes.iter().zip(&rows).filter(|(o, _)| was_applied(o)).map(|(_, r)| r).collect();
    if !done.is_empty() {
        sqlx::query(
            "INSERT OR REPLACE INTO attempts (delivery_id, number, started_at, duration_ms, status_code, \
               error, response_body, kind) \
             SELECT value ->> 0, value ->> 3, value ->> 6, value ->> 8, value ->> 9, value ->> 4, value ->> 10, \
               value ->> 11 \
             FROM json_each(?)",
        )
        .bind(json(&done))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    let (delivered, gone) = touched_webhooks(outcomes, was_applied);
    if !delivered.is_empty() {
        // At most once a second per webhook: no write amplification on busy webhooks.
        sqlx::query(
            "UPDATE webhooks SET last_delivered_at = ?1 WHERE id IN (SELECT value FROM json_each(?2)) \
             AND (last_delivered_at IS NULL OR last_delivered_at < ?1 - ?3)",
        )
        .bind(now_ms)
        .bind(json(&delivered))
        .bind(plan::LAST_DELIVERED_RESOLUTION_MS)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    adapt_limits(tx, &herald_store::control::samples_by_webhook(outcomes, was_applied), now_ms).await?;
    let pauses = herald_store::control::pauses(outcomes, was_applied, now_ms);
    if !pauses.is_empty() {
        // A receiver's Retry-After pauses its whole webhook.
        sqlx::query(
            "UPDATE webhooks SET ready_at = MAX(ready_at, p.value ->> 1) FROM json_each(?) AS p \
             WHERE webhooks.id = p.value ->> 0",
        )
        .bind(json(&pauses))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    let mut disabled_gone = Vec::new();
    if !gone.is_empty() {
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE webhooks SET enabled = 0, disabled_reason = ?, auto_disabled_at = ?, updated_at = ? \
             WHERE enabled = 1 AND id IN (SELECT value FROM json_each(?)) RETURNING id",
        )
        .bind(herald_domain::DisabledReason::Gone.as_str())
        .bind(now_ms)
        .bind(now_ms)
        .bind(json(&gone))
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        disabled_gone = ids.into_iter().map(herald_domain::WebhookId::from_trusted).collect();
    }
    Ok(Recorded { applied: outcomes.iter().map(was_applied).collect(), disabled_gone })
}

/// Steps the adaptive in-flight limit of each adaptive webhook in `samples`.
async fn adapt_limits(
    tx: &mut sqlx::SqliteConnection,
    samples: &[(String, Vec<herald_domain::adaptive::Sample>)],
    now_ms: i64,
) -> StoreResult<()> {
    if samples.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = samples.iter().map(|(w, _)| w.as_str()).collect();
    let rows: Vec<(String, i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT id, max_in_flight, effective_max_in_flight, adaptive_state FROM webhooks \
         WHERE concurrency = 'adaptive' AND id IN (SELECT value FROM json_each(?))",
    )
    .bind(json(&ids))
    .fetch_all(&mut *tx)
    .await
    .map_err(unavailable)?;
    for (id, max, effective, state) in rows {
        let Some((_, s)) = samples.iter().find(|(w, _)| *w == id) else { continue };
        let (limit, state) = herald_store::control::adapt(effective as u32, max as u32, state.as_deref(), s, now_ms)?;
        sqlx::query("UPDATE webhooks SET effective_max_in_flight = ?, adaptive_state = ? WHERE id = ?")
            .bind(i64::from(limit))
            .bind(state)
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

//! Recording attempt outcomes: one set-based compare-and-set on (id, lease token, pending).

use crate::{PgStore, unavailable};
use herald_domain::to_millis;
use herald_store::plan::{self, OutcomeRow, touched_webhooks};
use herald_store::*;
use time::OffsetDateTime;

impl PgStore {
    pub(crate) async fn apply_outcomes(&self, outcomes: &[Outcome], now: OffsetDateTime) -> StoreResult<Recorded> {
        let now_ms = to_millis(now);
        let mut ids = Vec::new();
        let mut tokens = Vec::new();
        let mut statuses = Vec::new();
        let mut attempts = Vec::new();
        let mut errors: Vec<Option<String>> = Vec::new();
        let mut codes: Vec<i64> = Vec::new();
        let mut started = Vec::new();
        let mut nexts = Vec::new();
        let mut durations = Vec::new();
        let mut bodies: Vec<Option<String>> = Vec::new();
        let mut kinds: Vec<&str> = Vec::new();
        for r in outcomes.iter().map(|o| OutcomeRow::of(o, now_ms)) {
            ids.push(r.id);
            tokens.push(r.token);
            statuses.push(r.status.to_owned());
            attempts.push(r.attempt);
            errors.push(r.error);
            codes.push(r.status_code);
            started.push(r.started_ms);
            nexts.push(r.next_ms);
            durations.push(r.duration_ms);
            bodies.push(r.response_body);
            kinds.push(r.kind);
        }
        let mut tx = self.begin_soft().await?;
        let applied: Vec<(String, String)> = sqlx::query_as(
            "WITH o AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
               $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::text[]) \
               AS o(id, token, status, attempt, error, code, started, next, duration, body, kind)), \
             upd AS ( \
               UPDATE deliveries d SET status = o.status, attempts = o.attempt, last_error = o.error, \
                 last_status_code = NULLIF(o.code, 0), last_attempt_at = o.started, next_retry_at = o.next, \
                 lease_token = NULL \
               FROM o WHERE d.id = o.id AND d.lease_token = o.token AND d.status = 'pending' \
               RETURNING d.id, o.token), \
             ins AS ( \
               INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code, error, response_body, kind) \
               SELECT o.id, o.attempt, o.started, o.duration, o.code, o.error, o.body, o.kind FROM o JOIN upd ON upd.id = o.id AND upd.token = o.token \
               ON CONFLICT (delivery_id, number) DO UPDATE SET started_at = EXCLUDED.started_at, \
                 duration_ms = EXCLUDED.duration_ms, status_code = EXCLUDED.status_code, error = EXCLUDED.error, \
                 response_body = EXCLUDED.response_body, kind = EXCLUDED.kind) \
             SELECT id, token FROM upd",
        )
        .bind(&ids)
        .bind(&tokens)
        .bind(&statuses)
        .bind(&attempts)
        .bind(&errors)
        .bind(&codes)
        .bind(&started)
        .bind(&nexts)
        .bind(&durations)
        .bind(&bodies)
        .bind(&kinds)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        // Keyed by (id, lease token): two outcomes of one delivery in a batch (a lease taken
        // over) never both count.
        let applied: std::collections::HashSet<(String, String)> = applied.into_iter().collect();
        let was_applied = |o: &Outcome| applied.contains(&(o.delivery_id.to_string(), o.lease_token.clone()));
        let (delivered, gone) = touched_webhooks(outcomes, was_applied);
        let samples = herald_store::control::samples_by_webhook(outcomes, was_applied);
        let pauses = herald_store::control::pauses(outcomes, was_applied, now_ms);
        // Lock every webhook row this batch changes, once and in id order, before changing
        // any: two recorders (or a recorder and a claim's token update) then never hold one
        // row each while waiting for the other's.
        let all: Vec<&str> = samples.iter().map(|(w, _)| w.as_str()).collect();
        let changed: Vec<&str> =
            gone.iter().map(String::as_str).chain(pauses.iter().map(|(w, _)| w.as_str())).collect();
        sqlx::query(
            "SELECT id FROM webhooks WHERE (id = ANY($1) AND concurrency = 'adaptive') OR id = ANY($2) \
               OR (id = ANY($3) AND (last_delivered_at IS NULL OR last_delivered_at < $4 - $5)) \
             ORDER BY id FOR UPDATE",
        )
        .bind(&all)
        .bind(&changed)
        .bind(&delivered)
        .bind(now_ms)
        .bind(plan::LAST_DELIVERED_RESOLUTION_MS)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if !delivered.is_empty() {
            // At most once a second per webhook: the row is hot (claims lock it).
            sqlx::query(
                "UPDATE webhooks SET last_delivered_at = $1 WHERE id = ANY($2) \
                 AND (last_delivered_at IS NULL OR last_delivered_at < $1 - $3)",
            )
            .bind(now_ms)
            .bind(&delivered)
            .bind(plan::LAST_DELIVERED_RESOLUTION_MS)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        adapt_limits(&mut tx, &samples, now_ms).await?;
        if !pauses.is_empty() {
            // A receiver's Retry-After pauses its whole webhook.
            let (ids, until): (Vec<String>, Vec<i64>) = pauses.into_iter().unzip();
            sqlx::query(
                "UPDATE webhooks w SET ready_at = GREATEST(w.ready_at, p.until) \
                 FROM UNNEST($1::text[], $2::bigint[]) AS p(id, until) WHERE w.id = p.id",
            )
            .bind(&ids)
            .bind(&until)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        let mut disabled_gone = Vec::new();
        if !gone.is_empty() {
            let ids: Vec<String> = sqlx::query_scalar(
                "UPDATE webhooks SET enabled = false, disabled_reason = $3, auto_disabled_at = $1, \
                 updated_at = $1 WHERE enabled AND id = ANY($2) RETURNING id",
            )
            .bind(now_ms)
            .bind(&gone)
            .bind(herald_domain::DisabledReason::Gone.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            disabled_gone = ids.into_iter().map(herald_domain::WebhookId::from_trusted).collect();
        }
        tx.commit().await.map_err(unavailable)?;
        // Slots were freed: any replica may claim more of these webhooks.
        self.wake_local();
        self.notify_soon();
        Ok(Recorded { applied: outcomes.iter().map(was_applied).collect(), disabled_gone })
    }
}

/// Steps the adaptive in-flight limit of each adaptive webhook in `samples` (their rows are
/// locked, so two replicas recording at once step it one after the other).
async fn adapt_limits(
    tx: &mut sqlx::PgConnection,
    samples: &[(String, Vec<herald_domain::adaptive::Sample>)],
    now_ms: i64,
) -> StoreResult<()> {
    if samples.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = samples.iter().map(|(w, _)| w.as_str()).collect();
    let rows: Vec<(String, i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT id, max_in_flight, effective_max_in_flight, adaptive_state FROM webhooks \
         WHERE concurrency = 'adaptive' AND id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(unavailable)?;
    let (mut ids, mut limits, mut states) = (Vec::new(), Vec::new(), Vec::new());
    for (id, max, effective, state) in rows {
        let Some((_, s)) = samples.iter().find(|(w, _)| *w == id) else { continue };
        let (limit, state) = herald_store::control::adapt(effective as u32, max as u32, state.as_deref(), s, now_ms)?;
        ids.push(id);
        limits.push(i64::from(limit));
        states.push(state);
    }
    sqlx::query(
        "UPDATE webhooks w SET effective_max_in_flight = a.limit_, adaptive_state = a.state \
         FROM UNNEST($1::text[], $2::bigint[], $3::text[]) AS a(id, limit_, state) WHERE w.id = a.id",
    )
    .bind(&ids)
    .bind(&limits)
    .bind(&states)
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    Ok(())
}

//! Answers of idempotent requests (rotate-secret), kept for a window.

use crate::{SqliteStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, to_millis};
use herald_store::*;
use sqlx::{Sqlite, Transaction};
use time::OffsetDateTime;

#[async_trait]
impl Idempotency for SqliteStore {
    async fn idempotent_response(
        &self,
        account: &AccountId,
        scope: &str,
        key: &str,
        since: OffsetDateTime,
    ) -> StoreResult<Option<String>> {
        let mut conn = self.write.acquire().await.map_err(unavailable)?;
        find_answer(&mut conn, self.cipher.as_deref(), account, scope, key, since).await
    }

    async fn save_idempotent_response(
        &self,
        account: &AccountId,
        scope: &str,
        key: &str,
        response: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let answer = IdempotentAnswer {
            scope: scope.to_owned(),
            key: key.to_owned(),
            since: now,
            response: response.to_owned(),
        };
        save_answer(&mut tx, self.cipher.as_deref(), account, &answer, now).await?;
        tx.commit().await.map_err(unavailable)
    }
}

/// Stores (or replaces) the answer of an idempotent request inside the caller's transaction.
pub(crate) async fn save_answer(
    tx: &mut Transaction<'static, Sqlite>,
    cipher: Option<&herald_store::codec::SecretCipher>,
    account: &AccountId,
    answer: &IdempotentAnswer,
    now: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO idempotency (account_id, scope, key, response, created_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (account_id, scope, key) DO UPDATE SET response = excluded.response, created_at = excluded.created_at",
    )
    .bind(account.as_str())
    .bind(&answer.scope)
    .bind(&answer.key)
    .bind(herald_store::codec::seal(cipher, &answer.response))
    .bind(to_millis(now))
    .execute(&mut **tx)
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// The answer stored under an idempotency key since `since`, opened, if any (on the
/// caller's connection or transaction, so a read-check-write can be one transaction).
pub(crate) async fn find_answer(
    conn: &mut sqlx::SqliteConnection,
    cipher: Option<&herald_store::codec::SecretCipher>,
    account: &AccountId,
    scope: &str,
    key: &str,
    since: OffsetDateTime,
) -> StoreResult<Option<String>> {
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT response FROM idempotency WHERE account_id = ? AND scope = ? AND key = ? AND created_at >= ?",
    )
    .bind(account.as_str())
    .bind(scope)
    .bind(key)
    .bind(to_millis(since))
    .fetch_optional(conn)
    .await
    .map_err(unavailable)?;
    stored.map(|s| herald_store::codec::open(cipher, s)).transpose()
}

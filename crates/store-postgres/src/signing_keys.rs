//! Each account's Ed25519 signing keys (private keys sealed like secrets), and the key
//! rings a claim hands to the engine.

use crate::{PgStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, KeyRing, SigningKeyPair, to_millis};
use herald_store::codec::{SecretCipher, open_key_ring, seal};
use herald_store::*;
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;

#[async_trait]
impl SigningKeys for PgStore {
    async fn signing_keys(&self, account: &AccountId, now: OffsetDateTime) -> StoreResult<Vec<SigningKeyInfo>> {
        let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT kid, public_key, created_at, expires_at FROM signing_keys \
             WHERE account_id = $1 AND (expires_at IS NULL OR expires_at > $2) \
             ORDER BY expires_at IS NOT NULL, created_at DESC, kid",
        )
        .bind(account.as_str())
        .bind(to_millis(now))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(rows.into_iter().map(info).collect())
    }

    async fn ensure_signing_key(
        &self,
        account: &AccountId,
        key: &SigningKeyPair,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        // The partial unique index decides between concurrent callers.
        let done = sqlx::query(
            "INSERT INTO signing_keys (kid, account_id, public_key, private_key, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id) WHERE expires_at IS NULL DO NOTHING",
        )
        .bind(key.kid())
        .bind(account.as_str())
        .bind(key.public().to_whpk())
        .bind(seal(self.cipher.as_deref(), &key.expose_secret()))
        .bind(to_millis(now))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() == 1)
    }

    async fn rotate_signing_key(
        &self,
        account: &AccountId,
        key: &SigningKeyPair,
        grace_until: OffsetDateTime,
        keep: usize,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let now_ms = to_millis(now);
        let mut tx = self.begin().await?;
        // Rotations of one account take turns (each then sees the other's current key). NO KEY:
        // inserts referencing the account (webhooks, sessions) are not held up.
        sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR NO KEY UPDATE")
            .bind(account.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("DELETE FROM signing_keys WHERE account_id = $1 AND expires_at <= $2")
            .bind(account.as_str())
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let sealed = seal(self.cipher.as_deref(), &key.expose_secret());
        // A first key made meanwhile by `ensure_signing_key` (which takes no account lock)
        // is replaced like any current key: at most one more round.
        for _ in 0..2 {
            sqlx::query("UPDATE signing_keys SET expires_at = $1 WHERE account_id = $2 AND expires_at IS NULL")
                .bind(to_millis(grace_until).max(now_ms))
                .bind(account.as_str())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            let inserted = sqlx::query(
                "INSERT INTO signing_keys (kid, account_id, public_key, private_key, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id) WHERE expires_at IS NULL DO NOTHING",
            )
            .bind(key.kid())
            .bind(account.as_str())
            .bind(key.public().to_whpk())
            .bind(&sealed)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            if inserted.rows_affected() == 1 {
                break;
            }
        }
        sqlx::query(
            "DELETE FROM signing_keys WHERE account_id = $1 AND expires_at IS NOT NULL AND kid NOT IN \
               (SELECT kid FROM signing_keys WHERE account_id = $1 AND expires_at IS NOT NULL \
                ORDER BY expires_at DESC, created_at DESC LIMIT $2)",
        )
        .bind(account.as_str())
        .bind(keep as i64)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }
}

fn info((kid, public_key, created_at, expires_at): (String, String, i64, Option<i64>)) -> SigningKeyInfo {
    SigningKeyInfo {
        kid,
        public_key,
        created_at: herald_domain::from_millis(created_at),
        expires_at: expires_at.map(herald_domain::from_millis),
    }
}

/// The key ring of each account, for a claim's Ed25519 deliveries (see
/// [`open_key_ring`]: `None` when it has no usable key). One statement for all of them.
pub(crate) async fn key_rings(
    conn: &mut sqlx::PgConnection,
    cipher: Option<&SecretCipher>,
    accounts: &[String],
    now_ms: i64,
) -> StoreResult<HashMap<String, Option<Arc<KeyRing>>>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT account_id, private_key FROM signing_keys \
         WHERE account_id = ANY($1) AND (expires_at IS NULL OR expires_at > $2) \
         ORDER BY account_id, expires_at IS NOT NULL, created_at DESC",
    )
    .bind(accounts)
    .bind(now_ms)
    .fetch_all(conn)
    .await
    .map_err(unavailable)?;
    let mut sealed: HashMap<String, Vec<String>> = accounts.iter().map(|a| (a.clone(), Vec::new())).collect();
    for (account, key) in rows {
        sealed.entry(account).or_default().push(key);
    }
    Ok(sealed
        .into_iter()
        .map(|(account, keys)| {
            let ring = open_key_ring(cipher, &account, keys).map(Arc::new);
            (account, ring)
        })
        .collect())
}

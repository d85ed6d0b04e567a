//! Each account's Ed25519 signing keys (private keys sealed like secrets), and the key
//! rings a claim hands to the engine.

use crate::{SqliteStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, KeyRing, SigningKeyPair, to_millis};
use herald_store::codec::{SecretCipher, open_key_ring, seal};
use herald_store::*;
use sqlx::SqliteConnection;
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;

#[async_trait]
impl SigningKeys for SqliteStore {
    async fn signing_keys(&self, account: &AccountId, now: OffsetDateTime) -> StoreResult<Vec<SigningKeyInfo>> {
        let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT kid, public_key, created_at, expires_at FROM signing_keys \
             WHERE account_id = ? AND (expires_at IS NULL OR expires_at > ?) \
             ORDER BY expires_at IS NOT NULL, created_at DESC, kid",
        )
        .bind(account.as_str())
        .bind(to_millis(now))
        .fetch_all(&self.read)
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
        let done = sqlx::query(
            "INSERT INTO signing_keys (kid, account_id, public_key, private_key, created_at) \
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS \
               (SELECT 1 FROM signing_keys WHERE account_id = ?2 AND expires_at IS NULL)",
        )
        .bind(key.kid())
        .bind(account.as_str())
        .bind(key.public().to_whpk())
        .bind(seal(self.cipher.as_deref(), &key.expose_secret()))
        .bind(to_millis(now))
        .execute(&self.write)
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
        // The single writer serialises rotations.
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM signing_keys WHERE account_id = ? AND expires_at <= ?")
            .bind(account.as_str())
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("UPDATE signing_keys SET expires_at = ? WHERE account_id = ? AND expires_at IS NULL")
            .bind(to_millis(grace_until).max(now_ms))
            .bind(account.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "DELETE FROM signing_keys WHERE account_id = ?1 AND expires_at IS NOT NULL AND kid NOT IN \
               (SELECT kid FROM signing_keys WHERE account_id = ?1 AND expires_at IS NOT NULL \
                ORDER BY expires_at DESC, created_at DESC LIMIT ?2)",
        )
        .bind(account.as_str())
        .bind(keep as i64)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, account_id, public_key, private_key, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(key.kid())
        .bind(account.as_str())
        .bind(key.public().to_whpk())
        .bind(seal(self.cipher.as_deref(), &key.expose_secret()))
        .bind(now_ms)
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
/// [`open_key_ring`]: `None` when it has no usable key).
pub(crate) async fn key_rings(
    conn: &mut SqliteConnection,
    cipher: Option<&SecretCipher>,
    accounts: &[&str],
    now_ms: i64,
) -> StoreResult<HashMap<String, Option<Arc<KeyRing>>>> {
    let mut rings = HashMap::new();
    for account in accounts {
        if rings.contains_key(*account) {
            continue;
        }
        let sealed: Vec<String> = sqlx::query_scalar(
            "SELECT private_key FROM signing_keys WHERE account_id = ? AND (expires_at IS NULL OR expires_at > ?) \
             ORDER BY expires_at IS NOT NULL, created_at DESC",
        )
        .bind(*account)
        .bind(now_ms)
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
        rings.insert((*account).to_owned(), open_key_ring(cipher, account, sealed).map(Arc::new));
    }
    Ok(rings)
}

//! Accounts and their API keys (hashes only).

use crate::rows::*;
use crate::{SqliteStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, to_millis};
use herald_store::*;
use time::OffsetDateTime;

#[async_trait]
impl Accounts for SqliteStore {
    async fn create_account(&self, name: &str, key_hash: &str, now: OffsetDateTime) -> StoreResult<Account> {
        let id = AccountId::generate();
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)")
            .bind(id.as_str())
            .bind(name)
            .bind(to_millis(now))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at) VALUES (?, ?, ?)")
            .bind(key_hash)
            .bind(id.as_str())
            .bind(to_millis(now))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Account { id, name: name.to_owned(), created_at: now })
    }

    async fn add_api_key(&self, account: &AccountId, key_hash: &str, now: OffsetDateTime) -> StoreResult<()> {
        sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at) VALUES (?, ?, ?)")
            .bind(key_hash)
            .bind(account.as_str())
            .bind(to_millis(now))
            .execute(&self.write)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn account_count(&self) -> StoreResult<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(&self.write).await.map_err(unavailable)?;
        Ok(n as u64)
    }

    async fn account_by_key_hash(&self, key_hash: &str) -> StoreResult<Option<Account>> {
        let row = sqlx::query(
            "SELECT a.id, a.name, a.created_at FROM api_keys k JOIN accounts a ON a.id = k.account_id \
             WHERE k.key_hash = ?",
        )
        .bind(key_hash)
        .fetch_optional(&self.read)
        .await
        .map_err(unavailable)?;
        row.map(|r| account_from_row(&r)).transpose()
    }

    async fn account_by_name(&self, name: &str) -> StoreResult<Option<Account>> {
        let row = sqlx::query("SELECT id, name, created_at FROM accounts WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.map(|r| account_from_row(&r)).transpose()
    }

    async fn account_exists(&self, account: &AccountId) -> StoreResult<bool> {
        account_exists(&self.read, account).await
    }
}

/// Whether `account` exists, read through `on` (a pool, or the caller's transaction in
/// library mode).
pub(crate) async fn account_exists<'e>(
    on: impl sqlx::Executor<'e, Database = sqlx::Sqlite>,
    account: &AccountId,
) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE id = ?")
        .bind(account.as_str())
        .fetch_one(on)
        .await
        .map_err(unavailable)?;
    Ok(n > 0)
}

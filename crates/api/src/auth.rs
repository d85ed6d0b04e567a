//! Bearer-key authentication. Keys are looked up by their SHA-256; a short cache keeps
//! the hot publish path off the database.

use crate::AppState;
use crate::problem::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use herald_domain::ApiKey;
use herald_store::Account;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CACHE_TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(crate) struct KeyCache(Mutex<HashMap<String, (Account, Instant)>>);

impl KeyCache {
    fn get(&self, hash: &str) -> Option<Account> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(hash).filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(a, _)| a.clone())
    }

    fn put(&self, hash: String, account: Account) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(hash, (account, Instant::now()));
    }
}

/// The authenticated account of a request.
pub struct Authed(pub Account);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(ApiError::Unauthorized)?;
        let token =
            header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).ok_or(ApiError::Unauthorized)?;
        let key = ApiKey::parse(token.trim()).ok_or(ApiError::Unauthorized)?;
        let hash = key.hash();
        if let Some(a) = state.keys.get(&hash) {
            return Ok(Authed(a));
        }
        let account = state.store.account_by_key_hash(&hash).await?.ok_or(ApiError::Unauthorized)?;
        state.keys.put(hash, account.clone());
        Ok(Authed(account))
    }
}

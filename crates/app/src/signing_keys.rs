//! Each account's Ed25519 signing keys: created with its first Ed25519 webhook or agent,
//! rotated with a grace period, published as a JWK Set.

use crate::{Admit, AppError, AppResult, FieldError, Herald, MAX_GRACE};
use herald_domain::asymmetric::PublicKey;
use herald_domain::{AccountId, SignatureScheme, SigningKeyPair};
use herald_store::{SigningKeyInfo, StoreError};
use std::time::Duration;

/// Reads a `signature` field: `hmac` or `ed25519`.
pub(crate) fn signature_scheme(field: &str, s: &str, errs: &mut Vec<FieldError>) -> Option<SignatureScheme> {
    let scheme = SignatureScheme::parse(s);
    if scheme.is_none() {
        errs.push(FieldError { field: field.into(), message: "must be \"hmac\" or \"ed25519\"".into() });
    }
    scheme
}

impl Herald {
    /// Gives the account a signing key unless it has one (before its first Ed25519 webhook
    /// or agent is stored, so that one's deliveries can be signed).
    pub(crate) async fn ensure_signing_key(&self, account: &AccountId) -> AppResult<()> {
        self.store.ensure_signing_key(account, &SigningKeyPair::generate(), self.clock.now()).await?;
        Ok(())
    }

    /// The account's current key and those still in grace, newest first (public parts).
    pub async fn signing_keys(&self, account: &AccountId) -> AppResult<Vec<SigningKeyInfo>> {
        Ok(self.store.signing_keys(account, self.clock.now()).await?)
    }

    /// Makes a fresh key current; the one it replaces signs (beside it) and stays in the JWK
    /// Set for `grace` more (at most 5 keys in grace, like previous secrets: those that
    /// sign longest). Answers the keys after the rotation.
    pub async fn rotate_signing_key(
        &self,
        account: &AccountId,
        grace: Duration,
        admit: impl Admit,
    ) -> AppResult<Vec<SigningKeyInfo>> {
        if grace > MAX_GRACE {
            return Err(AppError::field("grace_period_seconds", "must be between 0 and 604800 (7 days)"));
        }
        admit()?;
        let now = self.clock.now();
        let keep = self.config.previous_secrets_kept;
        self.store.rotate_signing_key(account, &SigningKeyPair::generate(), now + grace, keep, now).await?;
        self.signing_keys(account).await
    }

    /// The account's JWK Set (RFC 7517): its current key and those in grace, as RFC 8037
    /// `OKP`/`Ed25519` keys. Anyone may read it; an unknown account is not found.
    pub async fn jwks(&self, account_public_id: &str) -> AppResult<serde_json::Value> {
        let Some(account) = AccountId::parse(account_public_id) else { return Err(AppError::NotFound("account")) };
        if !self.store.account_exists(&account).await? {
            return Err(AppError::NotFound("account"));
        }
        let keys = self
            .signing_keys(&account)
            .await?
            .iter()
            .map(|k| {
                PublicKey::from_whpk(&k.public_key)
                    .map(|p| p.jwk())
                    .map_err(|e| AppError::Internal(StoreError::corrupt("a public signing key", e)))
            })
            .collect::<AppResult<Vec<_>>>()?;
        Ok(serde_json::json!({ "keys": keys }))
    }
}

-- Ed25519 signatures (SPEC §11): each account's signing keys, and which scheme each
-- webhook (an agent's target too) signs with. Webhooks from before keep HMAC.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,             -- RFC 7638 thumbprint of the public key
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    public_key   TEXT NOT NULL,                -- whpk_…
    private_key  TEXT NOT NULL,                -- whsk_…, sealed with HERALD_SECRET_KEY when set
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER                       -- NULL: the current key; else the end of its grace
);
-- One current key per account (rotation replaces it in one transaction).
CREATE UNIQUE INDEX signing_keys_current ON signing_keys (account_id) WHERE expires_at IS NULL;
CREATE INDEX signing_keys_account ON signing_keys (account_id, created_at);
ALTER TABLE webhooks ADD COLUMN signature TEXT NOT NULL DEFAULT 'hmac' CHECK (signature IN ('hmac', 'ed25519'));

-- Herald on SQLite. Instants are INTEGER milliseconds since the Unix epoch.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    key_hash    TEXT PRIMARY KEY,          -- SHA-256 hex of the key; the key itself is never stored
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    created_at  INTEGER NOT NULL
);

CREATE TABLE event_types (
    account_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, name)
);

CREATE TABLE webhooks (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL,
    url               TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    events            TEXT NOT NULL,       -- JSON array of event type names
    filters           TEXT NOT NULL,       -- JSON {agent_ids, conversation_ids, labels}
    enabled           INTEGER NOT NULL,
    disabled_reason   TEXT,
    auto_disabled_at  INTEGER,
    max_in_flight     INTEGER NOT NULL,
    secret            TEXT NOT NULL,
    previous_secrets  TEXT NOT NULL DEFAULT '[]',  -- JSON [{secret, expires_at}]
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    last_delivered_at INTEGER
);
CREATE INDEX webhooks_account ON webhooks (account_id, id);

CREATE TABLE events (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL,
    type             TEXT NOT NULL,
    payload          BLOB NOT NULL,        -- the envelope bytes, POSTed verbatim
    agent_id         TEXT,
    conversation_id  TEXT,
    labels           TEXT NOT NULL DEFAULT '[]',
    idempotency_key  TEXT,
    deliveries       INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX events_idempotency ON events (account_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_account ON events (account_id, id);
CREATE INDEX events_expires ON events (expires_at);

CREATE TABLE deliveries (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL,
    webhook_id        TEXT NOT NULL,
    event_id          TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    body              BLOB,                -- overrides the event envelope (per-agent payloads)
    status            TEXT NOT NULL,       -- pending | delivered | failed
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    last_error        TEXT,
    last_status_code  INTEGER,
    last_attempt_at   INTEGER,
    next_retry_at     INTEGER NOT NULL,    -- due time, or lease expiry while leased
    lease_token       TEXT,                -- fencing token of the current lease
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL
);
CREATE INDEX deliveries_webhook_due ON deliveries (webhook_id, next_retry_at) WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (webhook_id, next_retry_at) WHERE status = 'pending' AND lease_token IS NOT NULL;
CREATE INDEX deliveries_due ON deliveries (next_retry_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_expires ON deliveries (expires_at);

CREATE TABLE attempts (
    delivery_id    TEXT NOT NULL,
    number         INTEGER NOT NULL,
    started_at     INTEGER NOT NULL,
    duration_ms    INTEGER NOT NULL,
    status_code    INTEGER NOT NULL,       -- 0 when no response
    error          TEXT,
    response_body  TEXT,                   -- first 4 KiB
    PRIMARY KEY (delivery_id, number)
) WITHOUT ROWID;

-- Herald on PostgreSQL. Instants are BIGINT milliseconds since the Unix epoch, passed in
-- by the application (one clock for every replica's arithmetic, and tests can drive it).

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    key_hash    TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    created_at  BIGINT NOT NULL
);

CREATE TABLE event_types (
    account_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, name)
);

CREATE TABLE webhooks (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL,
    url               TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    events            TEXT NOT NULL,
    filters           TEXT NOT NULL,
    enabled           BOOLEAN NOT NULL,
    disabled_reason   TEXT,
    auto_disabled_at  BIGINT,
    max_in_flight     BIGINT NOT NULL,
    secret            TEXT NOT NULL,
    previous_secrets  TEXT NOT NULL DEFAULT '[]',
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    last_delivered_at BIGINT
);
CREATE INDEX webhooks_account ON webhooks (account_id, id);

CREATE TABLE events (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL,
    type             TEXT NOT NULL,
    payload          BYTEA NOT NULL,
    agent_id         TEXT,
    conversation_id  TEXT,
    labels           TEXT NOT NULL DEFAULT '[]',
    idempotency_key  TEXT,
    deliveries       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
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
    body              BYTEA,
    status            TEXT NOT NULL,
    attempts          BIGINT NOT NULL DEFAULT 0,
    max_attempts      BIGINT NOT NULL,
    last_error        TEXT,
    last_status_code  BIGINT,
    last_attempt_at   BIGINT,
    next_retry_at     BIGINT NOT NULL,
    lease_token       TEXT,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL
);
CREATE INDEX deliveries_webhook_due ON deliveries (webhook_id, next_retry_at) WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (webhook_id, next_retry_at) WHERE status = 'pending' AND lease_token IS NOT NULL;
CREATE INDEX deliveries_due ON deliveries (next_retry_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_expires ON deliveries (expires_at);

CREATE TABLE attempts (
    delivery_id    TEXT NOT NULL,
    number         BIGINT NOT NULL,
    started_at     BIGINT NOT NULL,
    duration_ms    BIGINT NOT NULL,
    status_code    BIGINT NOT NULL,
    error          TEXT,
    response_body  TEXT,
    PRIMARY KEY (delivery_id, number)
);

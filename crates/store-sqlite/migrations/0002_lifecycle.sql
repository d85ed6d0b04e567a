-- Responses of idempotent requests (rotate-secret), kept for the idempotency window.
CREATE TABLE idempotency (
    account_id  TEXT NOT NULL,
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    response    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, scope, key)
);
CREATE INDEX events_account_created ON events (account_id, created_at);
CREATE INDEX deliveries_webhook_created ON deliveries (webhook_id, created_at);

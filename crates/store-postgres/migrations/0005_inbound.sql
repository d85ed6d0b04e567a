-- Inbound mail: agents (addresses hosted here) and the messages accepted for them.
-- An agent's own endpoint is a delivery target kept in `webhooks` with `agent` set (never
-- listed as a webhook, subscribed to nothing), so its deliveries use the same queue.
ALTER TABLE webhooks ADD COLUMN agent TEXT;
ALTER TABLE deliveries ADD COLUMN agent TEXT;
-- A per-agent delivery's message: its Payload is stored without the raw bytes, which each
-- attempt takes from `messages` (stored once).
ALTER TABLE deliveries ADD COLUMN message_id TEXT;

CREATE TABLE agents (
    address     TEXT PRIMARY KEY,          -- lowercased; unique across accounts
    account_id  TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    target_id   TEXT NOT NULL,             -- the webhooks row of its own endpoint
    created_at  BIGINT NOT NULL
);
CREATE INDEX agents_account ON agents (account_id, address);

CREATE TABLE messages (
    id                 TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL,
    agent              TEXT NOT NULL,
    conversation_id    TEXT NOT NULL,
    message_id_header  TEXT,
    dedupe_key         TEXT,               -- NULL once a newer copy may be stored
    parsed             TEXT NOT NULL,      -- JSON ParsedMail
    auth               TEXT NOT NULL,      -- JSON AuthResults
    raw                BYTEA NOT NULL,
    size               BIGINT NOT NULL,
    received_at        BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL
);
-- Per account: an address deleted and created again (perhaps by another account) starts afresh.
CREATE UNIQUE INDEX messages_dedupe ON messages (account_id, agent, dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX messages_by_agent ON messages (account_id, agent, id);
CREATE INDEX messages_by_header ON messages (account_id, agent, message_id_header);
CREATE INDEX messages_expires ON messages (expires_at);

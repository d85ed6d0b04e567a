-- Consumer portal: one-time links, each exchanged once for a session cookie. Only SHA-256
-- hashes of the link token and of the cookie are stored.
CREATE TABLE portal_sessions (
    link_hash     TEXT PRIMARY KEY,
    session_hash  TEXT UNIQUE,           -- set when the link is redeemed
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    read_only     BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,       -- the link's and the session's end
    redeemed_at   BIGINT
);
CREATE INDEX portal_sessions_expires ON portal_sessions (expires_at);

-- Resume links are single use and stored only as a hash of their token; `used_at` is set by the
-- one redemption that wins. Sessions remember when they were (last) offered to mechanics, so a
-- request that goes back to the feed gets a fresh acceptance window.

CREATE TABLE resume_links (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    customer_id TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE INDEX resume_links_expires ON resume_links (expires_at);

ALTER TABLE sessions ADD COLUMN offered_at BIGINT;

UPDATE sessions SET offered_at = waiver_signed_at
    WHERE status = 'pending' AND waiver_signed_at IS NOT NULL;

CREATE INDEX sessions_status_offered ON sessions (status, offered_at);
CREATE INDEX sessions_status_accepted ON sessions (status, accepted_at);

-- Mail to customers goes through an outbox: a row is written in the same transaction as the
-- change that causes it, and a worker on any node claims due rows (a lease in `claimed_until`,
-- taken with one conditional update), sends them, and stamps `sent_at`. A row is never sent
-- again once `sent_at` is set; `failed_at` marks one given up on. `mechanic_name` is the name
-- shown in the app when the mail was queued.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    recipient TEXT NOT NULL,
    mechanic_name TEXT,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT,
    claim_id TEXT,
    sent_at BIGINT,
    failed_at BIGINT,
    last_error TEXT
);

CREATE INDEX mail_outbox_due ON mail_outbox (sent_at, failed_at, next_attempt_at);
CREATE INDEX mail_outbox_session ON mail_outbox (session_id);

-- The mechanic wrote while the customer was away: `unread_since` is when the first such message
-- arrived (cleared when the customer comes back or is mailed); `last_quiet_mail_at` is when the
-- customer was last mailed about it, for one mail per quiet period.
ALTER TABLE sessions ADD COLUMN unread_since BIGINT;
ALTER TABLE sessions ADD COLUMN last_quiet_mail_at BIGINT;

CREATE INDEX sessions_unread ON sessions (unread_since);

-- Photos, video clips and voice notes of a session. The file itself lives in the media store
-- (a directory or an S3 bucket) under a key the server derives from `session_id` and `id`; it is
-- written before this row is committed. `message_id` is set once, by the message that sends it
-- (a conditional update, so one attachment belongs to one message); rows that stay unsent past
-- a grace period are orphans and are deleted with their files. `removed_at` is set when the
-- files are deleted under the retention period (the row stays, so the chat and transcript say
-- what was there); `purged_at` once the store has confirmed the deletion.
-- No foreign key on `message_id`: retention deletes messages and keeps these rows.

CREATE TABLE attachments (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    uploader_id TEXT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL CHECK (kind IN ('image', 'video', 'audio')),
    content_type TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    width BIGINT,
    height BIGINT,
    duration_ms BIGINT,
    has_thumbnail BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    message_id TEXT,
    position BIGINT NOT NULL DEFAULT 0,
    removed_at BIGINT,
    purged_at BIGINT
);

CREATE INDEX attachments_session ON attachments (session_id);
CREATE INDEX attachments_message ON attachments (message_id);
CREATE INDEX attachments_unsent ON attachments (created_at) WHERE message_id IS NULL;
CREATE INDEX attachments_unpurged ON attachments (removed_at) WHERE purged_at IS NULL;

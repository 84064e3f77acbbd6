-- The session clock runs on every node twice a second: it looks up the live sessions whose time
-- is up and those about to end. With an index on (status, ends_at) those lookups read only the
-- sessions due, not every live one.
CREATE INDEX sessions_status_ends ON sessions (status, ends_at);

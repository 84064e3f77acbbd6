-- Mechanic availability as shared state, the history the waiting room estimates from, and what a
-- session leaves behind: the customer's rating, the mechanic's summary and private notes.

-- One row per (server node, mechanic with a connection on that node's request feed), refreshed
-- by the node while the connection lasts; a row not refreshed within the grace period (a node
-- that died) no longer counts.
CREATE TABLE mechanic_presence (
    node_id TEXT NOT NULL,
    mechanic_id TEXT NOT NULL REFERENCES users (id),
    available BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (node_id, mechanic_id)
);

CREATE INDEX mechanic_presence_seen ON mechanic_presence (last_seen_at);

-- The start (Unix milliseconds, a whole UTC hour) of every hour in which a mechanic was available.
CREATE TABLE mechanic_online_hours (
    hour_start BIGINT PRIMARY KEY
);

CREATE TABLE ratings (
    session_id TEXT PRIMARY KEY REFERENCES sessions (id),
    customer_id TEXT NOT NULL REFERENCES users (id),
    stars BIGINT NOT NULL CHECK (stars BETWEEN 1 AND 5),
    comment TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE session_summaries (
    session_id TEXT PRIMARY KEY REFERENCES sessions (id),
    mechanic_id TEXT NOT NULL REFERENCES users (id),
    found TEXT NOT NULL,
    next_steps TEXT NOT NULL,
    urgency TEXT NOT NULL CHECK (urgency IN ('routine', 'soon', 'urgent', 'stop_driving')),
    updated_at BIGINT NOT NULL
);

CREATE TABLE mechanic_notes (
    session_id TEXT NOT NULL REFERENCES sessions (id),
    mechanic_id TEXT NOT NULL REFERENCES users (id),
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, mechanic_id)
);

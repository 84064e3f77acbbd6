-- One schema for SQLite and PostgreSQL: ids are UUID text, timestamps are Unix milliseconds,
-- flags are 0/1, so both engines read and compare them the same way.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('customer', 'mechanic')),
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT,
    password_hash TEXT,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX users_mechanic_email ON users (email) WHERE role = 'mechanic';

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('pending', 'waiting', 'live', 'completed', 'cancelled')),
    plan TEXT NOT NULL,
    plan_minutes BIGINT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES users (id),
    mechanic_id TEXT REFERENCES users (id),
    vehicle_year BIGINT NOT NULL,
    vehicle_make TEXT NOT NULL,
    vehicle_model TEXT NOT NULL,
    vehicle_vin TEXT,
    vehicle_mileage BIGINT,
    concern TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    waiver_signed_at BIGINT,
    waiver_name TEXT,
    waiver_version TEXT,
    accepted_at BIGINT,
    started_at BIGINT,
    ends_at BIGINT,
    ended_at BIGINT,
    end_reason TEXT,
    last_seq BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX sessions_status_created ON sessions (status, created_at);
CREATE INDEX sessions_customer ON sessions (customer_id);
CREATE INDEX sessions_mechanic ON sessions (mechanic_id);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    seq BIGINT NOT NULL,
    sender_id TEXT NOT NULL REFERENCES users (id),
    sender_role TEXT NOT NULL,
    body TEXT NOT NULL,
    client_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (session_id, seq),
    UNIQUE (session_id, sender_id, client_id)
);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

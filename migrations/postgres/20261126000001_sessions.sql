-- Browser sessions: tower-sessions-sqlx-store's PostgresStore schema at its default place
-- (`tower_sessions.session`; on SQLite the store's default is the table `tower_sessions`), owned
-- here so that every table the app uses is created by its own migrations.
-- The cookie carries only the signed session id; the record stays on the server, so any
-- instance can serve any request.
CREATE SCHEMA IF NOT EXISTS tower_sessions;

CREATE TABLE IF NOT EXISTS tower_sessions.session (
    id TEXT PRIMARY KEY NOT NULL,
    data BYTEA NOT NULL,
    expiry_date TIMESTAMPTZ NOT NULL
);

CREATE INDEX IF NOT EXISTS session_expiry_date ON tower_sessions.session (expiry_date);

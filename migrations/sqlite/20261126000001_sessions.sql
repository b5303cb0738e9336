-- Browser sessions (tower-sessions-sqlx-store's schema, owned here so that every table the app
-- uses is created by its own migrations, in step with the PostgreSQL ones).
-- The cookie carries only the signed session id; the record stays on the server.
CREATE TABLE IF NOT EXISTS tower_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    data BLOB NOT NULL,
    expiry_date INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS tower_sessions_expiry_date ON tower_sessions (expiry_date);

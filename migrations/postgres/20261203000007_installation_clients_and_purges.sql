-- The same changes as on SQLite (see migrations/sqlite), in PostgreSQL's types.
ALTER TABLE oauth_flows ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_flows ADD COLUMN organization_id TEXT;

CREATE TABLE installation_purges (
    organization_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    leased_until BIGINT,
    revocation TEXT,
    last_error TEXT,
    completed_at BIGINT,
    PRIMARY KEY (organization_id, client_id)
);
CREATE INDEX installation_purges_pending ON installation_purges (due_at) WHERE completed_at IS NULL;

ALTER TABLE installations ADD COLUMN last_refused_at BIGINT;
ALTER TABLE installations ADD COLUMN last_refused_reason TEXT;


-- Using the delivered clients, and forgetting them. A flow records the client it started with
-- (its code is redeemed by that client only, RFC 6749 §4.1.3) and, when started for an
-- installation, the organization it is for (the token response must name that one, and an
-- uninstall ends the organization's flows in progress).
ALTER TABLE oauth_flows ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_flows ADD COLUMN organization_id TEXT;

-- The uninstall purge: one row per tombstoned installation, written in the transaction that
-- tombstones it, so no uninstall is forgotten if the process dies after answering. Leased by
-- `leased_until` (several instances take turns), done at `completed_at`. `revocation` is what
-- the one revocation attempt came to; `last_error` why a purge attempt must be tried again.
CREATE TABLE installation_purges (
    organization_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    leased_until INTEGER,
    revocation TEXT,
    last_error TEXT,
    completed_at INTEGER,
    PRIMARY KEY (organization_id, client_id)
);
CREATE INDEX installation_purges_pending ON installation_purges (due_at) WHERE completed_at IS NULL;

-- Per installation, the last delivery that named it and was refused, and why (a stale install,
-- one for a tombstone): what an admin needs to see why an install did not take.
ALTER TABLE installations ADD COLUMN last_refused_at INTEGER;
ALTER TABLE installations ADD COLUMN last_refused_reason TEXT;


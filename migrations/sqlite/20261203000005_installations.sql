-- Marketplace installs. A delivery's `webhook-id` is recorded in the transaction that applies
-- it, so a retried or replayed delivery (the same id) changes nothing; ids are kept 7 days,
-- longer than a sender's retry schedule.
CREATE TABLE webhook_deliveries (
    webhook_id TEXT PRIMARY KEY NOT NULL,
    received_at INTEGER NOT NULL
);

-- One row per installation, (organization, client): 'active', or 'uninstalled', a tombstone
-- that never becomes active again. The delivered client secret is sealed under `key_id` with
-- the installation as associated data; NULL once purged. Event times (`*_event_at`) are the
-- Workspace's, when a delivery says; they order events, never the delivery's attempt time.
CREATE TABLE installations (
    organization_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    installation_id TEXT,
    status TEXT NOT NULL,
    installed_event_at INTEGER,
    uninstalled_event_at INTEGER,
    installed_at INTEGER,
    uninstalled_at INTEGER,
    deliveries INTEGER NOT NULL DEFAULT 0,
    key_id TEXT,
    client_secret BLOB,
    PRIMARY KEY (organization_id, client_id)
);

-- At most one active installation per organization, whatever the interleaving of deliveries.
CREATE UNIQUE INDEX installations_one_active ON installations (organization_id)
    WHERE status = 'active';

-- Per organization, the event time of its latest uninstall: an install older than it was gone
-- by then, whichever of the two deliveries arrives first (src/server/installations/lifecycle.rs).
CREATE TABLE installation_organizations (
    organization_id TEXT PRIMARY KEY NOT NULL,
    uninstalled_event_at INTEGER
);

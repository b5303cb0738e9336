-- The OAuth client a connection's grant was issued to (its client_id): a grant can be refreshed
-- and revoked only by that client, and clients will come from more than one place (delivered
-- per organization by install webhooks, beside the configured one). Rows from before this
-- column keep '' (issued to the configured client).
ALTER TABLE connections ADD COLUMN client_id TEXT NOT NULL DEFAULT '';

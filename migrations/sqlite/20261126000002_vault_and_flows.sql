-- The token vault: one row per connection, keyed by (provider, organization, resource) so that
-- other providers and resources fit beside Qentrah's partner API. Token columns hold only
-- XChaCha20-Poly1305 ciphertext (nonce || ciphertext || tag), sealed under `key_id` with the row's
-- key and the column name as associated data.
CREATE TABLE connections (
    provider TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    key_id TEXT NOT NULL,
    access_token BLOB NOT NULL,
    refresh_token BLOB,
    -- Unix seconds; conservative when the server sent no expires_in.
    access_expires_at INTEGER NOT NULL,
    scopes TEXT NOT NULL,
    -- 'active' or 'reconnect_required'
    status TEXT NOT NULL,
    connected_at INTEGER NOT NULL,
    refreshed_at INTEGER,
    updated_at INTEGER NOT NULL,
    -- Bumped on every write; lets a refresh see that another one already happened.
    generation INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (provider, organization_id, resource)
);

-- OAuth flows in progress (RFC 9700 §4.7 / RFC 7636): one row per authorization request, found by
-- the SHA-256 of its `state`, bound to the browser that started it, consumed by the callback.
-- The PKCE verifier is sealed like a token; the state itself is never stored.
CREATE TABLE oauth_flows (
    state_hash BLOB PRIMARY KEY NOT NULL,
    browser_hash BLOB NOT NULL,
    provider TEXT NOT NULL,
    key_id TEXT NOT NULL,
    verifier BLOB NOT NULL,
    return_to TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE INDEX oauth_flows_expires_at ON oauth_flows (expires_at);

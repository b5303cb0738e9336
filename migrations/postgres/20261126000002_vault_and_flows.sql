-- The token vault and the OAuth flows in progress: the same tables as on SQLite (see
-- migrations/sqlite), in PostgreSQL's types. Integers are BIGINT so that both databases decode
-- them as i64; sealed values are BYTEA.
CREATE TABLE connections (
    provider TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    key_id TEXT NOT NULL,
    access_token BYTEA NOT NULL,
    refresh_token BYTEA,
    -- Unix seconds; conservative when the server sent no expires_in.
    access_expires_at BIGINT NOT NULL,
    scopes TEXT NOT NULL,
    -- 'active' or 'reconnect_required'
    status TEXT NOT NULL,
    connected_at BIGINT NOT NULL,
    refreshed_at BIGINT,
    updated_at BIGINT NOT NULL,
    -- Bumped on every write; lets a refresh see that another one already happened.
    generation BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (provider, organization_id, resource)
);

CREATE TABLE oauth_flows (
    state_hash BYTEA PRIMARY KEY NOT NULL,
    browser_hash BYTEA NOT NULL,
    provider TEXT NOT NULL,
    key_id TEXT NOT NULL,
    verifier BYTEA NOT NULL,
    return_to TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX oauth_flows_expires_at ON oauth_flows (expires_at);

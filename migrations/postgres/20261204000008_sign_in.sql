-- The same changes as on SQLite (see migrations/sqlite), in PostgreSQL's types.
-- Sign-in with OpenID Connect (AUTH_MODE=sso).
--
-- A flow is a connection's or a sign-in's: each callback consumes only its own kind, so a
-- sign-in's state can never complete a connection, nor the reverse. A sign-in flow's sealed
-- `verifier` holds its PKCE verifier and its nonce.
ALTER TABLE oauth_flows ADD COLUMN purpose TEXT NOT NULL DEFAULT 'connect';

-- Workspace users, one per (issuer, subject): OIDC Core §5.7, the subject is the stable key;
-- an email can change hands and is kept as text only, never matched on.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_sign_in_at BIGINT NOT NULL,
    UNIQUE (issuer, subject)
);

-- A user's role in an organization, raw (as the Workspace says it) and mapped by
-- QENTRAH_ROLE_MAP (NULL: a role the map does not know, which grants no access).
CREATE TABLE memberships (
    user_id TEXT NOT NULL REFERENCES users (id),
    organization_id TEXT NOT NULL,
    workspace_role TEXT NOT NULL,
    app_role TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, organization_id)
);
CREATE INDEX memberships_organization ON memberships (organization_id);

-- One row per signed-in browser session: the index beside tower-sessions' opaque record (the
-- session keeps who signed in, never a token; `session_id` names the record), so an uninstall
-- or a removed user finds and ends sessions by user and organization; and the sign-in grant,
-- sealed like a connection's tokens. Ending a sign-in deletes the row and its session record.
CREATE TABLE sign_ins (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    organization_id TEXT NOT NULL,
    -- As UserInfo named it at sign-in, for the header.
    organization_name TEXT NOT NULL,
    client_id TEXT NOT NULL,
    workspace_role TEXT NOT NULL,
    app_role TEXT NOT NULL,
    key_id TEXT NOT NULL,
    access_token BYTEA NOT NULL,
    refresh_token BYTEA,
    access_expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    -- SESSION_ABSOLUTE_SECS after sign-in: the session ends then however active it is.
    ends_at BIGINT NOT NULL,
    -- The last re-check the Workspace answered, and since when re-checks have failed for want
    -- of an answer (NULL: they have not), for SSO_REVALIDATE_GRACE_SECS.
    checked_at BIGINT NOT NULL,
    unanswered_since BIGINT,
    -- One re-check at a time across instances: the instance whose lease this is does it.
    check_leased_until BIGINT,
    -- The tower-sessions record that holds this sign-in (written on the session's first request
    -- after sign-in): ending the sign-in deletes that record too, so the session is signed out
    -- on every instance at once.
    session_id TEXT,
    generation BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX sign_ins_user ON sign_ins (user_id);
CREATE INDEX sign_ins_organization ON sign_ins (organization_id);

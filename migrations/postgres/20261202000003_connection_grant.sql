-- The grant a connection row holds: a random id, new with every completed authorization. A
-- browser session remembers the grant it completed and may use the row only while it still
-- holds that grant, so a session does not ride on a later authorization of the same
-- organization by someone else. Rows from before this column keep '' (sessions from before it
-- carry none either), until their organization is authorized again.
ALTER TABLE connections ADD COLUMN grant_id TEXT NOT NULL DEFAULT '';

-- Bookkeeping of forgeerp_infra::migrate, run at the start of each migration's
-- transaction: the lock queues concurrent migrators (it is the key the driver
-- used before migrations were numbered, so old and new processes queue
-- together), and the table records which migrations ran.
SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('forgeerp_read.migrate'));

CREATE SCHEMA IF NOT EXISTS forgeerp_read;

CREATE TABLE IF NOT EXISTS forgeerp_read.schema_migrations (
    version    integer     PRIMARY KEY CHECK (version >= 1),
    name       text        NOT NULL,
    -- md5 of the migration's text: a recorded migration that was edited
    -- afterwards is refused.
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    applied_by name        NOT NULL DEFAULT CURRENT_USER
);

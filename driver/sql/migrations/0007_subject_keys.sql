-- Migration 7: the data keys of crypto-shredding, in a schema of their own.
-- One key per subject (a person, a customer) of a tenant, wrapped by the
-- application's master key, which is never stored: only its fingerprint
-- (master_key_id), to tell a wrong master key from a damaged key.
-- Deleting a row forgets the subject: its sealed fields stay in the events
-- and can no longer be opened.
--
-- Row-level security is enabled, with the binding rule of every driver
-- table, and not forced: the table's owner (the role that migrates, and
-- rotates the master key over every tenant's keys) is not bound by it;
-- every other role reaches the keys of the tenant its transaction is bound
-- to only.
CREATE SCHEMA forgeerp_keys;

CREATE TABLE forgeerp_keys.subject_keys (
    tenant_id     uuid        NOT NULL,
    subject       text        NOT NULL CHECK (subject <> ''),
    master_key_id text        NOT NULL,
    wrapped_key   bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    rewrapped_at  timestamptz,
    PRIMARY KEY (tenant_id, subject)
);

CREATE INDEX subject_keys_by_master_key ON forgeerp_keys.subject_keys (master_key_id);

ALTER TABLE forgeerp_keys.subject_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY bound_tenant_only ON forgeerp_keys.subject_keys
    USING (forgeerp_read.is_bound_tenant(tenant_id::text))
    WITH CHECK (forgeerp_read.is_bound_tenant(tenant_id::text));

COMMENT ON TABLE forgeerp_keys.subject_keys IS
    'Crypto-shredding: each subject''s data key, wrapped by the application''s master key (never stored; master_key_id is its fingerprint). Deleting a row forgets the subject.';

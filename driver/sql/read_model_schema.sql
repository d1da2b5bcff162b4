-- Read models of forgeerp-infra's PgTenantStore, in the event store's database.
-- Created by PgTenantStore::migrate (idempotent). Every row belongs to one
-- tenant; row-level security admits only the tenant the transaction is bound
-- to (forgeerp.bind_tenant), for every role but superusers, owner included.
CREATE SCHEMA IF NOT EXISTS forgeerp_read;

CREATE TABLE IF NOT EXISTS forgeerp_read.entries (
    model      text        NOT NULL,
    tenant_id  uuid        NOT NULL,
    key        text        NOT NULL,
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, tenant_id, key)
);

ALTER TABLE forgeerp_read.entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE forgeerp_read.entries FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS bound_tenant_only ON forgeerp_read.entries;
CREATE POLICY bound_tenant_only ON forgeerp_read.entries
    USING (tenant_id::text = lower(current_setting('forgeerp.tenant_id', true)))
    WITH CHECK (tenant_id::text = lower(current_setting('forgeerp.tenant_id', true)));

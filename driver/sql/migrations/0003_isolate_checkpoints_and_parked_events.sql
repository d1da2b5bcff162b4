-- Migration 3: checkpoints and parked events are isolated by tenant like the
-- other read-model tables. Parked events hold tenant ids and error text; a
-- checkpoint names its tenant (or '*', a worker of every tenant).
--
-- Row-level security is enabled, not forced: the projection worker, which
-- writes both tables outside any tenant binding (an all-tenants checkpoint,
-- parking an event), must own them (run the migrations as the worker's role)
-- or bypass row-level security. Any other role that is granted access sees
-- only the rows of the tenant its transaction is bound to, and no
-- all-tenants checkpoint.
ALTER TABLE forgeerp_read.parked_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY bound_tenant_only ON forgeerp_read.parked_events
    USING (tenant_id::text = lower(current_setting('forgeerp.tenant_id', true)))
    WITH CHECK (tenant_id::text = lower(current_setting('forgeerp.tenant_id', true)));

ALTER TABLE forgeerp_read.checkpoints ENABLE ROW LEVEL SECURITY;
CREATE POLICY bound_tenant_only ON forgeerp_read.checkpoints
    USING (tenant_key = lower(current_setting('forgeerp.tenant_id', true)))
    WITH CHECK (tenant_key = lower(current_setting('forgeerp.tenant_id', true)));

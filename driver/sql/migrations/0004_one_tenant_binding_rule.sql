-- Migration 4: every row-level security policy of the driver's tables asks
-- one function whether a row's tenant is the one the transaction is bound
-- to, instead of restating the setting's reading in each policy.
--
-- The reading is the extension's forgeerp.bound_tenant() (the setting
-- forgeerp.tenant_id, lower case, empty meaning unbound). The policies cannot
-- call that function: the extension grants its functions to no one but the
-- roles given its usage, and every role that reads these tables evaluates the
-- policies with its own rights. A plain SQL function with no SET clause is
-- inlined into each policy, so the plans stay what they were. Every name in
-- it is schema-qualified.
CREATE FUNCTION forgeerp_read.is_bound_tenant(tenant text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT tenant = pg_catalog.lower(NULLIF(pg_catalog.current_setting('forgeerp.tenant_id', true), '')) $$;

-- Every role evaluates it (inside the policies), whatever the database's
-- default privileges say.
GRANT EXECUTE ON FUNCTION forgeerp_read.is_bound_tenant(text) TO PUBLIC;

COMMENT ON FUNCTION forgeerp_read.is_bound_tenant(text) IS
    'Whether tenant (uuid text) is the tenant the current transaction is bound to (forgeerp.bind_tenant): the rule of every row-level security policy of forgeerp_read.';

ALTER POLICY bound_tenant_only ON forgeerp_read.entries
    USING (forgeerp_read.is_bound_tenant(tenant_id::text))
    WITH CHECK (forgeerp_read.is_bound_tenant(tenant_id::text));
ALTER POLICY bound_tenant_only ON forgeerp_read.stock_history_runs
    USING (forgeerp_read.is_bound_tenant(tenant_id::text))
    WITH CHECK (forgeerp_read.is_bound_tenant(tenant_id::text));
ALTER POLICY bound_tenant_only ON forgeerp_read.ai_insights
    USING (forgeerp_read.is_bound_tenant(tenant_id::text))
    WITH CHECK (forgeerp_read.is_bound_tenant(tenant_id::text));
ALTER POLICY bound_tenant_only ON forgeerp_read.parked_events
    USING (forgeerp_read.is_bound_tenant(tenant_id::text))
    WITH CHECK (forgeerp_read.is_bound_tenant(tenant_id::text));
ALTER POLICY bound_tenant_only ON forgeerp_read.checkpoints
    USING (forgeerp_read.is_bound_tenant(tenant_key))
    WITH CHECK (forgeerp_read.is_bound_tenant(tenant_key));

-- Tenant binding: the transaction-local setting forgeerp.tenant_id.
-- An empty or absent setting means unbound.

-- The tenant the current transaction is bound to, or NULL.
CREATE FUNCTION forgeerp.bound_tenant() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT lower(nullif(pg_catalog.current_setting('forgeerp.tenant_id', true), '')) $$;

-- Raises ES003 for a NULL or nil tenant, ES002 when the transaction is bound
-- to another tenant. `what` names the argument in the message.
CREATE FUNCTION forgeerp.check_tenant(tenant uuid, what text DEFAULT 'tenant_id') RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$
DECLARE
    bound text := forgeerp.bound_tenant();
BEGIN
    IF tenant IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = format('%s must not be NULL', what);
    END IF;
    IF tenant = '00000000-0000-0000-0000-000000000000' THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = format('%s must not be the nil uuid', what);
    END IF;
    IF bound IS NOT NULL AND bound <> tenant::text THEN
        RAISE EXCEPTION USING
            ERRCODE = 'ES002',
            MESSAGE = format('tenant %s is not the tenant this transaction is bound to', tenant),
            DETAIL = format('bound tenant: %s', bound);
    END IF;
END
$$;

CREATE FUNCTION forgeerp.bind_tenant(tenant_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$
DECLARE
    bound text := lower(nullif(current_setting('forgeerp.tenant_id', true), ''));
BEGIN
    -- Runs with the caller's rights, so it repeats check_tenant's rules
    -- rather than calling the (ungranted) helper.
    IF tenant_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'tenant_id must not be NULL';
    END IF;
    IF tenant_id = '00000000-0000-0000-0000-000000000000' THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'tenant_id must not be the nil uuid';
    END IF;
    -- Rebinding to the same tenant is harmless; to another one is the
    -- mistake the binding exists to catch.
    IF bound IS NOT NULL AND bound <> tenant_id::text THEN
        RAISE EXCEPTION USING
            ERRCODE = 'ES002',
            MESSAGE = format('cannot bind tenant %s: this transaction is bound to tenant %s', tenant_id, bound);
    END IF;
    PERFORM set_config('forgeerp.tenant_id', tenant_id::text, true);
END
$$;

COMMENT ON FUNCTION forgeerp.bind_tenant(uuid) IS
    'Binds the current transaction to one tenant: other tenants are refused with ES002 until it ends.';

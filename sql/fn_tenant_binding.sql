-- Tenant binding: the transaction-local setting forgeerp.tenant_id.
-- An empty or absent setting means unbound.

-- The tenant the current transaction is bound to, or NULL.
CREATE FUNCTION forgeerp.bound_tenant() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT lower(nullif(pg_catalog.current_setting('forgeerp.tenant_id', true), '')) $$;

-- Raises ES003 for a NULL or nil tenant, ES002 when the caller is scoped to
-- another tenant (`scope`, from forgeerp.scope_of) or the transaction is
-- bound to another one. `what` names the argument in the message.
-- Called only from functions that run with the owner's rights and pin their
-- search_path (not granted), so it sets none of its own: a SET clause costs
-- every call a search_path change.
CREATE FUNCTION forgeerp.check_tenant(tenant uuid, scope uuid, what text DEFAULT 'tenant_id') RETURNS void
LANGUAGE plpgsql STABLE
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
    IF scope IS NOT NULL AND scope <> tenant THEN
        RAISE EXCEPTION USING
            ERRCODE = 'ES002',
            MESSAGE = format('tenant %s is outside the scope of this role', tenant),
            DETAIL = format('the role is scoped to tenant %s', scope);
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
    scope uuid;
BEGIN
    -- Runs with the caller's rights, so it repeats check_tenant's rules
    -- rather than calling the (ungranted) helper.
    IF tenant_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'tenant_id must not be NULL';
    END IF;
    IF tenant_id = '00000000-0000-0000-0000-000000000000' THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'tenant_id must not be the nil uuid';
    END IF;
    -- CURRENT_USER is the caller here: this function runs with its rights.
    scope := forgeerp.scope_of(CURRENT_USER);
    IF scope IS NOT NULL AND scope <> tenant_id THEN
        RAISE EXCEPTION USING
            ERRCODE = 'ES002',
            MESSAGE = format('cannot bind tenant %s: role %I is scoped to tenant %s', tenant_id, CURRENT_USER, scope);
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

-- What an application role needs, and nothing more: it reaches the tables only
-- through the functions. With a tenant, the role is scoped to it
-- (fn_scope_of.sql); a scope is never widened or moved implicitly.

-- Every function an application role may call: the contract's, and the
-- owner's-rights functions that the SECURITY INVOKER wrappers of the read
-- functions call.
CREATE FUNCTION forgeerp.usage_functions() RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT 'forgeerp.append(uuid, text, uuid, bigint, jsonb),
              forgeerp.load_stream(uuid, uuid, bigint, integer),
              forgeerp.load_stream_as(text, uuid, uuid, bigint, integer),
              forgeerp.stream_version(uuid, uuid),
              forgeerp.stream_version_as(text, uuid, uuid),
              forgeerp.read_all(bigint, bigint, integer, uuid),
              forgeerp.read_all_as(text, bigint, bigint, integer, uuid),
              forgeerp.scope_of(text),
              forgeerp.bind_tenant(uuid),
              forgeerp.version()' $$;

-- The oid of role `role_name`; ES003 when it is NULL or names no role.
-- Called only from grant_usage and revoke_usage (not granted), whose pinned
-- search_path it runs under.
CREATE FUNCTION forgeerp.existing_role(role_name name) RETURNS oid
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    role_oid oid;
BEGIN
    IF role_name IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'role_name must not be NULL';
    END IF;
    SELECT r.oid INTO role_oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) role_name;
    IF role_oid IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = pg_catalog.format('role %I does not exist', role_name);
    END IF;
    RETURN role_oid;
END
$$;

CREATE FUNCTION forgeerp.grant_usage(role_name name, tenant_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$
DECLARE
    role_oid oid := forgeerp.existing_role(role_name);
    scoped   uuid;
BEGIN
    IF grant_usage.tenant_id = '00000000-0000-0000-0000-000000000000' THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'tenant_id must not be the nil uuid';
    END IF;
    SELECT s.tenant_id INTO scoped FROM forgeerp.role_scopes s WHERE s.role_id = role_oid;
    IF scoped IS NOT NULL AND grant_usage.tenant_id IS DISTINCT FROM scoped THEN
        RAISE EXCEPTION USING
            ERRCODE = 'ES003',
            MESSAGE = format('role %I is scoped to tenant %s: grant_usage cannot widen or move a scope (to %s)',
                             role_name, scoped, coalesce(grant_usage.tenant_id::text, 'every tenant')),
            HINT = format('Widening is explicit: SELECT forgeerp.revoke_usage(%L) first.', role_name);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA forgeerp TO %I', role_name);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', forgeerp.usage_functions(), role_name);
    IF grant_usage.tenant_id IS NOT NULL THEN
        INSERT INTO forgeerp.role_scopes (role_id, tenant_id) VALUES (role_oid, grant_usage.tenant_id)
            ON CONFLICT (role_id) DO NOTHING;
    END IF;
END
$$;

COMMENT ON FUNCTION forgeerp.grant_usage(name, uuid) IS
    'Grants a role what an application needs to call the forgeerp functions, scoped to one tenant when given; it gets no privilege on any table.';

CREATE FUNCTION forgeerp.revoke_usage(role_name name) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$
DECLARE
    role_oid oid := forgeerp.existing_role(role_name);
BEGIN
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %I', forgeerp.usage_functions(), role_name);
    EXECUTE format('REVOKE USAGE ON SCHEMA forgeerp FROM %I', role_name);
    DELETE FROM forgeerp.role_scopes s WHERE s.role_id = role_oid;
END
$$;

COMMENT ON FUNCTION forgeerp.revoke_usage(name) IS
    'Takes back everything forgeerp.grant_usage gave a role, its tenant scope included.';

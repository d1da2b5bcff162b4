-- forgeerp 0.4.0 -> 0.5.0
--
-- The library of 0.5.0 appends without SQL at call time (a native path:
-- direct index scans and the executor's single-row insert) for databases at
-- every version it serves; this script brings a database's SQL to 0.5.0:
-- grant_usage and revoke_usage find their role through one helper,
-- forgeerp.existing_role, instead of each its own copy of the lookup.
-- Nothing else changes; no data is touched.

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

REVOKE ALL ON FUNCTION forgeerp.existing_role(name) FROM PUBLIC;

CREATE OR REPLACE FUNCTION forgeerp.grant_usage(role_name name, tenant_id uuid DEFAULT NULL) RETURNS void
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

CREATE OR REPLACE FUNCTION forgeerp.revoke_usage(role_name name) RETURNS void
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

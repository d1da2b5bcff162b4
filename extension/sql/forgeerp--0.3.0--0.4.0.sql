-- forgeerp 0.3.0 -> 0.4.0: tenant-scoped roles (API v2).
--
-- grant_usage(role, tenant) scopes a role to one tenant, revoke_usage(role)
-- takes everything back. To learn who really calls, the read functions
-- become SECURITY INVOKER wrappers that pass their CURRENT_USER to an
-- owner's-rights function (*_as; see fn_scope_of.sql in the repository), and
-- append switches identity itself.
-- Roles granted usage before this update are granted the new functions too.

CREATE TABLE forgeerp.role_scopes (
    role_id    oid         PRIMARY KEY,
    tenant_id  uuid        NOT NULL CHECK (tenant_id <> '00000000-0000-0000-0000-000000000000'),
    granted_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE forgeerp.role_scopes IS
    'The tenant each scoped role (and every role inheriting its privileges) is confined to.';
REVOKE ALL ON TABLE forgeerp.role_scopes FROM PUBLIC;

-- (permitted, tenants) for a claimed caller; no row when the role does not
-- exist. One row of a set so that PostgreSQL inlines it into the calling
-- query (no SET clause, STABLE): the append path and scope_for plan it once.
-- Called only with the owner's rights (not granted).
CREATE FUNCTION forgeerp.caller_scopes(caller name)
RETURNS TABLE (permitted boolean, tenants uuid[])
LANGUAGE sql STABLE
AS $$
WITH RECURSIVE privileges_of (role_id) AS (
        SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) caller
    UNION
        SELECT m.roleid
          FROM privileges_of p
          JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) p.role_id AND r.rolinherit
          JOIN pg_catalog.pg_auth_members m ON m.member OPERATOR(pg_catalog.=) p.role_id
)
SELECT caller OPERATOR(pg_catalog.=) SESSION_USER
           OR pg_catalog.pg_has_role(SESSION_USER, caller, 'MEMBER'),
       CASE WHEN r.rolsuper THEN '{}'::pg_catalog.uuid[]
            ELSE ARRAY(SELECT DISTINCT s.tenant_id
                         FROM privileges_of p
                         JOIN forgeerp.role_scopes s ON s.role_id OPERATOR(pg_catalog.=) p.role_id
                        ORDER BY 1)
       END
  FROM pg_catalog.pg_roles r
 WHERE r.rolname OPERATOR(pg_catalog.=) caller
$$;

-- The one tenant `caller` is scoped to, or NULL when unscoped; ES002 when the
-- claim is not believed or the caller has the privileges of roles scoped to
-- two tenants. Runs with the rights of the function calling it.
CREATE FUNCTION forgeerp.scope_for(caller text) RETURNS uuid
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    found record;
BEGIN
    SELECT c.permitted, c.tenants INTO found FROM forgeerp.caller_scopes(caller::pg_catalog.name) c;
    IF found.permitted IS NOT TRUE THEN
        RAISE EXCEPTION USING
            ERRCODE = 'ES002',
            MESSAGE = pg_catalog.format('role %s is not a role this session (%s) can act as',
                                        COALESCE(pg_catalog.quote_ident(caller), 'NULL'), SESSION_USER);
    END IF;
    IF pg_catalog.cardinality(found.tenants) > 1 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'ES002',
            MESSAGE = pg_catalog.format('role %I has the privileges of roles scoped to %s different tenants, so it may use none',
                                        caller, pg_catalog.cardinality(found.tenants)),
            DETAIL = pg_catalog.format('tenants: %s', pg_catalog.array_to_string(found.tenants, ', '));
    END IF;
    RETURN found.tenants[1];
END
$$;

-- scope_for with the owner's rights, for callers that have none of their
-- own (bind_tenant runs with the caller's).
CREATE FUNCTION forgeerp.scope_of(caller text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$ SELECT forgeerp.scope_for(caller) $$;

COMMENT ON FUNCTION forgeerp.scope_of(text) IS
    'The tenant a role is scoped to (NULL: unscoped); ES002 for a role of two scopes or one this session cannot act as.';

DROP FUNCTION forgeerp.check_tenant(uuid, text);
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

CREATE OR REPLACE FUNCTION forgeerp.bind_tenant(tenant_id uuid) RETURNS void
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

CREATE FUNCTION forgeerp.load_stream_as(
    caller        text,
    tenant_id     uuid,
    aggregate_id  uuid,
    from_sequence bigint  DEFAULT 1,
    max_count     integer DEFAULT NULL
) RETURNS SETOF forgeerp.events
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$
BEGIN
    PERFORM forgeerp.check_tenant(load_stream_as.tenant_id, forgeerp.scope_for(caller));
    IF load_stream_as.aggregate_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'aggregate_id must not be NULL';
    END IF;
    IF from_sequence IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'from_sequence must not be NULL';
    END IF;
    IF max_count < 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003',
            MESSAGE = format('max_count must not be negative, got %s', max_count);
    END IF;
    RETURN QUERY
        SELECT e.* FROM forgeerp.events e
         WHERE e.tenant_id = load_stream_as.tenant_id
           AND e.aggregate_id = load_stream_as.aggregate_id
           AND e.sequence_number >= greatest(from_sequence, 1)
         ORDER BY e.sequence_number
         LIMIT max_count;  -- LIMIT NULL: all
END
$$;

CREATE OR REPLACE FUNCTION forgeerp.load_stream(
    tenant_id     uuid,
    aggregate_id  uuid,
    from_sequence bigint  DEFAULT 1,
    max_count     integer DEFAULT NULL
) RETURNS SETOF forgeerp.events
LANGUAGE sql STABLE
AS $$ SELECT * FROM forgeerp.load_stream_as(CURRENT_USER, tenant_id, aggregate_id, from_sequence, max_count) $$;

COMMENT ON FUNCTION forgeerp.load_stream(uuid, uuid, bigint, integer) IS
    'The events of one stream in sequence order, from from_sequence, at most max_count (NULL: all).';

CREATE FUNCTION forgeerp.stream_version_as(caller text, tenant_id uuid, aggregate_id uuid) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$
BEGIN
    PERFORM forgeerp.check_tenant(stream_version_as.tenant_id, forgeerp.scope_for(caller));
    IF stream_version_as.aggregate_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'aggregate_id must not be NULL';
    END IF;
    RETURN coalesce((SELECT max(e.sequence_number) FROM forgeerp.events e
                      WHERE e.tenant_id = stream_version_as.tenant_id
                        AND e.aggregate_id = stream_version_as.aggregate_id), 0);
END
$$;

CREATE OR REPLACE FUNCTION forgeerp.stream_version(tenant_id uuid, aggregate_id uuid) RETURNS bigint
LANGUAGE sql STABLE
AS $$ SELECT forgeerp.stream_version_as(CURRENT_USER, tenant_id, aggregate_id) $$;

CREATE FUNCTION forgeerp.read_all_as(
    caller            text,
    after_transaction bigint  DEFAULT 0,
    after_position    bigint  DEFAULT 0,
    max_count         integer DEFAULT 1000,
    tenant_id         uuid    DEFAULT NULL
) RETURNS SETOF forgeerp.events
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$
DECLARE
    horizon bigint;
    tenant  uuid := read_all_as.tenant_id;
    bound   text;
    scope   uuid;
BEGIN
    IF after_transaction IS NULL OR after_position IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003',
            MESSAGE = format('the feed cursor must not be NULL, got (%s, %s)',
                             coalesce(after_transaction::text, 'NULL'), coalesce(after_position::text, 'NULL'));
    END IF;
    IF max_count < 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003',
            MESSAGE = format('max_count must not be negative, got %s', max_count);
    END IF;
    scope := forgeerp.scope_for(caller);
    IF tenant IS NULL AND scope IS NOT NULL THEN
        -- Scoped: only the scope's events (and a binding to another tenant
        -- is refused like any other tenant).
        tenant := scope;
        PERFORM forgeerp.check_tenant(tenant, scope);
    ELSIF tenant IS NULL THEN
        -- Bound: only the bound tenant's events.
        bound := forgeerp.bound_tenant();
        IF bound !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
            RAISE EXCEPTION USING ERRCODE = 'ES002',
                MESSAGE = format('this transaction is bound to %L, which is not a tenant id', bound);
        END IF;
        tenant := bound::uuid;
    ELSE
        PERFORM forgeerp.check_tenant(tenant, scope);
    END IF;
    horizon := forgeerp.feed_horizon();

    IF tenant IS NULL THEN
        RETURN QUERY
            SELECT e.* FROM forgeerp.events e
             WHERE (e.transaction_id, e.global_position) > (after_transaction, after_position)
               AND e.transaction_id < horizon
             ORDER BY e.transaction_id, e.global_position
             LIMIT max_count;
    ELSE
        RETURN QUERY
            SELECT e.* FROM forgeerp.events e
             WHERE e.tenant_id = tenant
               AND (e.transaction_id, e.global_position) > (after_transaction, after_position)
               AND e.transaction_id < horizon
             ORDER BY e.transaction_id, e.global_position
             LIMIT max_count;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION forgeerp.read_all(
    after_transaction bigint  DEFAULT 0,
    after_position    bigint  DEFAULT 0,
    max_count         integer DEFAULT 1000,
    tenant_id         uuid    DEFAULT NULL
) RETURNS SETOF forgeerp.events
LANGUAGE sql STABLE
AS $$ SELECT * FROM forgeerp.read_all_as(CURRENT_USER, after_transaction, after_position, max_count, tenant_id) $$;

-- append stays in Rust, but is no longer SECURITY DEFINER: it learns the
-- role really calling and switches to the owner itself (new C symbol; the
-- old one keeps serving databases not yet updated).
CREATE OR REPLACE FUNCTION forgeerp."append"(
	"tenant_id" uuid,
	"aggregate_type" TEXT,
	"aggregate_id" uuid,
	"expected_version" bigint,
	"events" jsonb
) RETURNS TABLE (
	"event_id" uuid,
	"sequence_number" bigint,
	"global_position" bigint,
	"transaction_id" bigint,
	"recorded_at" timestamp with time zone
)
VOLATILE PARALLEL UNSAFE
SET search_path TO pg_catalog, forgeerp, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'append_as_caller_wrapper';

DROP FUNCTION forgeerp.grant_usage(name);
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

CREATE FUNCTION forgeerp.grant_usage(role_name name, tenant_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$
DECLARE
    role_oid oid;
    scoped   uuid;
BEGIN
    IF role_name IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'role_name must not be NULL';
    END IF;
    SELECT r.oid INTO role_oid FROM pg_catalog.pg_roles r WHERE r.rolname = role_name;
    IF role_oid IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = format('role %I does not exist', role_name);
    END IF;
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
    role_oid oid;
BEGIN
    IF role_name IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'role_name must not be NULL';
    END IF;
    SELECT r.oid INTO role_oid FROM pg_catalog.pg_roles r WHERE r.rolname = role_name;
    IF role_oid IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = format('role %I does not exist', role_name);
    END IF;
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %I', forgeerp.usage_functions(), role_name);
    EXECUTE format('REVOKE USAGE ON SCHEMA forgeerp FROM %I', role_name);
    DELETE FROM forgeerp.role_scopes s WHERE s.role_id = role_oid;
END
$$;

COMMENT ON FUNCTION forgeerp.revoke_usage(name) IS
    'Takes back everything forgeerp.grant_usage gave a role, its tenant scope included.';

-- Nothing new for PUBLIC (as privileges.sql does at install).
REVOKE ALL ON FUNCTION
    forgeerp.caller_scopes(name), forgeerp.scope_for(text), forgeerp.scope_of(text), forgeerp.check_tenant(uuid, uuid, text),
    forgeerp.load_stream_as(text, uuid, uuid, bigint, integer), forgeerp.stream_version_as(text, uuid, uuid),
    forgeerp.read_all_as(text, bigint, bigint, integer, uuid),
    forgeerp.usage_functions(), forgeerp.grant_usage(name, uuid), forgeerp.revoke_usage(name)
  FROM PUBLIC;

-- Roles that had usage keep it: they get the owner's-rights halves too.
DO $$
DECLARE
    grantee name;
BEGIN
    FOR grantee IN
        SELECT DISTINCT r.rolname
          FROM pg_catalog.pg_proc p,
               pg_catalog.aclexplode(p.proacl) a
          JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
         WHERE p.oid = 'forgeerp.load_stream(uuid, uuid, bigint, integer)'::pg_catalog.regprocedure
           AND a.privilege_type = 'EXECUTE'
           AND a.grantee <> p.proowner
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %I', forgeerp.usage_functions(), grantee);
    END LOOP;
END
$$;

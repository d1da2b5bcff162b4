-- forgeerp_proxy 0.1.0: the forgeerp contract (docs/API.md, "Sharded
-- deployment") on a proxy database. Each function of the contract keeps its
-- name, arguments, results and SQLSTATEs, and runs on the shard of its
-- tenant: PL/Proxy functions (schema forgeerp_proxy) do the routing, plain
-- functions of schema forgeerp check, bind and clean the errors up.
--
-- Shards are the partitions of the PL/Proxy cluster (SQL/MED server)
-- forgeerp_shards: p0, p1, ... in shard order, a power of two of them, each
-- a database with the forgeerp extension. A tenant's shard is
-- forgeerp.shard_of(tenant): the uuid's first 32 bits (as PL/Proxy's int4
-- hash) masked by the shard count, which the driver computes the same way.
-- No PostgreSQL hash function is involved, so no version can change it.
--
-- Every function here runs with its caller's rights (PL/Proxy then connects
-- to the shard as the caller: current_user), so the shard enforces the
-- caller's usage and tenant scope itself.

\echo Use "CREATE EXTENSION forgeerp_proxy" to load this file. \quit

CREATE SCHEMA forgeerp;
CREATE SCHEMA forgeerp_proxy;

-- Routing ---------------------------------------------------------------

-- The shard count: the partitions of forgeerp_shards.
CREATE FUNCTION forgeerp_proxy.shard_count() RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*)::integer
      FROM pg_catalog.pg_foreign_server s, pg_catalog.unnest(s.srvoptions) AS o (option)
     WHERE s.srvname = 'forgeerp_shards' AND o.option ~ '^(p|partition_)[0-9]+='
$$;

-- The routing hash: the tenant's first 32 bits, as a signed int4.
CREATE FUNCTION forgeerp_proxy.tenant_hash(tenant_id uuid) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ('x' || pg_catalog.substr(tenant_id::text, 1, 8))::bit(32)::integer $$;

CREATE FUNCTION forgeerp.shard_of(tenant_id uuid) RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer := forgeerp_proxy.shard_count();
BEGIN
    -- The shard's own words for a tenant that is not one.
    IF shard_of.tenant_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'tenant_id must not be NULL';
    END IF;
    IF shard_of.tenant_id = '00000000-0000-0000-0000-000000000000' THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'tenant_id must not be the nil uuid';
    END IF;
    IF n = 0 THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = 'no shards: the PL/Proxy server forgeerp_shards has no partitions p0, p1, ...';
    END IF;
    RETURN forgeerp_proxy.tenant_hash(shard_of.tenant_id) & (n - 1);
END
$$;

COMMENT ON FUNCTION forgeerp.shard_of(uuid) IS
    'The shard of a tenant: its uuid''s first 32 bits masked by the shard count (a power of two).';

CREATE FUNCTION forgeerp.shards() RETURNS TABLE (shard integer, conninfo text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.substring(o.option, '^(?:p|partition_)0*([0-9]+)=')::integer,
           pg_catalog.regexp_replace(pg_catalog.substring(o.option, '=(.*)$'),
                                     'password\s*=\s*(''([^'']|\\'')*''|\S*)', 'password=***', 'g')
      FROM pg_catalog.pg_foreign_server s, pg_catalog.unnest(s.srvoptions) AS o (option)
     WHERE s.srvname = 'forgeerp_shards' AND o.option ~ '^(p|partition_)[0-9]+='
     ORDER BY 1
$$;

COMMENT ON FUNCTION forgeerp.shards() IS
    'Every shard and its connection string (passwords masked).';

-- The tenant this transaction is bound to on the proxy, or NULL; a binding
-- that is not a tenant id refuses everything (ES002), as on a shard.
CREATE FUNCTION forgeerp_proxy.bound_tenant() RETURNS uuid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bound text := pg_catalog.lower(NULLIF(pg_catalog.current_setting('forgeerp.tenant_id', true), ''));
BEGIN
    IF bound IS NULL THEN
        RETURN NULL;
    END IF;
    IF bound !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'ES002',
            MESSAGE = pg_catalog.format('this transaction is bound to %L, which is not a tenant id', bound);
    END IF;
    RETURN bound::uuid;
END
$$;

-- Errors ----------------------------------------------------------------

-- Re-raises an error caught from a PL/Proxy call as the shard raised it:
-- PL/Proxy keeps the SQLSTATE but prefixes the message with the function,
-- argument count and database ("f(5): [db] REMOTE ERROR: ") and DETAIL and
-- HINT with "Remote detail: " and "Remote hint: "; those prefixes go. A shard
-- that cannot be reached comes from PL/Proxy as XX000 (it gives connection
-- failures no SQLSTATE of their own) with a libpq "PQconnect..." message:
-- it becomes 08006, naming the shard.
CREATE FUNCTION forgeerp_proxy.reraise(shard integer, state text, message text, detail text, hint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    clean_message text := pg_catalog.regexp_replace(message, '^\S+\(\d+\): \[[^]]*\] REMOTE [A-Z]+: ', '');
    clean_detail text := pg_catalog.regexp_replace(detail, '^Remote detail: ', '');
    clean_hint text := pg_catalog.regexp_replace(hint, '^Remote hint: ', '');
BEGIN
    IF state = 'XX000' AND message ~ '^PL/Proxy function \S+: \[[^]]*\] PQconnect' THEN
        RAISE EXCEPTION USING ERRCODE = '08006',
            MESSAGE = pg_catalog.format('shard %s cannot be reached: %s', shard,
                                        pg_catalog.regexp_replace(message, '^PL/Proxy function \S+: ', '')),
            HINT = 'Tenants of the other shards are not affected; retry when the shard is back.';
    END IF;
    PERFORM forgeerp_proxy.raise(state, clean_message, clean_detail, clean_hint);
END
$$;

-- RAISE with the DETAIL and HINT that are there (RAISE takes no NULL option).
CREATE FUNCTION forgeerp_proxy.raise(state text, message text, detail text, hint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF nullif(detail, '') IS NULL AND nullif(hint, '') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = message;
    ELSIF nullif(hint, '') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = message, DETAIL = detail;
    ELSIF nullif(detail, '') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = message, HINT = hint;
    ELSE
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = message, DETAIL = detail, HINT = hint;
    END IF;
END
$$;

-- The shard of a tenant argument, ES003 for one that cannot be routed.
CREATE FUNCTION forgeerp_proxy.route(tenant_id uuid) RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF route.tenant_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'tenant_id must not be NULL';
    END IF;
    RETURN forgeerp.shard_of(route.tenant_id);
END
$$;

-- A feed cursor and page size, checked before anything is routed, in the
-- shard's words (its read_all checks them first too).
CREATE FUNCTION forgeerp_proxy.check_cursor(after_transaction bigint, after_position bigint, max_count integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF after_transaction IS NULL OR after_position IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003',
            MESSAGE = pg_catalog.format('the feed cursor must not be NULL, got (%s, %s)',
                                        coalesce(after_transaction::text, 'NULL'), coalesce(after_position::text, 'NULL'));
    END IF;
    IF max_count < 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003',
            MESSAGE = pg_catalog.format('max_count must not be negative, got %s', max_count);
    END IF;
END
$$;

-- Shard `shard`, ES003 unless it is one.
CREATE FUNCTION forgeerp_proxy.valid_shard(shard integer) RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer := forgeerp_proxy.shard_count();
BEGIN
    IF valid_shard.shard IS NULL OR valid_shard.shard < 0 OR valid_shard.shard >= n THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003',
            MESSAGE = pg_catalog.format('shard must be one of 0 to %s, got %s', n - 1, coalesce(valid_shard.shard::text, 'NULL'));
    END IF;
    RETURN valid_shard.shard;
END
$$;

-- Routed calls (PL/Proxy) ---------------------------------------------
-- Each runs on the shard of its tenant argument, computed here (RUN ON
-- runs its function on the proxy), never on a shard the caller names: a
-- caller of these functions cannot put a tenant's events on another shard.
-- read_shard and the grants run on a shard checked to be one. Each binds the shard's transaction to the proxy's binding first when there
-- is one (PL/Proxy forwards no settings), then calls the contract function.
-- The LATERAL reference to b.ok (always empty) makes the binding run first.

CREATE FUNCTION forgeerp_proxy.append(in_bound uuid, in_tenant_id uuid, in_aggregate_type text, in_aggregate_id uuid, in_expected_version bigint, in_events jsonb)
RETURNS TABLE (event_id uuid, sequence_number bigint, global_position bigint, transaction_id bigint, recorded_at timestamptz)
LANGUAGE plproxy
AS $$
    CLUSTER 'forgeerp_shards';
    RUN ON forgeerp_proxy.route(in_tenant_id);
    SELECT a.event_id, a.sequence_number, a.global_position, a.transaction_id, a.recorded_at
      FROM (SELECT CASE WHEN in_bound IS NULL THEN '' ELSE forgeerp.bind_tenant(in_bound)::text END AS ok OFFSET 0) b
     CROSS JOIN LATERAL forgeerp.append(in_tenant_id, in_aggregate_type || b.ok, in_aggregate_id, in_expected_version, in_events) a;
$$;

CREATE FUNCTION forgeerp_proxy.load_stream(in_bound uuid, in_tenant_id uuid, in_aggregate_id uuid, in_from_sequence bigint, in_max_count integer)
RETURNS TABLE (global_position bigint, transaction_id bigint, tenant_id uuid, aggregate_type text, aggregate_id uuid, sequence_number bigint, event_id uuid, event_type text, event_version integer, payload jsonb, metadata jsonb, occurred_at timestamptz, recorded_at timestamptz)
LANGUAGE plproxy
AS $$
    CLUSTER 'forgeerp_shards';
    RUN ON forgeerp_proxy.route(in_tenant_id);
    SELECT e.global_position, e.transaction_id, e.tenant_id, e.aggregate_type, e.aggregate_id, e.sequence_number, e.event_id, e.event_type, e.event_version, e.payload, e.metadata, e.occurred_at, e.recorded_at
      FROM (SELECT CASE WHEN in_bound IS NULL THEN '' ELSE forgeerp.bind_tenant(in_bound)::text END AS ok OFFSET 0) b
     CROSS JOIN LATERAL forgeerp.load_stream(in_tenant_id, in_aggregate_id, in_from_sequence + length(b.ok), in_max_count) e;
$$;

CREATE FUNCTION forgeerp_proxy.stream_version(in_bound uuid, in_tenant_id uuid, in_aggregate_id uuid)
RETURNS bigint
LANGUAGE plproxy
AS $$
    CLUSTER 'forgeerp_shards';
    RUN ON forgeerp_proxy.route(in_tenant_id);
    SELECT forgeerp.stream_version(in_tenant_id, in_aggregate_id) || b.ok
      FROM (SELECT CASE WHEN in_bound IS NULL THEN '' ELSE forgeerp.bind_tenant(in_bound)::text END AS ok OFFSET 0) b;
$$;

CREATE FUNCTION forgeerp_proxy.read_all(in_bound uuid, in_after_transaction bigint, in_after_position bigint, in_max_count integer, in_tenant_id uuid)
RETURNS TABLE (global_position bigint, transaction_id bigint, tenant_id uuid, aggregate_type text, aggregate_id uuid, sequence_number bigint, event_id uuid, event_type text, event_version integer, payload jsonb, metadata jsonb, occurred_at timestamptz, recorded_at timestamptz)
LANGUAGE plproxy
AS $$
    CLUSTER 'forgeerp_shards';
    RUN ON forgeerp_proxy.route(in_tenant_id);
    SELECT e.global_position, e.transaction_id, e.tenant_id, e.aggregate_type, e.aggregate_id, e.sequence_number, e.event_id, e.event_type, e.event_version, e.payload, e.metadata, e.occurred_at, e.recorded_at
      FROM (SELECT CASE WHEN in_bound IS NULL THEN '' ELSE forgeerp.bind_tenant(in_bound)::text END AS ok OFFSET 0) b
     CROSS JOIN LATERAL forgeerp.read_all(in_after_transaction, in_after_position + length(b.ok), in_max_count, in_tenant_id) e;
$$;

CREATE FUNCTION forgeerp_proxy.read_shard(in_shard integer, in_bound uuid, in_after_transaction bigint, in_after_position bigint, in_max_count integer)
RETURNS TABLE (global_position bigint, transaction_id bigint, tenant_id uuid, aggregate_type text, aggregate_id uuid, sequence_number bigint, event_id uuid, event_type text, event_version integer, payload jsonb, metadata jsonb, occurred_at timestamptz, recorded_at timestamptz)
LANGUAGE plproxy
AS $$
    CLUSTER 'forgeerp_shards';
    RUN ON forgeerp_proxy.valid_shard(in_shard);
    SELECT e.global_position, e.transaction_id, e.tenant_id, e.aggregate_type, e.aggregate_id, e.sequence_number, e.event_id, e.event_type, e.event_version, e.payload, e.metadata, e.occurred_at, e.recorded_at
      FROM (SELECT CASE WHEN in_bound IS NULL THEN '' ELSE forgeerp.bind_tenant(in_bound)::text END AS ok OFFSET 0) b
     CROSS JOIN LATERAL forgeerp.read_all(in_after_transaction, in_after_position + length(b.ok), in_max_count) e;
$$;

CREATE FUNCTION forgeerp_proxy.bind_tenant(in_tenant_id uuid)
RETURNS void
LANGUAGE plproxy
AS $$
    CLUSTER 'forgeerp_shards';
    RUN ON forgeerp_proxy.route(in_tenant_id);
    SELECT forgeerp.bind_tenant(in_tenant_id);
$$;

CREATE FUNCTION forgeerp_proxy.purge_tenant(in_tenant_id uuid)
RETURNS bigint
LANGUAGE plproxy
AS $$
    CLUSTER 'forgeerp_shards';
    RUN ON forgeerp_proxy.route(in_tenant_id);
    SELECT forgeerp.purge_tenant(in_tenant_id) + length(b.ok)
      FROM (SELECT pg_catalog.set_config('forgeerp.allow_purge', 'on', true) || '' AS ok OFFSET 0) b;
$$;

CREATE FUNCTION forgeerp_proxy.grant_usage(in_shard integer, in_role_name name, in_tenant_id uuid)
RETURNS void
LANGUAGE plproxy
AS $$
    CLUSTER 'forgeerp_shards';
    RUN ON forgeerp_proxy.valid_shard(in_shard);
    SELECT forgeerp.grant_usage(in_role_name, in_tenant_id);
$$;

CREATE FUNCTION forgeerp_proxy.revoke_usage(in_shard integer, in_role_name name)
RETURNS void
LANGUAGE plproxy
AS $$
    CLUSTER 'forgeerp_shards';
    RUN ON forgeerp_proxy.valid_shard(in_shard);
    SELECT forgeerp.revoke_usage(in_role_name);
$$;

-- The contract ------------------------------------------------------------
-- Each function routes to its tenant's shard and re-raises what the shard
-- raised, cleaned of PL/Proxy's prefixes (forgeerp_proxy.reraise). The
-- arguments are checked by the shard, in the contract's order; only a tenant
-- that cannot be routed (NULL, nil) is refused here, with the shard's words.

CREATE TYPE forgeerp.event_record AS (
    global_position bigint, transaction_id bigint, tenant_id uuid, aggregate_type text,
    aggregate_id uuid, sequence_number bigint, event_id uuid, event_type text,
    event_version integer, payload jsonb, metadata jsonb, occurred_at timestamptz,
    recorded_at timestamptz
);



CREATE FUNCTION forgeerp.append(tenant_id uuid, aggregate_type text, aggregate_id uuid, expected_version bigint, events jsonb)
RETURNS TABLE (event_id uuid, sequence_number bigint, global_position bigint, transaction_id bigint, recorded_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shard integer := forgeerp_proxy.route(append.tenant_id);
    state text; message text; detail text; hint text;
BEGIN
    RETURN QUERY SELECT * FROM forgeerp_proxy.append(forgeerp_proxy.bound_tenant(), append.tenant_id,
                                                     append.aggregate_type, append.aggregate_id,
                                                     append.expected_version, append.events);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM forgeerp_proxy.reraise(shard, state, message, detail, hint);
END
$$;

CREATE FUNCTION forgeerp.load_stream(tenant_id uuid, aggregate_id uuid, from_sequence bigint DEFAULT 1, max_count integer DEFAULT NULL)
RETURNS SETOF forgeerp.event_record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shard integer := forgeerp_proxy.route(load_stream.tenant_id);
    state text; message text; detail text; hint text;
BEGIN
    RETURN QUERY SELECT * FROM forgeerp_proxy.load_stream(forgeerp_proxy.bound_tenant(), load_stream.tenant_id,
                                                          load_stream.aggregate_id, load_stream.from_sequence,
                                                          load_stream.max_count);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM forgeerp_proxy.reraise(shard, state, message, detail, hint);
END
$$;

CREATE FUNCTION forgeerp.stream_version(tenant_id uuid, aggregate_id uuid) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shard integer := forgeerp_proxy.route(stream_version.tenant_id);
    state text; message text; detail text; hint text;
BEGIN
    RETURN forgeerp_proxy.stream_version(forgeerp_proxy.bound_tenant(), stream_version.tenant_id,
                                         stream_version.aggregate_id);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM forgeerp_proxy.reraise(shard, state, message, detail, hint);
END
$$;

-- The feed of one tenant: the argument, else the bound one. Without either
-- it is ES003: there is no global feed across shards (read_shard reads one
-- shard's).
CREATE FUNCTION forgeerp.read_all(after_transaction bigint DEFAULT 0, after_position bigint DEFAULT 0, max_count integer DEFAULT 1000, tenant_id uuid DEFAULT NULL)
RETURNS SETOF forgeerp.event_record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bound uuid := forgeerp_proxy.bound_tenant();
    tenant uuid := coalesce(read_all.tenant_id, bound);
    shard integer;
    state text; message text; detail text; hint text;
BEGIN
    PERFORM forgeerp_proxy.check_cursor(read_all.after_transaction, read_all.after_position, read_all.max_count);
    IF tenant IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003',
            MESSAGE = 'read_all on the proxy needs a tenant (its argument, or bind_tenant): the feed is per shard',
            HINT = 'Read each shard''s feed with forgeerp.read_shard(shard, ...); forgeerp.shards() lists them.';
    END IF;
    shard := forgeerp.shard_of(tenant);
    RETURN QUERY SELECT * FROM forgeerp_proxy.read_all(bound, read_all.after_transaction,
                                                       read_all.after_position, read_all.max_count, tenant);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    IF shard IS NULL THEN
        PERFORM forgeerp_proxy.raise(state, message, detail, hint);
    END IF;
    PERFORM forgeerp_proxy.reraise(shard, state, message, detail, hint);
END
$$;

CREATE FUNCTION forgeerp.read_shard(shard integer, after_transaction bigint DEFAULT 0, after_position bigint DEFAULT 0, max_count integer DEFAULT 1000)
RETURNS SETOF forgeerp.event_record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    state text; message text; detail text; hint text;
BEGIN
    PERFORM forgeerp_proxy.check_cursor(read_shard.after_transaction, read_shard.after_position, read_shard.max_count);
    PERFORM forgeerp_proxy.valid_shard(read_shard.shard);
    BEGIN
        RETURN QUERY SELECT * FROM forgeerp_proxy.read_shard(read_shard.shard, forgeerp_proxy.bound_tenant(),
                                                             read_shard.after_transaction, read_shard.after_position,
                                                             read_shard.max_count);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
        PERFORM forgeerp_proxy.reraise(read_shard.shard, state, message, detail, hint);
    END;
END
$$;

COMMENT ON FUNCTION forgeerp.read_shard(integer, bigint, bigint, integer) IS
    'One shard''s feed, with read_all''s guarantees for that shard: a cursor is one (transaction_id, global_position) per shard.';

-- Binds this proxy transaction to a tenant, as forgeerp.bind_tenant does on
-- one database; the tenant's shard checks the caller's scope. Every routed
-- call of the transaction then binds its shard's transaction too.
CREATE FUNCTION forgeerp.bind_tenant(tenant_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bound uuid := forgeerp_proxy.bound_tenant();
    shard integer;
    state text; message text; detail text; hint text;
BEGIN
    IF bind_tenant.tenant_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'tenant_id must not be NULL';
    END IF;
    IF bind_tenant.tenant_id = '00000000-0000-0000-0000-000000000000' THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'tenant_id must not be the nil uuid';
    END IF;
    shard := forgeerp.shard_of(bind_tenant.tenant_id);
    BEGIN
        PERFORM forgeerp_proxy.bind_tenant(bind_tenant.tenant_id);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
        PERFORM forgeerp_proxy.reraise(shard, state, message, detail, hint);
    END;
    IF bound IS NOT NULL AND bound <> bind_tenant.tenant_id THEN
        RAISE EXCEPTION USING ERRCODE = 'ES002',
            MESSAGE = pg_catalog.format('cannot bind tenant %s: this transaction is bound to tenant %s', bind_tenant.tenant_id, bound);
    END IF;
    PERFORM pg_catalog.set_config('forgeerp.tenant_id', bind_tenant.tenant_id::text, true);
END
$$;

CREATE FUNCTION forgeerp.purge_tenant(tenant_id uuid) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shard integer;
    state text; message text; detail text; hint text;
BEGIN
    IF pg_catalog.current_setting('is_superuser') <> 'on' THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format('only a superuser may purge a tenant (%I is not one)', CURRENT_USER);
    END IF;
    shard := forgeerp_proxy.route(purge_tenant.tenant_id);
    IF coalesce(pg_catalog.current_setting('forgeerp.allow_purge', true), 'off') <> 'on' THEN
        RAISE EXCEPTION USING ERRCODE = 'ES006',
            MESSAGE = pg_catalog.format('purging tenant %s needs SET LOCAL forgeerp.allow_purge = on in this transaction', purge_tenant.tenant_id);
    END IF;
    BEGIN
        RETURN forgeerp_proxy.purge_tenant(purge_tenant.tenant_id);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
        PERFORM forgeerp_proxy.reraise(shard, state, message, detail, hint);
    END;
END
$$;

-- Grants a role what an application needs on the proxy (the contract's
-- functions and the routing) and, on every shard, forgeerp.grant_usage with
-- the same scope. The role must exist on every shard, under the same name.
CREATE FUNCTION forgeerp.grant_usage(role_name name, tenant_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shard integer;
    state text; message text; detail text; hint text;
BEGIN
    IF role_name IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = grant_usage.role_name) THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003',
            MESSAGE = pg_catalog.format('role %s does not exist', coalesce(pg_catalog.quote_ident(role_name), 'NULL'));
    END IF;
    FOR shard IN SELECT s.shard FROM forgeerp.shards() s LOOP
        BEGIN
            PERFORM forgeerp_proxy.grant_usage(shard, grant_usage.role_name, grant_usage.tenant_id);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
            PERFORM forgeerp_proxy.reraise(shard, state, message, detail, hint);
        END;
    END LOOP;
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA forgeerp, forgeerp_proxy TO %I', role_name);
    EXECUTE pg_catalog.format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA forgeerp, forgeerp_proxy TO %I', role_name);
    EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION forgeerp.grant_usage(name, uuid), forgeerp.revoke_usage(name), forgeerp.purge_tenant(uuid) FROM %I', role_name);
    EXECUTE pg_catalog.format('GRANT USAGE ON FOREIGN SERVER forgeerp_shards TO %I', role_name);
END
$$;

CREATE FUNCTION forgeerp.revoke_usage(role_name name) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shard integer;
    state text; message text; detail text; hint text;
BEGIN
    FOR shard IN SELECT s.shard FROM forgeerp.shards() s LOOP
        BEGIN
            PERFORM forgeerp_proxy.revoke_usage(shard, revoke_usage.role_name);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
            PERFORM forgeerp_proxy.reraise(shard, state, message, detail, hint);
        END;
    END LOOP;
    EXECUTE pg_catalog.format('REVOKE USAGE ON FOREIGN SERVER forgeerp_shards FROM %I', role_name);
    EXECUTE pg_catalog.format('REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA forgeerp, forgeerp_proxy FROM %I', role_name);
    EXECUTE pg_catalog.format('REVOKE USAGE ON SCHEMA forgeerp, forgeerp_proxy FROM %I', role_name);
END
$$;

CREATE FUNCTION forgeerp.version() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'forgeerp_proxy' $$;

-- Nothing is callable by default: grant_usage gives it.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA forgeerp, forgeerp_proxy FROM PUBLIC;
-- PL/Proxy 2.10's validator crashes the backend on some input (PL/Proxy
-- issue 51) and is executable by everyone: only superusers keep it.
REVOKE EXECUTE ON FUNCTION plproxy_fdw_validator(text[], oid) FROM PUBLIC;

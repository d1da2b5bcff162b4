-- The global feed. Rows are returned in (transaction_id, global_position)
-- order and only below the xmin of the current snapshot: every transaction
-- with a smaller xid has ended, so nothing can still commit an event that
-- sorts before a returned one. A reader that passes the last row back as its
-- cursor therefore sees every committed event exactly once.
--
-- The price: any open transaction that has an xid (or holds back the xmin)
-- holds the feed back until it ends. forgeerp.feed_holdback shows who.
CREATE FUNCTION forgeerp.feed_horizon() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::bigint $$;

COMMENT ON FUNCTION forgeerp.feed_horizon() IS
    'The feed is complete below this transaction id: read_all returns only events of transactions below it.';

-- forgeerp.read_all is a SECURITY INVOKER wrapper that names its caller (see
-- fn_scope_of.sql); read_all_as reads with the owner's rights.
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

CREATE FUNCTION forgeerp.read_all(
    after_transaction bigint  DEFAULT 0,
    after_position    bigint  DEFAULT 0,
    max_count         integer DEFAULT 1000,
    tenant_id         uuid    DEFAULT NULL
) RETURNS SETOF forgeerp.events
LANGUAGE sql STABLE
AS $$ SELECT * FROM forgeerp.read_all_as(CURRENT_USER, after_transaction, after_position, max_count, tenant_id) $$;

COMMENT ON FUNCTION forgeerp.read_all(bigint, bigint, integer, uuid) IS
    'The global feed after the cursor (after_transaction, after_position), gap-free: pass the last row''s (transaction_id, global_position) back.';

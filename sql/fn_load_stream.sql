-- forgeerp.load_stream: a SECURITY INVOKER wrapper that names its caller
-- (see fn_scope_of.sql), and the function that reads with the owner's rights.
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

CREATE FUNCTION forgeerp.load_stream(
    tenant_id     uuid,
    aggregate_id  uuid,
    from_sequence bigint  DEFAULT 1,
    max_count     integer DEFAULT NULL
) RETURNS SETOF forgeerp.events
LANGUAGE sql STABLE
AS $$ SELECT * FROM forgeerp.load_stream_as(CURRENT_USER, tenant_id, aggregate_id, from_sequence, max_count) $$;

COMMENT ON FUNCTION forgeerp.load_stream(uuid, uuid, bigint, integer) IS
    'The events of one stream in sequence order, from from_sequence, at most max_count (NULL: all).';

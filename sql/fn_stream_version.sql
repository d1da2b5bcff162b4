CREATE FUNCTION forgeerp.stream_version(tenant_id uuid, aggregate_id uuid) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$
BEGIN
    PERFORM forgeerp.check_tenant(stream_version.tenant_id);
    IF stream_version.aggregate_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'aggregate_id must not be NULL';
    END IF;
    RETURN coalesce((SELECT max(e.sequence_number) FROM forgeerp.events e
                      WHERE e.tenant_id = stream_version.tenant_id
                        AND e.aggregate_id = stream_version.aggregate_id), 0);
END
$$;

COMMENT ON FUNCTION forgeerp.stream_version(uuid, uuid) IS
    'The version (last sequence number) of a stream; 0 when it has no events.';

-- forgeerp.stream_version: a SECURITY INVOKER wrapper that names its caller
-- (see fn_scope_of.sql), and the function that answers with the owner's rights.
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

CREATE FUNCTION forgeerp.stream_version(tenant_id uuid, aggregate_id uuid) RETURNS bigint
LANGUAGE sql STABLE
AS $$ SELECT forgeerp.stream_version_as(CURRENT_USER, tenant_id, aggregate_id) $$;

COMMENT ON FUNCTION forgeerp.stream_version(uuid, uuid) IS
    'The version (last sequence number) of a stream; 0 when it has no events.';

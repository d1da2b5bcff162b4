-- What an application role needs, and nothing more: it reaches the tables only
-- through the SECURITY DEFINER functions.
CREATE FUNCTION forgeerp.grant_usage(role_name name) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$
BEGIN
    IF role_name IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'role_name must not be NULL';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = role_name) THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = format('role %I does not exist', role_name);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA forgeerp TO %I', role_name);
    EXECUTE format('GRANT EXECUTE ON FUNCTION
        forgeerp.append(uuid, text, uuid, bigint, jsonb),
        forgeerp.load_stream(uuid, uuid, bigint, integer),
        forgeerp.stream_version(uuid, uuid),
        forgeerp.read_all(bigint, bigint, integer, uuid),
        forgeerp.bind_tenant(uuid),
        forgeerp.version()
      TO %I', role_name);
END
$$;

COMMENT ON FUNCTION forgeerp.grant_usage(name) IS
    'Grants a role what an application needs to call the forgeerp functions; it gets no privilege on any table.';

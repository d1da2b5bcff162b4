-- forgeerp 0.1.0 -> 0.2.0: every function that pins its search_path puts
-- pg_catalog first and pg_temp last, explicitly.
--
-- 0.1.0 pinned `forgeerp, pg_catalog`. A schema list without pg_temp searches
-- the session's temporary schema *first* for relations and types, so any role
-- that can connect could create `pg_temp.text` (a domain whose CHECK calls its
-- own function) and have a SECURITY DEFINER function run that function with
-- the owner's rights. The bodies are unchanged; only the setting is.
ALTER FUNCTION forgeerp.check_tenant(uuid, text)
    SET search_path = pg_catalog, forgeerp, pg_temp;
ALTER FUNCTION forgeerp.bind_tenant(uuid)
    SET search_path = pg_catalog, forgeerp, pg_temp;
ALTER FUNCTION forgeerp.stream_version(uuid, uuid)
    SET search_path = pg_catalog, forgeerp, pg_temp;
ALTER FUNCTION forgeerp.load_stream(uuid, uuid, bigint, integer)
    SET search_path = pg_catalog, forgeerp, pg_temp;
ALTER FUNCTION forgeerp.read_all(bigint, bigint, integer, uuid)
    SET search_path = pg_catalog, forgeerp, pg_temp;
ALTER FUNCTION forgeerp.version()
    SET search_path = pg_catalog, forgeerp, pg_temp;
ALTER FUNCTION forgeerp.reject_event_mutation()
    SET search_path = pg_catalog, forgeerp, pg_temp;
ALTER FUNCTION forgeerp.append(uuid, text, uuid, bigint, jsonb)
    SET search_path = pg_catalog, forgeerp, pg_temp;
ALTER FUNCTION forgeerp.grant_usage(name)
    SET search_path = pg_catalog, forgeerp, pg_temp;

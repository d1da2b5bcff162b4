CREATE FUNCTION forgeerp.version() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$ SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'forgeerp' $$;

COMMENT ON FUNCTION forgeerp.version() IS 'The installed version of the forgeerp extension.';

-- forgeerp.events is append-only for everyone, its owner included, and in
-- every session_replication_role (ENABLE ALWAYS: `replica` does not turn the
-- triggers off).
-- Statement-level triggers fire even when no row matches, so an UPDATE or
-- DELETE that would change nothing is refused too. The one exception is the
-- DELETE that forgeerp.purge_tenant runs (fn_purge_tenant.sql): a
-- superuser's, while forgeerp.purging names the tenant (a setting only
-- superusers can set, and only that function sets).
CREATE FUNCTION forgeerp.reject_event_mutation() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'events'
       AND current_setting('is_superuser') = 'on'
       AND coalesce(current_setting('forgeerp.purging', true), '') <> '' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'ES006',
        MESSAGE = format('%s on forgeerp.%s is not allowed: the event store is append-only', TG_OP, TG_TABLE_NAME),
        HINT = CASE TG_TABLE_NAME
                   WHEN 'events' THEN 'Correct an event by appending a compensating event; a whole tenant is removed with forgeerp.purge_tenant.'
                   ELSE 'The record of purges is kept for good.'
               END;
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON forgeerp.events
    FOR EACH STATEMENT EXECUTE FUNCTION forgeerp.reject_event_mutation();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON forgeerp.events
    FOR EACH STATEMENT EXECUTE FUNCTION forgeerp.reject_event_mutation();

ALTER TABLE forgeerp.events ENABLE ALWAYS TRIGGER events_append_only;
ALTER TABLE forgeerp.events ENABLE ALWAYS TRIGGER events_no_truncate;

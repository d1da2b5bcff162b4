-- forgeerp.events is append-only for everyone, its owner included, and in
-- every session_replication_role (ENABLE ALWAYS: `replica` does not turn the
-- triggers off).
-- Statement-level triggers fire even when no row matches, so an UPDATE or
-- DELETE that would change nothing is refused too.
CREATE FUNCTION forgeerp.reject_event_mutation() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'ES006',
        MESSAGE = format('%s on forgeerp.events is not allowed: the event store is append-only', TG_OP),
        HINT = 'Correct an event by appending a compensating event.';
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

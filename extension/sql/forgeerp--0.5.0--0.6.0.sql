-- forgeerp 0.5.0 -> 0.6.0
--
-- Offboarding a tenant (API v2): forgeerp.purge_tenant, the one sanctioned
-- exception to append-only, for superusers only and only with SET LOCAL
-- forgeerp.allow_purge = on; every purge recorded in forgeerp.purges, itself
-- append-only. The append-only trigger function lets exactly that DELETE
-- through. No data is touched.

CREATE OR REPLACE FUNCTION forgeerp.reject_event_mutation() RETURNS trigger
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

CREATE TABLE forgeerp.purges (
    tenant_id      uuid        NOT NULL,
    purged_by      name        NOT NULL,
    purged_at      timestamptz NOT NULL,
    events_removed bigint      NOT NULL CHECK (events_removed >= 0)
);

COMMENT ON TABLE forgeerp.purges IS
    'Every forgeerp.purge_tenant: which tenant, by whom, when, how many events. Append-only.';

CREATE TRIGGER purges_append_only
    BEFORE UPDATE OR DELETE ON forgeerp.purges
    FOR EACH STATEMENT EXECUTE FUNCTION forgeerp.reject_event_mutation();

CREATE TRIGGER purges_no_truncate
    BEFORE TRUNCATE ON forgeerp.purges
    FOR EACH STATEMENT EXECUTE FUNCTION forgeerp.reject_event_mutation();

ALTER TABLE forgeerp.purges ENABLE ALWAYS TRIGGER purges_append_only;
ALTER TABLE forgeerp.purges ENABLE ALWAYS TRIGGER purges_no_truncate;

CREATE FUNCTION forgeerp.purge_tenant(tenant_id uuid) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$
DECLARE
    removed bigint;
BEGIN
    IF current_setting('is_superuser') <> 'on' THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = format('only a superuser may purge a tenant (%I is not one)', CURRENT_USER);
    END IF;
    IF purge_tenant.tenant_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'ES003', MESSAGE = 'tenant_id must not be NULL';
    END IF;
    IF coalesce(current_setting('forgeerp.allow_purge', true), 'off') <> 'on' THEN
        RAISE EXCEPTION USING ERRCODE = 'ES006',
            MESSAGE = format('purging tenant %s needs SET LOCAL forgeerp.allow_purge = on in this transaction', purge_tenant.tenant_id),
            HINT = 'BEGIN; SET LOCAL forgeerp.allow_purge = on; SELECT forgeerp.purge_tenant(…); COMMIT;';
    END IF;
    PERFORM set_config('forgeerp.purging', purge_tenant.tenant_id::text, true);
    DELETE FROM forgeerp.events e WHERE e.tenant_id = purge_tenant.tenant_id;
    GET DIAGNOSTICS removed = ROW_COUNT;
    PERFORM set_config('forgeerp.purging', '', true);
    INSERT INTO forgeerp.purges (tenant_id, purged_by, purged_at, events_removed)
        VALUES (purge_tenant.tenant_id, SESSION_USER, now(), removed);
    RETURN removed;
END
$$;

COMMENT ON FUNCTION forgeerp.purge_tenant(uuid) IS
    'Removes every event of one tenant (superusers only, with SET LOCAL forgeerp.allow_purge = on) and records it in forgeerp.purges; returns the number removed.';

-- Nothing for PUBLIC (as privileges.sql does at install).
REVOKE ALL ON TABLE forgeerp.purges FROM PUBLIC;
REVOKE ALL ON FUNCTION forgeerp.purge_tenant(uuid) FROM PUBLIC;

-- Offboarding a tenant: the one sanctioned exception to append-only.
-- forgeerp.purge_tenant removes every event of one tenant and nothing else,
-- for superusers only, in a transaction that has said so (SET LOCAL
-- forgeerp.allow_purge = on), and records it in forgeerp.purges, which is
-- itself append-only. Other tenants' events, their positions and every
-- reader's cursor are untouched: the feed stays gap-free for what remains.
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

-- Migration 8: the tenants purged from this database (forgeerp.purge_tenant
-- through the driver), each with the feed's head when it was purged.
--
-- A projection worker may hold, in memory, events of a tenant read before
-- the purge and not yet applied. When it applies them, it first looks here
-- (after its checkpoint's lock, which the purge also takes, so it sees every
-- purge committed before it) and skips that tenant's events up to the head,
-- so a purge is not undone by a worker that was running. Events of the
-- tenant appended after the purge are past the head and apply as usual.
--
-- Not tenant data, and read by workers across tenants: no row-level
-- security. Whoever could read the checkpoints (a worker's role) can read it.
CREATE TABLE forgeerp_read.purged_tenants (
    tenant_id      uuid        PRIMARY KEY,
    transaction_id bigint      NOT NULL,
    global_position bigint     NOT NULL,
    purged_at      timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE forgeerp_read.purged_tenants IS
    'Tenants purged through the driver, with the feed head at the purge: projection workers skip their events up to it.';

DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE pg_catalog.quote_ident(r.rolname) END
          FROM pg_catalog.pg_class c,
               LATERAL pg_catalog.aclexplode(c.relacl) AS a
          LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
         WHERE c.oid = 'forgeerp_read.checkpoints'::pg_catalog.regclass
           AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner
    LOOP
        EXECUTE pg_catalog.format('GRANT SELECT ON forgeerp_read.purged_tenants TO %s', grantee);
    END LOOP;
END
$$;

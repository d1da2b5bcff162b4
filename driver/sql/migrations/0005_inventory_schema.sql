-- Migration 5: the inventory read models move to a schema of their own,
-- forgeerp_inventory: the stock history (its runs and the per-point view)
-- and the anomaly detector's insights. forgeerp_read keeps what every
-- projection shares: entries, checkpoints, parked events, the migrations'
-- record and the binding rule. Rows, indexes, row-level security, policies
-- and table privileges move with the tables.
CREATE SCHEMA forgeerp_inventory;

ALTER TABLE forgeerp_read.stock_history_runs SET SCHEMA forgeerp_inventory;
ALTER VIEW forgeerp_read.stock_history_points SET SCHEMA forgeerp_inventory;
ALTER TABLE forgeerp_read.ai_insights SET SCHEMA forgeerp_inventory;

-- A role that could reach the tables before can reach them where they are:
-- whoever was given USAGE on forgeerp_read gets USAGE on the new schema.
DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE pg_catalog.quote_ident(r.rolname) END
          FROM pg_catalog.pg_namespace n,
               LATERAL pg_catalog.aclexplode(n.nspacl) AS a
          LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
         WHERE n.nspname = 'forgeerp_read' AND a.privilege_type = 'USAGE'
           AND a.grantee <> n.nspowner
    LOOP
        EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA forgeerp_inventory TO %s', grantee);
    END LOOP;
END
$$;

-- forgeerp stats: tenants, streams and events as the planner estimates them
-- (pg_class.reltuples, pg_stats.n_distinct, as of the last ANALYZE or
-- autovacuum): instant at any size. Streams are estimated by the distinct
-- aggregate ids (random uuids: one per stream). 0 before any ANALYZE.
WITH events AS (
    SELECT greatest(c.reltuples, 0)::float8 AS n
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace
     WHERE s.nspname = 'forgeerp' AND c.relname = 'events'
), distinct_of AS (
    SELECT st.attname, CASE WHEN st.n_distinct < 0 THEN -st.n_distinct * events.n ELSE st.n_distinct END AS n
      FROM pg_catalog.pg_stats st, events
     WHERE st.schemaname = 'forgeerp' AND st.tablename = 'events'
)
SELECT coalesce((SELECT round(n) FROM distinct_of WHERE attname = 'tenant_id'), 0)::bigint,
       coalesce((SELECT round(n) FROM distinct_of WHERE attname = 'aggregate_id'), 0)::bigint,
       (SELECT round(n) FROM events)::bigint

-- Claims the leadership of projection $1 for tenant key $2; true when had.
-- An advisory lock (key space: one bigint, which PostgreSQL keeps apart
-- from the stream locks of the extension) on a key made of both:
-- $3 false: held by the session until it ends or unlocks, so a worker that
--           dies, is killed or loses its connection lets go at once and a
--           standby takes over (a worker's leadership);
-- $3 true:  held until the transaction ends (resplit, which must find no
--           worker leading).
SELECT CASE WHEN $3 THEN pg_catalog.pg_try_advisory_xact_lock(key.k)
            ELSE pg_catalog.pg_try_advisory_lock(key.k) END
  FROM (SELECT pg_catalog.hashtextextended('forgeerp projection ' || $1 || ' ' || $2, 0)) AS key (k)

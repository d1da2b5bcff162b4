-- How far the stock projection is behind the feed, without reading the
-- events past its checkpoint ($1 transaction id, $2 global position; $3 its
-- tenant, NULL for every tenant):
-- events:  the feed's last position less the checkpoint's, an estimate
--          (rolled-back appends leave gaps; a tenant's worker counts every
--          tenant's events);
-- seconds: the age of the first event after the checkpoint, 0 when there is
--          none (one index step through read_all).
SELECT greatest(coalesce(pg_catalog.pg_sequence_last_value('forgeerp.events_global_position_seq'::pg_catalog.regclass), 0) - $2, 0)::bigint AS events,
       coalesce((SELECT extract(epoch FROM pg_catalog.now() - e.recorded_at)::float8
                   FROM forgeerp.read_all($1, $2, 1, $3) AS e), 0)::float8 AS seconds

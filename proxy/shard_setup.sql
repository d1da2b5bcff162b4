-- Makes the current database shard :shard of a sharded deployment (psql,
-- from scripts/setup_shards.sh): the forgeerp extension at the installed
-- version, and global positions from its own range, shard * 2^48 + 1 to
-- (shard + 1) * 2^48, so that positions never collide across shards. The
-- range is set once; the sequence restarts at the range's start only when it
-- is still below it (a shard's positions never go back).
CREATE EXTENSION IF NOT EXISTS forgeerp;
ALTER EXTENSION forgeerp UPDATE;
SELECT (:shard::bigint << 48) + 1 AS lo, (:shard::bigint + 1) << 48 AS hi \gset
SELECT max_value <> :hi AS unset, coalesce(last_value, 0) < :lo AS below
  FROM pg_sequences
 WHERE schemaname = 'forgeerp' AND sequencename = 'events_global_position_seq' \gset
\if :unset
ALTER SEQUENCE forgeerp.events_global_position_seq MINVALUE 1 MAXVALUE :hi START WITH :lo;
\endif
\if :below
ALTER SEQUENCE forgeerp.events_global_position_seq MINVALUE :lo RESTART WITH :lo;
\endif

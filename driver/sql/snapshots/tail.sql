-- The stream's events after its snapshot at one state schema version (all
-- of them when it has none), in a transaction bound to the tenant, in the
-- same REPEATABLE READ view as the snapshot's read (load.sql).
-- $1 tenant, $2 aggregate type, $3 aggregate, $4 state version.
SELECT e.*
  FROM forgeerp.load_stream($1, $3,
       coalesce((SELECT s.stream_version FROM forgeerp_read.snapshots s
                  WHERE s.tenant_id = $1 AND s.aggregate_type = $2 AND s.aggregate_id = $3
                    AND s.state_version = $4), 0) + 1) AS e

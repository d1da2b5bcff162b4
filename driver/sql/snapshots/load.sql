-- The snapshot of one aggregate at one state schema version, in a
-- transaction bound to its tenant ($1 tenant, $2 aggregate type,
-- $3 aggregate, $4 state version).
SELECT stream_version, state
  FROM forgeerp_read.snapshots
 WHERE tenant_id = $1 AND aggregate_type = $2 AND aggregate_id = $3 AND state_version = $4

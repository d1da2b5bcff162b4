-- Keeps the newest snapshot of one aggregate at one state schema version: a
-- snapshot older than the stored one (a slow writer) changes nothing.
-- $1 tenant, $2 aggregate type, $3 aggregate, $4 state version,
-- $5 stream version, $6 state.
INSERT INTO forgeerp_read.snapshots AS s
       (tenant_id, aggregate_type, aggregate_id, state_version, stream_version, state)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
    ON CONFLICT (tenant_id, aggregate_type, aggregate_id, state_version) DO UPDATE
   SET stream_version = excluded.stream_version, state = excluded.state, taken_at = now()
 WHERE s.stream_version < excluded.stream_version

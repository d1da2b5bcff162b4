-- A stream's head: its version (last sequence number) and aggregate type
-- (append.rs, after taking the stream's lock). $1 tenant, $2 aggregate.
SELECT e.sequence_number, e.aggregate_type
  FROM forgeerp.events e
 WHERE e.tenant_id = $1 AND e.aggregate_id = $2
 ORDER BY e.sequence_number DESC
 LIMIT 1

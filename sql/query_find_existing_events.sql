-- The stored events whose ids a batch reuses, in batch order (append.rs, on
-- the retry path only). $1 tenant, $2 the events array.
SELECT e.event_id, e.sequence_number, e.global_position, e.transaction_id, e.recorded_at,
       b.ord, e.aggregate_id, e.aggregate_type,
       e.event_type = b.ev ->> 'event_type' AND e.payload = b.ev -> 'payload' AS same_content
  FROM pg_catalog.jsonb_array_elements($2) WITH ORDINALITY AS b (ev, ord)
  JOIN forgeerp.events e
    ON e.tenant_id = $1
   AND e.event_id = (b.ev ->> 'event_id')::pg_catalog.uuid
 ORDER BY b.ord

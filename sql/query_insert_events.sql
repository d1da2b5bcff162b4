-- The append path's insert (prepared once per backend by append.rs).
-- $1 transaction id, $2 tenant, $3 aggregate type, $4 aggregate id,
-- $5 stream version before the batch, $6 the validated events array.
-- Rows whose event id stands already are skipped (ON CONFLICT); append.rs
-- counts the returned rows and sorts retries from duplicates.
INSERT INTO forgeerp.events AS e
    (transaction_id, tenant_id, aggregate_type, aggregate_id, sequence_number,
     event_id, event_type, event_version, payload, metadata, occurred_at, recorded_at)
SELECT $1, $2, $3, $4, $5 + b.ord,
       coalesce((b.ev ->> 'event_id')::uuid, pg_catalog.gen_random_uuid()),
       b.ev ->> 'event_type',
       coalesce((b.ev ->> 'event_version')::integer, 1),
       b.ev -> 'payload',
       coalesce(nullif(b.ev -> 'metadata', 'null'::jsonb), '{}'::jsonb),
       coalesce((b.ev ->> 'occurred_at')::timestamptz, pg_catalog.now()),
       pg_catalog.now()
  FROM pg_catalog.jsonb_array_elements($6) WITH ORDINALITY AS b (ev, ord)
 ORDER BY b.ord
    ON CONFLICT (tenant_id, event_id) DO NOTHING
RETURNING e.event_id, e.sequence_number, e.global_position, e.transaction_id, e.recorded_at

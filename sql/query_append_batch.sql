-- The append path's one statement (prepared once per backend by append.rs,
-- which holds the stream's lock and has ruled out reused event ids):
-- read the stream's head, check aggregate type and expected version against
-- it, and insert the whole batch after it. No row comes back when a check
-- fails; append.rs then reads the head again to name the failure.
-- $1 transaction id, $2 tenant, $3 aggregate type, $4 aggregate id,
-- $5 and $6 the lowest and highest stream version the expected version
-- allows (forgeerp_contract::ExpectedVersion::allowed_versions, the one home
-- of that rule), $7 the validated events array.
-- Every type is named with its schema: the statement runs with the owner's
-- rights, and an unqualified type name is a lookup an attacker may try to
-- shadow (pinned search_path aside).
WITH head AS MATERIALIZED (
    SELECT coalesce(last.sequence_number, 0) AS version, last.aggregate_type
      FROM (SELECT) AS one
      LEFT JOIN LATERAL (
            SELECT h.sequence_number, h.aggregate_type FROM forgeerp.events h
             WHERE h.tenant_id = $2 AND h.aggregate_id = $4
             ORDER BY h.sequence_number DESC LIMIT 1) AS last ON true
)
INSERT INTO forgeerp.events AS e
    (transaction_id, tenant_id, aggregate_type, aggregate_id, sequence_number,
     event_id, event_type, event_version, payload, metadata, occurred_at, recorded_at)
SELECT $1, $2, $3, $4, head.version + b.ord,
       coalesce((b.ev ->> 'event_id')::pg_catalog.uuid, pg_catalog.gen_random_uuid()),
       b.ev ->> 'event_type',
       coalesce((b.ev ->> 'event_version')::pg_catalog.int4, 1),
       b.ev -> 'payload',
       coalesce(nullif(b.ev -> 'metadata', 'null'::pg_catalog.jsonb), '{}'::pg_catalog.jsonb),
       coalesce((b.ev ->> 'occurred_at')::pg_catalog.timestamptz, pg_catalog.now()),
       pg_catalog.now()
  FROM head, pg_catalog.jsonb_array_elements($7) WITH ORDINALITY AS b (ev, ord)
 WHERE (head.aggregate_type IS NULL OR head.aggregate_type = $3)
   AND head.version BETWEEN $5 AND $6
 ORDER BY b.ord
RETURNING e.event_id, e.sequence_number, e.global_position, e.transaction_id, e.recorded_at

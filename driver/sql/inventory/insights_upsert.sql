-- Writes a run's insights in one statement (PgInsightSink::emit): $1 tenant,
-- then one array per column, in the same order: $2 item, $3 kind,
-- $4 occurred_at, $5 severity, $6 score, $7 observed, $8 expected, $9 SKU,
-- $10 name, $11 explanation. A finding found again refreshes its row.
INSERT INTO forgeerp_inventory.ai_insights
     (tenant_id, item_id, kind, occurred_at, severity, score, observed, expected, sku, name, explanation)
SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::timestamptz[], $5::text[],
                         $6::float8[], $7::float8[], $8::float8[], $9::text[], $10::text[], $11::text[])
    ON CONFLICT (tenant_id, item_id, kind, occurred_at) DO UPDATE
   SET severity = excluded.severity, score = excluded.score,
       observed = excluded.observed, expected = excluded.expected, sku = excluded.sku,
       name = excluded.name, explanation = excluded.explanation, last_seen_at = now()

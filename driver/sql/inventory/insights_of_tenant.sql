-- A tenant's insights, most severe and most recent first
-- (PgInsightSink::insights). $1 tenant.
SELECT item_id, sku, name, kind, severity, score, observed, expected, occurred_at, explanation
  FROM forgeerp_inventory.ai_insights WHERE tenant_id = $1
 ORDER BY CASE severity WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, occurred_at DESC

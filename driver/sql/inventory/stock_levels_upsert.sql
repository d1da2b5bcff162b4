-- Writes a batch's stock levels in one statement
-- (InventoryStockProjection::apply_batch). $1 model, $2 tenant,
-- $3 item keys, $4 their levels as jsonb, in the same order.
INSERT INTO forgeerp_read.entries (model, tenant_id, key, value)
SELECT $1, $2, k, v FROM unnest($3::text[], $4::jsonb[]) AS u (k, v)
    ON CONFLICT (model, tenant_id, key) DO UPDATE SET value = excluded.value, updated_at = now()

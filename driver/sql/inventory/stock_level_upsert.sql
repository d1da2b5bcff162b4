-- Writes one item's stock level (InventoryStockProjection::apply).
-- $1 model, $2 tenant, $3 item key, $4 the level as jsonb.
INSERT INTO forgeerp_read.entries (model, tenant_id, key, value) VALUES ($1, $2, $3, $4)
    ON CONFLICT (model, tenant_id, key) DO UPDATE SET value = excluded.value, updated_at = now()

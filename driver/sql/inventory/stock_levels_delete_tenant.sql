-- Throws away a tenant's stock levels before a replay
-- (InventoryStockProjection::rebuild_tenant). $1 model, $2 tenant.
DELETE FROM forgeerp_read.entries WHERE model = $1 AND tenant_id = $2

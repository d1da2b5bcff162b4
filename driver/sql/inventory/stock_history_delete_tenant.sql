-- Throws away a tenant's stock history before a replay
-- (InventoryStockProjection::rebuild_tenant). $1 tenant.
DELETE FROM forgeerp_inventory.stock_history_runs WHERE tenant_id = $1

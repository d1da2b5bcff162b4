-- Every item's stock history of a tenant, item by item, oldest first
-- (InventoryStockReader's snapshot). $1 tenant.
SELECT aggregate_id, occurred_at, on_hand, reserved FROM forgeerp_inventory.stock_history_points
 WHERE tenant_id = $1
 ORDER BY aggregate_id, sequence_number

-- One item's stock history, oldest first (InventoryStockProjection::history).
-- $1 tenant, $2 item.
SELECT sequence_number, occurred_at, on_hand, reserved FROM forgeerp_inventory.stock_history_points
 WHERE tenant_id = $1 AND aggregate_id = $2
 ORDER BY sequence_number

-- One item's stock level, locked until the transaction ends
-- (InventoryStockProjection::apply). $1 model, $2 tenant, $3 item key.
SELECT value FROM forgeerp_read.entries
 WHERE model = $1 AND tenant_id = $2 AND key = $3
   FOR UPDATE

-- The stock levels of a batch's items, locked until the transaction ends
-- (InventoryStockProjection::apply_batch). $1 model, $2 tenant, $3 item keys.
SELECT key, value FROM forgeerp_read.entries
 WHERE model = $1 AND tenant_id = $2 AND key = ANY($3)
   FOR UPDATE

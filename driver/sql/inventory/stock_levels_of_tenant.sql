-- Every stock level of a tenant, by item key (InventoryStockReader's
-- snapshot). $1 model, $2 tenant.
SELECT key, value FROM forgeerp_read.entries
 WHERE model = $1 AND tenant_id = $2
 ORDER BY key

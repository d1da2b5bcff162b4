-- One page of a tenant's feed for a replay
-- (InventoryStockProjection::rebuild_tenant, which stops at a page shorter
-- than these 1000 events). $1 transaction id and $2 global position to read
-- after, $3 tenant.
SELECT e.* FROM forgeerp.read_all($1, $2, 1000, $3) AS e

-- The events of a stream the projection has not seen, to heal a gap
-- (InventoryStockProjection::apply). $1 tenant, $2 item, $3 first missing
-- sequence number, $4 how many.
SELECT e.* FROM forgeerp.load_stream($1, $2, $3, $4) AS e

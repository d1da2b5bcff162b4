-- Waits for every projection worker's transaction in flight and holds the
-- next ones back until the purge commits: each moves its checkpoint, and
-- this locks them all. A worker that then applies events it read before the
-- purge finds the purge in forgeerp_read.purged_tenants and skips them.
SELECT count(*) FROM (SELECT FROM forgeerp_read.checkpoints FOR UPDATE) AS locked

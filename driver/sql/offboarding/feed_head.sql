-- The feed's last position before the purge (no row when it is empty):
-- every event of the purged tenant is at or before it.
SELECT transaction_id, global_position
  FROM forgeerp.events
 ORDER BY transaction_id DESC, global_position DESC
 LIMIT 1

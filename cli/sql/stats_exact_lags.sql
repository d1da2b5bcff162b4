-- forgeerp stats --exact: each projection's checkpoint and the events after
-- it, counted (a scan of the events past every checkpoint).
SELECT c.projection, c.tenant_key, c.transaction_id, c.global_position, c.updated_at,
       (SELECT count(*) FROM forgeerp.events e
         WHERE (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)
           AND (c.tenant_key = '*' OR e.tenant_id::text = c.tenant_key)) AS lag
  FROM forgeerp_read.checkpoints c ORDER BY 1, 2

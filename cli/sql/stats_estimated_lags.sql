-- forgeerp stats: each projection's checkpoint and its lag estimated from
-- the feed's last position (the sequence of global_position) less the
-- checkpoint's: no scan of the events. Rolled-back appends leave gaps, and a
-- tenant's checkpoint is compared with every tenant's feed.
SELECT c.projection, c.tenant_key, c.transaction_id, c.global_position, c.updated_at,
       greatest(coalesce(pg_catalog.pg_sequence_last_value('forgeerp.events_global_position_seq'::pg_catalog.regclass), 0)
                - c.global_position, 0)::bigint AS lag
  FROM forgeerp_read.checkpoints c ORDER BY 1, 2

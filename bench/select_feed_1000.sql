\set page random(0, 19)
SELECT * FROM forgeerp.events WHERE tenant_id = '22222222-2222-4222-8222-222222222222' AND (transaction_id, global_position) > (:tx, :gp + :page * 1000) AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint ORDER BY transaction_id, global_position LIMIT 1000;

-- Everything the driver keeps of tenant $1, after its events are purged:
-- read models, stock history, insights, parked events, snapshots, data keys
-- and its own checkpoints ('<tenant>' and its partitions '<tenant>#i/K';
-- the checkpoints of workers over every tenant, '*', stay). The purge is
-- recorded with the feed head $2, $3 for workers that were running.
WITH entries AS (
    DELETE FROM forgeerp_read.entries WHERE tenant_id = $1 RETURNING 1
), history AS (
    DELETE FROM forgeerp_inventory.stock_history_runs WHERE tenant_id = $1 RETURNING 1
), insights AS (
    DELETE FROM forgeerp_inventory.ai_insights WHERE tenant_id = $1 RETURNING 1
), parked AS (
    DELETE FROM forgeerp_read.parked_events WHERE tenant_id = $1 RETURNING 1
), snapshots AS (
    DELETE FROM forgeerp_read.snapshots WHERE tenant_id = $1 RETURNING 1
), data_keys AS (
    DELETE FROM forgeerp_keys.subject_keys WHERE tenant_id = $1 RETURNING 1
), checkpoints AS (
    DELETE FROM forgeerp_read.checkpoints
     WHERE tenant_key = $1::text OR starts_with(tenant_key, $1::text || '#')
    RETURNING 1
), recorded AS (
    INSERT INTO forgeerp_read.purged_tenants (tenant_id, transaction_id, global_position)
    VALUES ($1, $2, $3)
    ON CONFLICT (tenant_id) DO UPDATE
       SET transaction_id = excluded.transaction_id,
           global_position = excluded.global_position,
           purged_at = now()
    RETURNING 1
)
SELECT (SELECT count(*) FROM entries)     AS read_model_entries,
       (SELECT count(*) FROM history)     AS stock_history_runs,
       (SELECT count(*) FROM insights)    AS insights,
       (SELECT count(*) FROM parked)      AS parked_events,
       (SELECT count(*) FROM snapshots)   AS snapshots,
       (SELECT count(*) FROM data_keys)   AS data_keys,
       (SELECT count(*) FROM checkpoints) AS checkpoints,
       (SELECT count(*) FROM recorded)    AS recorded

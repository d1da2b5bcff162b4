-- Writes a batch's stock history in one statement, one run per item
-- (stock_projection.rs, HistoryRuns::insert). $1 tenant; per run $2 item,
-- $3 first sequence number, $4 length and $5 offset (1-based) into the flat
-- arrays $6 occurred_at, $7 on hand and $8 reserved. A run whose first
-- sequence number is stored already is left alone.
INSERT INTO forgeerp_inventory.stock_history_runs
       (tenant_id, aggregate_id, first_sequence, last_sequence, occurred_at, on_hand, reserved)
SELECT $1, a, f, f + n - 1,
       ($6::timestamptz[])[o : o + n - 1], ($7::bigint[])[o : o + n - 1], ($8::bigint[])[o : o + n - 1]
  FROM unnest($2::uuid[], $3::bigint[], $4::int[], $5::int[]) AS u (a, f, n, o)
    ON CONFLICT DO NOTHING

-- Moves a projection's checkpoint from the position the worker read ($3, $4)
-- to the event it applied last ($5, $6), in the transaction that applied it.
-- A compare-and-set: when the stored checkpoint is not the one the worker
-- read (another instance moved it: a lost leadership, or two workers that
-- started at once on an empty checkpoint), nothing is written and no row
-- comes back; the worker then rolls back. So a checkpoint never moves
-- backwards and no event is applied twice.
-- $1 projection, $2 tenant key ('*': every tenant).
INSERT INTO forgeerp_read.checkpoints AS c (projection, tenant_key, transaction_id, global_position)
VALUES ($1, $2, $5, $6)
ON CONFLICT (projection, tenant_key) DO UPDATE
   SET transaction_id = excluded.transaction_id,
       global_position = excluded.global_position,
       updated_at = now()
 WHERE c.transaction_id = $3 AND c.global_position = $4
RETURNING 1

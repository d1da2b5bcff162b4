-- After a rebuild: moves the checkpoints of one slice of a projection to the
-- position the rebuilt read model is complete up to, whatever they were (the
-- slice's own and those of its partitions, '<key>#<i>/<K>'), and makes the
-- unpartitioned one when the slice has none. A worker still running on the
-- old position finds its checkpoint moved and starts again from this one.
-- $1 projection, $2 tenant key ('*': every tenant), $3 and $4 the position.
WITH moved AS (
    UPDATE forgeerp_read.checkpoints
       SET transaction_id = $3, global_position = $4, updated_at = now()
     WHERE projection = $1 AND (tenant_key = $2 OR starts_with(tenant_key, $2 || '#'))
    RETURNING 1
)
INSERT INTO forgeerp_read.checkpoints (projection, tenant_key, transaction_id, global_position)
SELECT $1, $2, $3, $4
 WHERE NOT EXISTS (SELECT FROM moved)

-- A rotation's batch: each key ($3 tenants, $4 subjects, $5 keys) wrapped
-- again by master key $2, where it is still wrapped by master key $1 (a
-- compare-and-set: two rotations at once do not undo each other).
UPDATE forgeerp_keys.subject_keys k
   SET master_key_id = $2, wrapped_key = c.wrapped_key, rewrapped_at = now()
  FROM unnest($3::uuid[], $4::text[], $5::bytea[]) AS c (tenant_id, subject, wrapped_key)
 WHERE k.tenant_id = c.tenant_id AND k.subject = c.subject AND k.master_key_id = $1

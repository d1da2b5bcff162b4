-- Up to $2 data keys of every tenant still wrapped by master key $1, for a
-- rotation (row-level security off: the rotating role must own the table
-- or bypass it).
SELECT tenant_id, subject, wrapped_key
  FROM forgeerp_keys.subject_keys
 WHERE master_key_id = $1
 ORDER BY tenant_id, subject
 LIMIT $2

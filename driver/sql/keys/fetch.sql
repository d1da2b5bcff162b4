-- The data keys of subjects $2 (text[]) of tenant $1 that exist.
SELECT subject, master_key_id, wrapped_key
  FROM forgeerp_keys.subject_keys
 WHERE tenant_id = $1::uuid AND subject = ANY ($2::text[])

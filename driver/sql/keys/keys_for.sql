-- The data keys of some subjects of the bound tenant, made where missing:
-- each candidate ($2 subjects, $3 the ids of the master keys that wrapped
-- them, $4 the wrapped keys) goes in unless its subject has a key, and the
-- stored key of every subject comes back. A subject whose key another
-- transaction committed after this statement's snapshot comes back from
-- neither branch: the caller asks again. $1 tenant.
WITH candidate AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::bytea[]) AS c (subject, master_key_id, wrapped_key)
), inserted AS (
    INSERT INTO forgeerp_keys.subject_keys (tenant_id, subject, master_key_id, wrapped_key)
    SELECT $1::uuid, subject, master_key_id, wrapped_key FROM candidate
    ON CONFLICT (tenant_id, subject) DO NOTHING
    RETURNING subject, master_key_id, wrapped_key
)
SELECT subject, master_key_id, wrapped_key FROM inserted
UNION ALL
SELECT k.subject, k.master_key_id, k.wrapped_key
  FROM forgeerp_keys.subject_keys k
 WHERE k.tenant_id = $1::uuid AND k.subject = ANY ($2::text[])
   AND k.subject NOT IN (SELECT subject FROM inserted)

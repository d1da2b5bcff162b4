-- Forgets subject $2 of tenant $1: deletes its data key, and the tenant's
-- aggregate snapshots, which may hold the subject's fields in clear (they
-- are derived data: the next load replays the events, opened without the
-- key). The first statement's row count says whether there was a key.
DELETE FROM forgeerp_keys.subject_keys WHERE tenant_id = $1::uuid AND subject = $2;
DELETE FROM forgeerp_read.snapshots WHERE tenant_id = $1::uuid

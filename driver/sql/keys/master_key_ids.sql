-- How many data keys each master key wraps, over every tenant.
SELECT master_key_id, count(*) FROM forgeerp_keys.subject_keys GROUP BY master_key_id ORDER BY master_key_id

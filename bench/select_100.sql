\set stream random(1, 200)
SELECT * FROM forgeerp.events WHERE tenant_id = '22222222-2222-4222-8222-222222222222' AND aggregate_id = ('00000000-0000-4000-8000-' || lpad(:stream::text, 12, '0'))::uuid ORDER BY sequence_number;

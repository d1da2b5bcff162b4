\set stream random(1, 200)
SELECT * FROM forgeerp.load_stream('22222222-2222-4222-8222-222222222222', ('00000000-0000-4000-8000-' || lpad((:stream + 20000)::text, 12, '0'))::uuid);

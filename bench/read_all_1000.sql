\set page random(0, 19)
SELECT * FROM forgeerp.read_all(:tx, :gp + :page * 1000, 1000, '22222222-2222-4222-8222-222222222222');

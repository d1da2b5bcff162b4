\set stream random(1, 10000)
SELECT 1 FROM forgeerp.append('22222222-2222-4222-8222-222222222222', 'bench.item', ('00000000-0000-4000-8000-' || lpad(:stream::text, 12, '0'))::uuid, NULL, '[{"event_type": "StockReceived", "payload": {"quantity": 5, "sku": "BOLT-M8"}}]');

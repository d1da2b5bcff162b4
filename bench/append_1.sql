\set stream random(1, 10000)
SELECT 1 FROM forgeerp.append('11111111-1111-4111-8111-111111111111', 'bench.item', ('00000000-0000-4000-8000-' || lpad(:stream::text, 12, '0'))::uuid, NULL, '[{"event_type": "StockReceived", "payload": {"quantity": 5, "sku": "BOLT-M8"}}]');

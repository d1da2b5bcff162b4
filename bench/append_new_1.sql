SELECT 1 FROM forgeerp.append('11111111-1111-4111-8111-111111111111', 'bench.item', gen_random_uuid(), 0, '[{"event_type": "StockReceived", "payload": {"quantity": 5, "sku": "BOLT-M8"}}]');

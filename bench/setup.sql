-- Benchmark database: the extension, a floor table with the same columns,
-- defaults, primary key and indexes as forgeerp.events (but no triggers), and
-- 200 streams of 100 events for the load benchmark.
CREATE EXTENSION forgeerp;
CREATE SCHEMA bench;
CREATE TABLE bench.events_floor (LIKE forgeerp.events INCLUDING ALL);
CREATE SEQUENCE bench.floor_sequence_number;

-- Stream k of the load benchmark is aggregate 00000000-0000-4000-8000-<k, 12 digits>.
SELECT count(*) AS preloaded_events FROM generate_series(1, 200) AS k,
  LATERAL forgeerp.append(
    '22222222-2222-4222-8222-222222222222', 'bench.item',
    ('00000000-0000-4000-8000-' || lpad(k::text, 12, '0'))::uuid, 0,
    (SELECT jsonb_agg(jsonb_build_object('event_type', 'StockReceived',
                                         'payload', jsonb_build_object('quantity', i, 'sku', 'BOLT-M8')))
       FROM generate_series(1, 100) AS i));
VACUUM ANALYZE;

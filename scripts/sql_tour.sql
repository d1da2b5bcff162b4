-- The SQL tour as a session to run in a fresh database with the extension:
--   psql -h 127.0.0.1 -p 28815 -U postgres -c 'CREATE DATABASE tour'
--   psql -h 127.0.0.1 -p 28815 -U postgres -d tour -c 'CREATE EXTENSION forgeerp' -f scripts/sql_tour.sql
-- Two tenants, a few streams, the rules the database enforces, and the feed
-- a projection would read.
\pset footer off
\set acme  '''6f1c1a52-8c36-4a4e-9d55-2a4a7c1f0b10'''
\set globex '''b3b9a1f0-0c4e-4a51-9a1a-5f3c2e7d8a90'''
\set bolt  '''0a3e7c9e-1b55-4f0e-8f8a-7d2b9b1c2d3e'''
\set nut   '''5d0c8f0e-2f7e-4f3a-b6b4-0e1f9b7c6a12'''

\echo '== forgeerp' `date -u +%FT%TZ`
SELECT forgeerp.version() AS extension_version;

\echo '\n== ACME creates item BOLT-M8 and receives stock (expected_version 0: a new stream)'
SELECT sequence_number, global_position, event_id
  FROM forgeerp.append(:acme, 'inventory.item', :bolt, 0,
       '[{"event_type": "ItemCreated",   "payload": {"sku": "BOLT-M8", "name": "M8 bolt"}},
         {"event_type": "StockReceived", "payload": {"quantity": 500},
          "event_id": "9d8f6a4e-5b1c-4c1e-8a3f-2b7d6e5c4a30", "metadata": {"actor": "receiving"}}]');

\echo '\n== Globex uses the same aggregate id: a separate stream of another tenant'
SELECT sequence_number, global_position
  FROM forgeerp.append(:globex, 'inventory.item', :bolt, 0,
       '[{"event_type": "ItemCreated", "payload": {"sku": "G-BOLT", "name": "Globex bolt"}}]');

\echo '\n== ACME ships 120 at version 2, and a second item'
SELECT sequence_number FROM forgeerp.append(:acme, 'inventory.item', :bolt, 2,
       '[{"event_type": "StockShipped", "payload": {"quantity": 120}}]');
SELECT sequence_number FROM forgeerp.append(:acme, 'inventory.item', :nut, 0,
       '[{"event_type": "ItemCreated", "payload": {"sku": "NUT-M8", "name": "M8 nut"}}]');

\echo '\n== A stale writer (expected_version 2, stream is at 3) is refused with ES001'
\set ON_ERROR_STOP 0
\set VERBOSITY verbose
\set SHOW_CONTEXT never
SELECT * FROM forgeerp.append(:acme, 'inventory.item', :bolt, 2,
       '[{"event_type": "StockShipped", "payload": {"quantity": 999}}]');
\echo '\n== A retry of the StockReceived append is recognised and writes nothing'
SELECT sequence_number, event_id FROM forgeerp.append(:acme, 'inventory.item', :bolt, 0,
       '[{"event_type": "StockReceived", "payload": {"quantity": 500},
          "event_id": "9d8f6a4e-5b1c-4c1e-8a3f-2b7d6e5c4a30", "metadata": {"actor": "receiving"}}]');
\echo '\n== Bad input is refused with ES003 and names the bad value'
SELECT * FROM forgeerp.append(:acme, 'inventory.item', :bolt, NULL, '[{"event_type": "", "payload": {}}]');
\echo '\n== Events are append-only (ES006), for the superuser too'
DELETE FROM forgeerp.events;
\echo '\n== A transaction bound to Globex cannot read ACME (ES002)'
BEGIN;
SELECT forgeerp.bind_tenant(:globex);
SELECT count(*) FROM forgeerp.load_stream(:acme, :bolt);
ROLLBACK;
\set ON_ERROR_STOP 1

\echo '\n== ACME BOLT-M8 stream (load_stream)'
SELECT sequence_number, event_type, payload, metadata FROM forgeerp.load_stream(:acme, :bolt);
SELECT forgeerp.stream_version(:acme, :bolt) AS bolt_version, forgeerp.stream_version(:acme, :nut) AS nut_version;

\echo '\n== The global feed (read_all), as a projection pages through it'
SELECT transaction_id, global_position, tenant_id = :acme AS acme, event_type
  FROM forgeerp.read_all(0, 0, 1000);
\echo '\n== Only Globex'
SELECT transaction_id, global_position, event_type FROM forgeerp.read_all(0, 0, 1000, :globex);

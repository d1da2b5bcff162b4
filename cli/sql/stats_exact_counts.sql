-- forgeerp stats --exact: tenants, streams and events, counted (a scan of the events).
SELECT count(DISTINCT tenant_id), count(DISTINCT (tenant_id, aggregate_id)), count(*) FROM forgeerp.events

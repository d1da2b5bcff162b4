-- Migration 6: snapshots of aggregates' states, so that the dispatcher
-- replays only the events after one. Derived data: deleting every row
-- changes no result, only speed.
--
-- Keyed by tenant, aggregate type, aggregate and the state's own schema
-- version (a state the code no longer reads is never deserialized into a
-- newer shape: it is simply not found). Row-level security is forced, like
-- the read models': every read and write is bound to the row's tenant.
CREATE TABLE forgeerp_read.snapshots (
    tenant_id      uuid        NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   uuid        NOT NULL,
    state_version  integer     NOT NULL CHECK (state_version > 0),
    stream_version bigint      NOT NULL CHECK (stream_version > 0),
    state          jsonb       NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, aggregate_type, aggregate_id, state_version)
);

ALTER TABLE forgeerp_read.snapshots ENABLE ROW LEVEL SECURITY;
ALTER TABLE forgeerp_read.snapshots FORCE ROW LEVEL SECURITY;
CREATE POLICY bound_tenant_only ON forgeerp_read.snapshots
    USING (forgeerp_read.is_bound_tenant(tenant_id::text))
    WITH CHECK (forgeerp_read.is_bound_tenant(tenant_id::text));

COMMENT ON TABLE forgeerp_read.snapshots IS
    'Aggregate states at a stream version, by the state''s schema version: derived data the dispatcher may use instead of replaying the events before it.';

-- Read models of forgeerp-infra's PgTenantStore, in the event store's database.
-- Migration 1 (forgeerp_infra::migrate). Idempotent, so that it adopts the
-- tables of a database made before migrations were numbered. Every row belongs to one
-- tenant; row-level security admits only the tenant the transaction is bound
-- to (forgeerp.bind_tenant), for every role but superusers, owner included.
CREATE SCHEMA IF NOT EXISTS forgeerp_read;

CREATE TABLE IF NOT EXISTS forgeerp_read.entries (
    model      text        NOT NULL,
    tenant_id  uuid        NOT NULL,
    key        text        NOT NULL,
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, tenant_id, key)
);

ALTER TABLE forgeerp_read.entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE forgeerp_read.entries FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS bound_tenant_only ON forgeerp_read.entries;
CREATE POLICY bound_tenant_only ON forgeerp_read.entries
    USING (tenant_id::text = lower(current_setting('forgeerp.tenant_id', true)))
    WITH CHECK (tenant_id::text = lower(current_setting('forgeerp.tenant_id', true)));

-- Where each projection (per tenant, or '*' for all tenants) has read the feed
-- up to. Written in the same transaction as the projection's changes.
CREATE TABLE IF NOT EXISTS forgeerp_read.checkpoints (
    projection      text        NOT NULL,
    tenant_key      text        NOT NULL,
    transaction_id  bigint      NOT NULL,
    global_position bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, tenant_key)
);

-- Events a projection could not apply after its retries: kept for an
-- operator, skipped by the worker.
CREATE TABLE IF NOT EXISTS forgeerp_read.parked_events (
    projection      text        NOT NULL,
    tenant_id       uuid        NOT NULL,
    event_id        uuid        NOT NULL,
    aggregate_id    uuid        NOT NULL,
    sequence_number bigint      NOT NULL,
    transaction_id  bigint      NOT NULL,
    global_position bigint      NOT NULL,
    error           text        NOT NULL,
    attempts        integer     NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, event_id)
);

-- The stock levels of each item over time, for the anomaly detector. One row
-- per run of consecutive events of an item applied in one projection batch
-- (a live event is a run of one; a catch-up batch of 500 events of 5 items is
-- 5 rows, not 500): point i of a run is sequence first_sequence + i - 1.
CREATE TABLE IF NOT EXISTS forgeerp_read.stock_history_runs (
    tenant_id      uuid          NOT NULL,
    aggregate_id   uuid          NOT NULL,
    first_sequence bigint        NOT NULL,
    last_sequence  bigint        NOT NULL,
    occurred_at    timestamptz[] NOT NULL,
    on_hand        bigint[]      NOT NULL,
    reserved       bigint[]      NOT NULL,
    PRIMARY KEY (tenant_id, aggregate_id, first_sequence),
    CHECK (first_sequence >= 1 AND last_sequence >= first_sequence),
    CHECK (cardinality(occurred_at) = last_sequence - first_sequence + 1
       AND cardinality(on_hand) = last_sequence - first_sequence + 1
       AND cardinality(reserved) = last_sequence - first_sequence + 1)
);

ALTER TABLE forgeerp_read.stock_history_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE forgeerp_read.stock_history_runs FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS bound_tenant_only ON forgeerp_read.stock_history_runs;
CREATE POLICY bound_tenant_only ON forgeerp_read.stock_history_runs
    USING (tenant_id::text = lower(current_setting('forgeerp.tenant_id', true)))
    WITH CHECK (tenant_id::text = lower(current_setting('forgeerp.tenant_id', true)));

-- The same history one point per row, as readers want it. security_invoker:
-- the runs' row-level security applies to whoever reads the view (a view
-- owned by a superuser would otherwise read past it).
CREATE OR REPLACE VIEW forgeerp_read.stock_history_points WITH (security_invoker = true) AS
SELECT h.tenant_id, h.aggregate_id, h.first_sequence + p.i - 1 AS sequence_number,
       p.occurred_at, p.on_hand, p.reserved
  FROM forgeerp_read.stock_history_runs AS h,
       unnest(h.occurred_at, h.on_hand, h.reserved) WITH ORDINALITY AS p (occurred_at, on_hand, reserved, i);

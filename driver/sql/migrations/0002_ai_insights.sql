-- Migration 2 (forgeerp_infra::migrate). Idempotent, like migration 1.
-- Insights of the AI jobs (forgeerp-infra's PgInsightSink), in the event
-- store's database but never in its streams. One row per finding, identified
-- by (tenant, item, kind, occurred_at: the movement's time): a job that finds
-- the same thing again refreshes the row. Row-level security admits only the tenant the
-- transaction is bound to (forgeerp.bind_tenant), owner included; an
-- operator (superuser) sees all.
CREATE SCHEMA IF NOT EXISTS forgeerp_read;

CREATE TABLE IF NOT EXISTS forgeerp_read.ai_insights (
    tenant_id     uuid             NOT NULL,
    item_id       uuid             NOT NULL,
    kind          text             NOT NULL,
    occurred_at   timestamptz      NOT NULL,
    severity      text             NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    score         double precision NOT NULL,
    observed      double precision NOT NULL,
    expected      double precision NOT NULL,
    sku           text,
    name          text             NOT NULL,
    explanation   text             NOT NULL,
    first_seen_at timestamptz      NOT NULL DEFAULT now(),
    last_seen_at  timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, item_id, kind, occurred_at)
);

CREATE INDEX IF NOT EXISTS ai_insights_recent ON forgeerp_read.ai_insights (tenant_id, last_seen_at DESC);

ALTER TABLE forgeerp_read.ai_insights ENABLE ROW LEVEL SECURITY;
ALTER TABLE forgeerp_read.ai_insights FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS bound_tenant_only ON forgeerp_read.ai_insights;
CREATE POLICY bound_tenant_only ON forgeerp_read.ai_insights
    USING (tenant_id::text = lower(current_setting('forgeerp.tenant_id', true)))
    WITH CHECK (tenant_id::text = lower(current_setting('forgeerp.tenant_id', true)));

-- One row per stream: its aggregate type for life and its current version.
-- The row is also the stream's lock: every append updates it first, so
-- writers of one stream queue on it and writers of different streams never meet.
CREATE TABLE forgeerp.streams (
    tenant_id      uuid   NOT NULL,
    aggregate_id   uuid   NOT NULL,
    aggregate_type text   NOT NULL,
    version        bigint NOT NULL CHECK (version >= 1),
    PRIMARY KEY (tenant_id, aggregate_id)
) WITH (fillfactor = 70);  -- room for HOT updates of `version`

COMMENT ON TABLE forgeerp.streams IS
    'Stream bookkeeping: aggregate type and version per (tenant_id, aggregate_id); the row lock serializes appends to one stream.';

-- Every event ever appended. Rows are written only by forgeerp.append and are
-- never changed (see trigger_events_append_only.sql).
CREATE SEQUENCE forgeerp.events_global_position_seq AS bigint;

CREATE TABLE forgeerp.events (
    global_position bigint      NOT NULL DEFAULT nextval('forgeerp.events_global_position_seq'),
    transaction_id  bigint      NOT NULL,
    tenant_id       uuid        NOT NULL,
    aggregate_type  text        NOT NULL,
    aggregate_id    uuid        NOT NULL,
    sequence_number bigint      NOT NULL CHECK (sequence_number >= 1),
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    event_version   integer     NOT NULL CHECK (event_version >= 1),
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    -- The global feed's order: (transaction_id, global_position).
    PRIMARY KEY (transaction_id, global_position),
    -- A stream is read by sequence number; a sequence number exists once.
    -- Its last entry is the stream's head: version and aggregate type.
    UNIQUE (tenant_id, aggregate_id, sequence_number),
    -- Idempotency: an event id exists once per tenant.
    UNIQUE (tenant_id, event_id),
    -- The contract's invariants, held by the table itself: not even the
    -- owner can store a row forgeerp.append would refuse.
    CONSTRAINT events_aggregate_type_valid
        CHECK (aggregate_type <> '' AND octet_length(aggregate_type) <= 255),
    CONSTRAINT events_event_type_valid
        CHECK (event_type <> '' AND octet_length(event_type) <= 255),
    CONSTRAINT events_payload_is_object CHECK (jsonb_typeof(payload) = 'object'),
    CONSTRAINT events_metadata_is_object CHECK (jsonb_typeof(metadata) = 'object')
);

ALTER SEQUENCE forgeerp.events_global_position_seq OWNED BY forgeerp.events.global_position;

-- The feed of one tenant (read_all with tenant_id, or while bound).
CREATE INDEX events_tenant_feed_idx ON forgeerp.events (tenant_id, transaction_id, global_position);

COMMENT ON TABLE forgeerp.events IS
    'Append-only event store. Write with forgeerp.append, read with forgeerp.load_stream and forgeerp.read_all.';
COMMENT ON COLUMN forgeerp.events.transaction_id IS
    'xid8 of the appending transaction; the feed is ordered by (transaction_id, global_position).';

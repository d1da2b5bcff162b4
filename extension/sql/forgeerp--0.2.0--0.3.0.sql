-- forgeerp 0.2.0 -> 0.3.0: the table holds the contract's invariants itself.
--
-- CHECK constraints refuse rows forgeerp.append would refuse (an empty or
-- over-long event or aggregate type, a payload or metadata that is not an
-- object), even from the owner. Existing rows are checked: a database that
-- holds such a row stops here with 23514 naming the constraint, and the
-- update changes nothing.
ALTER TABLE forgeerp.events
    ADD CONSTRAINT events_aggregate_type_valid
        CHECK (aggregate_type <> '' AND octet_length(aggregate_type) <= 255),
    ADD CONSTRAINT events_event_type_valid
        CHECK (event_type <> '' AND octet_length(event_type) <= 255),
    ADD CONSTRAINT events_payload_is_object CHECK (jsonb_typeof(payload) = 'object'),
    ADD CONSTRAINT events_metadata_is_object CHECK (jsonb_typeof(metadata) = 'object');

-- The append-only triggers fire in every session_replication_role: 0.2.0's
-- stopped firing under `SET session_replication_role = replica`.
ALTER TABLE forgeerp.events ENABLE ALWAYS TRIGGER events_append_only;
ALTER TABLE forgeerp.events ENABLE ALWAYS TRIGGER events_no_truncate;

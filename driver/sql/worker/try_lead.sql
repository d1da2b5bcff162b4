-- Whether this session now leads projection $1 for tenant key $2: a
-- session-level advisory lock (key space: one bigint, which PostgreSQL keeps
-- apart from the stream locks of the extension), held until the session
-- ends, so a worker that dies, is killed or loses its connection lets go at
-- once and a standby takes over.
SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtextextended('forgeerp projection ' || $1 || ' ' || $2, 0))

-- What holds the feed back: every transaction with an xid that is still in
-- flight, sessions and prepared transactions alike, oldest first. read_all
-- returns nothing at or after the first row's transaction_id until it ends.
CREATE VIEW forgeerp.feed_holdback AS
SELECT 'session'::text               AS kind,
       a.pid,
       NULL::text                    AS gid,
       a.usename::text               AS role,
       a.datname::text               AS database,
       a.application_name,
       a.state,
       a.backend_xid::text::bigint   AS transaction_id,
       a.xact_start                  AS started_at,
       now() - a.xact_start          AS age,
       a.query
  FROM pg_catalog.pg_stat_activity a
 WHERE a.backend_xid IS NOT NULL
   AND a.pid <> pg_catalog.pg_backend_pid()
UNION ALL
SELECT 'prepared transaction', NULL, p.gid, p.owner::text, p.database::text, NULL, NULL,
       p.transaction::text::bigint, p.prepared, now() - p.prepared, NULL
  FROM pg_catalog.pg_prepared_xacts p
 ORDER BY transaction_id;

COMMENT ON VIEW forgeerp.feed_holdback IS
    'Open write transactions (sessions and prepared), oldest first: each holds read_all back until it ends.';

-- What holds the feed back: sessions whose transaction (or snapshot) is older
-- than the feed horizon's candidates. The oldest row is the one every feed
-- reader is waiting for; end that transaction and the feed moves on.
CREATE VIEW forgeerp.feed_holdback AS
SELECT a.pid,
       a.usename,
       a.datname,
       a.application_name,
       a.state,
       a.backend_xid::text::bigint  AS transaction_id,
       a.backend_xmin::text::bigint AS snapshot_xmin,
       a.xact_start,
       now() - a.xact_start          AS transaction_age,
       a.query
  FROM pg_catalog.pg_stat_activity a
 WHERE a.backend_xid IS NOT NULL
   AND a.pid <> pg_catalog.pg_backend_pid()
 ORDER BY pg_catalog.age(a.backend_xid) DESC;

COMMENT ON VIEW forgeerp.feed_holdback IS
    'Open write transactions, oldest first: each holds read_all back until it ends.';

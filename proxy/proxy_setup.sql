-- Makes the current database the proxy of a sharded deployment (psql, from
-- scripts/setup_shards.sh): PL/Proxy, forgeerp_proxy, and the PL/Proxy
-- cluster forgeerp_shards with partitions :p0 and :p1. PL/Proxy connects to
-- a shard as the calling role (the user mapping adds no user), so that the
-- shard enforces the role's own usage and tenant scope.
CREATE EXTENSION IF NOT EXISTS plproxy;
CREATE EXTENSION IF NOT EXISTS forgeerp_proxy;
ALTER EXTENSION forgeerp_proxy UPDATE;
SELECT NOT EXISTS (SELECT FROM pg_foreign_server WHERE srvname = 'forgeerp_shards') AS missing \gset
\if :missing
CREATE SERVER forgeerp_shards FOREIGN DATA WRAPPER plproxy OPTIONS (p0 :'p0', p1 :'p1');
CREATE USER MAPPING FOR PUBLIC SERVER forgeerp_shards;
\else
ALTER SERVER forgeerp_shards OPTIONS (SET p0 :'p0', SET p1 :'p1');
\endif

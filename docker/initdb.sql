-- Run once by the postgres image's entrypoint, in POSTGRES_DB, at first start.
CREATE EXTENSION IF NOT EXISTS forgeerp;

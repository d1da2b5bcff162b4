-- CREATE EXTENSION forgeerp installs only into a schema forgeerp that it
-- creates itself, in this very transaction. A schema someone made before
-- (a database owner, say) may already hold their operators, functions or
-- types, and the functions that run with the owner's rights would use them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace n
                    WHERE n.nspname = 'forgeerp'
                      AND n.xmin OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id()::pg_catalog.xid) THEN
        RAISE EXCEPTION USING
            ERRCODE = '42P06',
            MESSAGE = pg_catalog.format(
                'schema forgeerp already exists (owner %s): CREATE EXTENSION forgeerp installs only into a schema it creates',
                (SELECT n.nspowner::pg_catalog.regrole FROM pg_catalog.pg_namespace n WHERE n.nspname = 'forgeerp')),
            HINT = 'Drop or rename the existing schema forgeerp first; whatever it holds could run with the extension owner''s rights.';
    END IF;
END
$$;

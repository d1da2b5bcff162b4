-- The driver's schemas (forgeerp_read, forgeerp_inventory) as sorted lines (tables, columns in
-- order, constraints, indexes, policies, views, row-level security), minus
-- the migrations' own bookkeeping: two databases with equal schemas give
-- equal lines.
WITH tables AS (
    SELECT c.oid, n.nspname || '.' || c.relname AS relname, c.relkind, c.relrowsecurity,
           c.relforcerowsecurity, c.reloptions
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname IN ('forgeerp_read', 'forgeerp_inventory')
)
SELECT line FROM (
    SELECT pg_catalog.format('relation %s kind=%s rls=%s force_rls=%s options=%s',
               relname, relkind, relrowsecurity, relforcerowsecurity, reloptions) AS line
      FROM tables
    UNION ALL
    SELECT pg_catalog.format('column %s.%s place=%s type=%s not_null=%s default=%s', t.relname, a.attname,
               pg_catalog.row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
               pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_catalog.pg_get_expr(d.adbin, d.adrelid))
      FROM pg_catalog.pg_attribute a JOIN tables t ON t.oid = a.attrelid
      LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT pg_catalog.format('constraint %s.%s %s', t.relname, k.conname, pg_catalog.pg_get_constraintdef(k.oid))
      FROM pg_catalog.pg_constraint k JOIN tables t ON t.oid = k.conrelid
    UNION ALL
    SELECT 'index ' || pg_catalog.pg_get_indexdef(i.indexrelid)
      FROM pg_catalog.pg_index i JOIN tables t ON t.oid = i.indrelid
    UNION ALL
    SELECT pg_catalog.format('policy %s.%s command=%s using=%s check=%s', t.relname, p.polname, p.polcmd,
               pg_catalog.pg_get_expr(p.polqual, p.polrelid), pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid))
      FROM pg_catalog.pg_policy p JOIN tables t ON t.oid = p.polrelid
    UNION ALL
    SELECT pg_catalog.format('view %s %s', t.relname, pg_catalog.pg_get_viewdef(t.oid))
      FROM tables t WHERE t.relkind = 'v'
) AS lines
ORDER BY line

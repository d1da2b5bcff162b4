-- The forgeerp extension's objects as normalized lines, one per object or
-- part of one, sorted: two databases whose extensions are equal give the same
-- lines. Compares what an upgrade must reproduce exactly: every member with
-- its owner and privileges, functions with their bodies, settings and
-- security, tables with their columns (in order), constraints, indexes,
-- triggers (and whether they fire), policies and comments.
WITH ext AS (
    SELECT x.oid, x.extnamespace FROM pg_catalog.pg_extension x WHERE x.extname = 'forgeerp'
), members AS (
    SELECT d.classid, d.objid
      FROM pg_catalog.pg_depend d, ext
     WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
       AND d.refobjid = ext.oid AND d.deptype = 'e'
), tables AS (
    SELECT c.oid, c.relname FROM pg_catalog.pg_class c, ext
     WHERE c.relnamespace = ext.extnamespace
)
SELECT line FROM (
    SELECT 'member ' || pg_catalog.pg_describe_object(m.classid, m.objid, 0) AS line FROM members m
    UNION ALL
    SELECT pg_catalog.format('schema %s owner=%s acl=%s', n.nspname, n.nspowner::pg_catalog.regrole, n.nspacl)
      FROM pg_catalog.pg_namespace n, ext WHERE n.oid = ext.extnamespace
    UNION ALL
    SELECT pg_catalog.format(
               'function %s(%s) returns %s language=%s security_definer=%s volatility=%s strict=%s parallel=%s leakproof=%s cost=%s rows=%s config=%s owner=%s acl=%s bin=%s body=%s comment=%s',
               p.proname, pg_catalog.pg_get_function_arguments(p.oid), pg_catalog.pg_get_function_result(p.oid),
               l.lanname, p.prosecdef, p.provolatile, p.proisstrict, p.proparallel, p.proleakproof,
               p.procost, p.prorows, p.proconfig, p.proowner::pg_catalog.regrole, p.proacl, p.probin, p.prosrc,
               pg_catalog.obj_description(p.oid, 'pg_proc'))
      FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang, ext
     WHERE p.pronamespace = ext.extnamespace
    UNION ALL
    SELECT pg_catalog.format('relation %s kind=%s persistence=%s options=%s row_security=%s force_row_security=%s owner=%s acl=%s comment=%s',
               c.relname, c.relkind, c.relpersistence, c.reloptions, c.relrowsecurity, c.relforcerowsecurity,
               c.relowner::pg_catalog.regrole, c.relacl, pg_catalog.obj_description(c.oid, 'pg_class'))
      FROM pg_catalog.pg_class c JOIN tables t ON t.oid = c.oid
    UNION ALL
    -- Columns by their place among the live ones: a column added by an
    -- upgrade must land where a fresh install puts it.
    SELECT pg_catalog.format('column %s.%s place=%s type=%s not_null=%s default=%s identity=%s generated=%s acl=%s comment=%s',
               t.relname, a.attname,
               pg_catalog.row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
               pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated, a.attacl,
               pg_catalog.col_description(a.attrelid, a.attnum))
      FROM pg_catalog.pg_attribute a JOIN tables t ON t.oid = a.attrelid
      LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT pg_catalog.format('constraint %s.%s %s', t.relname, k.conname, pg_catalog.pg_get_constraintdef(k.oid))
      FROM pg_catalog.pg_constraint k JOIN tables t ON t.oid = k.conrelid
    UNION ALL
    SELECT pg_catalog.format('index %s', pg_catalog.pg_get_indexdef(i.indexrelid))
      FROM pg_catalog.pg_index i JOIN tables t ON t.oid = i.indrelid
    UNION ALL
    SELECT pg_catalog.format('trigger %s enabled=%s', pg_catalog.pg_get_triggerdef(g.oid), g.tgenabled)
      FROM pg_catalog.pg_trigger g JOIN tables t ON t.oid = g.tgrelid
     WHERE NOT g.tgisinternal
    UNION ALL
    SELECT pg_catalog.format('policy %s.%s command=%s permissive=%s roles=%s using=%s check=%s',
               t.relname, y.polname, y.polcmd, y.polpermissive,
               (SELECT pg_catalog.array_agg(r::pg_catalog.regrole::pg_catalog.text ORDER BY 1) FROM pg_catalog.unnest(y.polroles) r),
               pg_catalog.pg_get_expr(y.polqual, y.polrelid), pg_catalog.pg_get_expr(y.polwithcheck, y.polrelid))
      FROM pg_catalog.pg_policy y JOIN tables t ON t.oid = y.polrelid
    UNION ALL
    SELECT pg_catalog.format('sequence %s type=%s start=%s increment=%s min=%s max=%s cycle=%s',
               t.relname, s.seqtypid::pg_catalog.regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle)
      FROM pg_catalog.pg_sequence s JOIN tables t ON t.oid = s.seqrelid
    UNION ALL
    SELECT pg_catalog.format('view %s %s', t.relname, pg_catalog.pg_get_viewdef(t.oid))
      FROM tables t JOIN pg_catalog.pg_class c ON c.oid = t.oid WHERE c.relkind IN ('v', 'm')
    UNION ALL
    SELECT pg_catalog.format('type %s kind=%s', ty.typname, ty.typtype)
      FROM pg_catalog.pg_type ty, ext
     WHERE ty.typnamespace = ext.extnamespace AND ty.typtype <> 'b'
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.reltype = ty.oid)
    UNION ALL
    SELECT pg_catalog.format('extension config=%s conditions=%s relocatable=%s',
               (SELECT pg_catalog.array_agg(c::pg_catalog.regclass::pg_catalog.text ORDER BY 1) FROM pg_catalog.unnest(x.extconfig) c),
               x.extcondition, x.extrelocatable)
      FROM pg_catalog.pg_extension x WHERE x.extname = 'forgeerp'
) AS lines
ORDER BY line

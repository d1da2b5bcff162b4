-- The append path's view of forgeerp.caller_scopes (fn_scope_of.sql) for the
-- role calling ($1, its oid, known to the C function): how many tenant
-- scopes bind it, the first, and its name. No row: no such role.
SELECT pg_catalog.cardinality(c.tenants), c.tenants[1], r.rolname::pg_catalog.text
  FROM pg_catalog.pg_roles r,
       forgeerp.caller_scopes(r.rolname) AS c
 WHERE r.oid OPERATOR(pg_catalog.=) $1

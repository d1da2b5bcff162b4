-- Who is calling, and which tenant scopes bind them.
--
-- Inside a SECURITY DEFINER function current_user is the owner, so the
-- functions an application calls are thin SECURITY INVOKER wrappers that pass
-- their own CURRENT_USER (the role really calling, after SET ROLE and inside
-- any other owner's SECURITY DEFINER function) to the owner's-rights
-- function that does the work. That function is granted too, so a caller
-- could pass any name: a claim is believed only for the session user itself
-- or a role it is a member of, i.e. a role it could SET ROLE to anyway.
--
-- The scopes that bind a role are those of every scoped role whose
-- privileges it has: itself, and the roles it inherits from (PostgreSQL
-- 15's rule: a member with INHERIT has the privileges of the roles it is a
-- member of, recursively through members with INHERIT). Superusers are
-- never scoped.

-- (permitted, tenants) for a claimed caller; no row when the role does not
-- exist. One row of a set so that PostgreSQL inlines it into the calling
-- query (no SET clause, STABLE): the append path and scope_for plan it once.
-- Called only with the owner's rights (not granted).
CREATE FUNCTION forgeerp.caller_scopes(caller name)
RETURNS TABLE (permitted boolean, tenants uuid[])
LANGUAGE sql STABLE
AS $$
WITH RECURSIVE privileges_of (role_id) AS (
        SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) caller
    UNION
        SELECT m.roleid
          FROM privileges_of p
          JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) p.role_id AND r.rolinherit
          JOIN pg_catalog.pg_auth_members m ON m.member OPERATOR(pg_catalog.=) p.role_id
)
SELECT caller OPERATOR(pg_catalog.=) SESSION_USER
           OR pg_catalog.pg_has_role(SESSION_USER, caller, 'MEMBER'),
       CASE WHEN r.rolsuper THEN '{}'::pg_catalog.uuid[]
            ELSE ARRAY(SELECT DISTINCT s.tenant_id
                         FROM privileges_of p
                         JOIN forgeerp.role_scopes s ON s.role_id OPERATOR(pg_catalog.=) p.role_id
                        ORDER BY 1)
       END
  FROM pg_catalog.pg_roles r
 WHERE r.rolname OPERATOR(pg_catalog.=) caller
$$;

-- The one tenant `caller` is scoped to, or NULL when unscoped; ES002 when the
-- claim is not believed or the caller has the privileges of roles scoped to
-- two tenants. Runs with the rights of the function calling it.
CREATE FUNCTION forgeerp.scope_for(caller text) RETURNS uuid
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    found record;
BEGIN
    SELECT c.permitted, c.tenants INTO found FROM forgeerp.caller_scopes(caller::pg_catalog.name) c;
    IF found.permitted IS NOT TRUE THEN
        RAISE EXCEPTION USING
            ERRCODE = 'ES002',
            MESSAGE = pg_catalog.format('role %s is not a role this session (%s) can act as',
                                        COALESCE(pg_catalog.quote_ident(caller), 'NULL'), SESSION_USER);
    END IF;
    IF pg_catalog.cardinality(found.tenants) > 1 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'ES002',
            MESSAGE = pg_catalog.format('role %I has the privileges of roles scoped to %s different tenants, so it may use none',
                                        caller, pg_catalog.cardinality(found.tenants)),
            DETAIL = pg_catalog.format('tenants: %s', pg_catalog.array_to_string(found.tenants, ', '));
    END IF;
    RETURN found.tenants[1];
END
$$;

-- scope_for with the owner's rights, for callers that have none of their
-- own (bind_tenant runs with the caller's).
CREATE FUNCTION forgeerp.scope_of(caller text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, forgeerp, pg_temp
AS $$ SELECT forgeerp.scope_for(caller) $$;

COMMENT ON FUNCTION forgeerp.scope_of(text) IS
    'The tenant a role is scoped to (NULL: unscoped); ES002 for a role of two scopes or one this session cannot act as.';

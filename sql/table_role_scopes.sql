-- Tenant scopes of application roles: forgeerp.grant_usage(role, tenant)
-- writes them, forgeerp.revoke_usage(role) removes them. A role scoped to a
-- tenant, and every role that inherits its privileges, reaches that tenant
-- only, whatever the session does with settings or bind_tenant.
--
-- Keyed by the role's oid, so a renamed role keeps its scope. A dropped
-- role's row is ignored (caller_scopes joins pg_roles); should PostgreSQL
-- reuse the oid for a new role, that role is scoped: stricter, never wider.
CREATE TABLE forgeerp.role_scopes (
    role_id    oid         PRIMARY KEY,
    tenant_id  uuid        NOT NULL CHECK (tenant_id <> '00000000-0000-0000-0000-000000000000'),
    granted_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE forgeerp.role_scopes IS
    'The tenant each scoped role (and every role inheriting its privileges) is confined to.';

//! Tenant-scoped roles (API v2): `grant_usage(role, tenant)` confines a role,
//! and every role that inherits its privileges, to one tenant, whatever the
//! session does with settings or `bind_tenant`; `revoke_usage(role)` takes it
//! all back.

use forgeerp_server_tests::*;
use postgres::Client;
use uuid::Uuid;

/// A LOGIN role of this test, dropped with everything granted to it.
struct Role(String);

impl Role {
    fn new() -> Role {
        let name = format!("forgeerp_test_role_scope_{}", id().simple());
        connect()
            .batch_execute(&format!("CREATE ROLE {name} LOGIN"))
            .unwrap();
        Role(name)
    }

    /// A role that is a member of `parents` (INHERIT unless `noinherit`).
    fn member_of(parents: &[&Role], noinherit: bool) -> Role {
        let role = Role::new();
        let mut db = connect();
        for parent in parents {
            db.batch_execute(&format!("GRANT {} TO {}", parent.0, role.0))
                .unwrap();
        }
        if noinherit {
            db.batch_execute(&format!("ALTER ROLE {} NOINHERIT", role.0))
                .unwrap();
        }
        role
    }

    fn grant(&self, tenant: Option<Uuid>) -> Result<(), postgres::Error> {
        connect()
            .execute("SELECT forgeerp.grant_usage($1, $2)", &[&self.0, &tenant])
            .map(|_| ())
    }

    fn session(&self) -> Client {
        connect_as(&self.0)
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let mut db = connect();
        let _ = db.execute("SELECT forgeerp.revoke_usage($1)", &[&self.0]);
        let _ = db.batch_execute(&format!("DROP OWNED BY {0}; DROP ROLE {0}", self.0));
    }
}

/// Two tenants with one stream each, appended by the superuser.
fn two_tenants() -> ((Uuid, Uuid), (Uuid, Uuid)) {
    let mut db = connect();
    let (a, b) = ((id(), id()), (id(), id()));
    append(&mut db, a.0, "t", a.1, Some(0), &ticks(2)).unwrap();
    append(&mut db, b.0, "t", b.1, Some(0), &ticks(3)).unwrap();
    (a, b)
}

fn feed_tenants(client: &mut Client, sql: &str) -> Result<Vec<Uuid>, postgres::Error> {
    let mut tenants: Vec<Uuid> = client
        .query(sql, &[])?
        .iter()
        .map(|r| r.get("tenant_id"))
        .collect();
    tenants.sort();
    tenants.dedup();
    Ok(tenants)
}

/// Every way a scoped session could name another tenant is ES002, and its
/// whole feed is its own tenant's.
#[track_caller]
fn assert_confined(session: &mut Client, mine: (Uuid, Uuid), theirs: (Uuid, Uuid)) {
    let mut admin = connect();
    let before = store_fingerprint(&mut admin);
    expect_state(
        append(session, theirs.0, "t", theirs.1, None, &ticks(1)),
        "ES002",
    );
    assert_eq!(store_fingerprint(&mut admin), before, "nothing written");
    expect_state(
        session.query(
            "SELECT * FROM forgeerp.load_stream($1, $2)",
            &[&theirs.0, &theirs.1],
        ),
        "ES002",
    );
    expect_state(
        session.query(
            "SELECT forgeerp.stream_version($1, $2)",
            &[&theirs.0, &theirs.1],
        ),
        "ES002",
    );
    expect_state(
        session.query(
            "SELECT * FROM forgeerp.read_all(0, 0, 100000, $1)",
            &[&theirs.0],
        ),
        "ES002",
    );
    let seen = feed_tenants(session, "SELECT * FROM forgeerp.read_all(0, 0, 100000)").unwrap();
    assert_eq!(
        seen,
        vec![mine.0],
        "read_all without a tenant: only the scope's events"
    );
    let version: i64 = session
        .query_one(
            "SELECT forgeerp.stream_version($1, $2)",
            &[&mine.0, &mine.1],
        )
        .unwrap()
        .get(0);
    assert!(version >= 2, "its own tenant stays reachable");
    // Settings and bind_tenant cannot widen the scope.
    let mut tx = session.transaction().unwrap();
    expect_state(
        tx.execute("SELECT forgeerp.bind_tenant($1)", &[&theirs.0]),
        "ES002",
    );
    tx.rollback().unwrap();
    let mut tx = session.transaction().unwrap();
    tx.execute(
        "SELECT set_config('forgeerp.tenant_id', $1, true)",
        &[&theirs.0.to_string()],
    )
    .unwrap();
    expect_state(tx.query("SELECT * FROM forgeerp.read_all()", &[]), "ES002");
    tx.rollback().unwrap();
    let mut tx = session.transaction().unwrap();
    tx.execute("SELECT set_config('forgeerp.tenant_id', '', true)", &[])
        .unwrap();
    expect_state(
        append(&mut tx, theirs.0, "t", theirs.1, None, &ticks(1)),
        "ES002",
    );
    tx.rollback().unwrap();
}

#[test]
fn a_scoped_role_reaches_only_its_tenant() {
    let (a, b) = two_tenants();
    let role = Role::new();
    role.grant(Some(a.0)).unwrap();
    let mut session = role.session();
    append(&mut session, a.0, "t", a.1, Some(2), &ticks(1)).unwrap();
    let mut tx = session.transaction().unwrap();
    tx.execute("SELECT forgeerp.bind_tenant($1)", &[&a.0])
        .unwrap();
    tx.rollback().unwrap();
    assert_confined(&mut session, a, b);
}

#[test]
fn the_scope_binds_member_roles_and_set_role() {
    let (a, b) = two_tenants();
    let scoped = Role::new();
    scoped.grant(Some(a.0)).unwrap();

    let inheriting = Role::member_of(&[&scoped], false);
    assert_confined(&mut inheriting.session(), a, b);

    let noinherit = Role::member_of(&[&scoped], true);
    let mut session = noinherit.session();
    session
        .batch_execute(&format!("SET ROLE {}", scoped.0))
        .unwrap();
    assert_confined(&mut session, a, b);
}

#[test]
fn a_role_with_the_privileges_of_two_scopes_is_refused_everywhere() {
    let (a, b) = two_tenants();
    let (first, second) = (Role::new(), Role::new());
    first.grant(Some(a.0)).unwrap();
    second.grant(Some(b.0)).unwrap();
    let both = Role::member_of(&[&first, &second], false);
    let mut session = both.session();
    for tenant in [a, b] {
        let error = expect_state(
            append(&mut session, tenant.0, "t", tenant.1, None, &ticks(1)),
            "ES002",
        );
        assert!(
            error.message().contains("2 different tenants"),
            "{}",
            error.message()
        );
        expect_state(
            session.query(
                "SELECT * FROM forgeerp.load_stream($1, $2)",
                &[&tenant.0, &tenant.1],
            ),
            "ES002",
        );
        let mut tx = session.transaction().unwrap();
        expect_state(
            tx.execute("SELECT forgeerp.bind_tenant($1)", &[&tenant.0]),
            "ES002",
        );
        tx.rollback().unwrap();
    }
    expect_state(
        session.query("SELECT * FROM forgeerp.read_all()", &[]),
        "ES002",
    );
}

#[test]
fn widening_or_moving_a_scope_is_explicit() {
    let (a, b) = two_tenants();
    let role = Role::new();
    role.grant(Some(a.0)).unwrap();
    role.grant(Some(a.0)).unwrap(); // the same scope again: nothing changes
    let error = expect_state(role.grant(Some(b.0)), "ES003");
    assert!(
        error.message().contains(&a.0.to_string()),
        "{}",
        error.message()
    );
    expect_state(role.grant(None), "ES003");
    assert_confined(&mut role.session(), a, b);

    connect()
        .execute("SELECT forgeerp.revoke_usage($1)", &[&role.0])
        .unwrap();
    expect_state(
        role.session()
            .query("SELECT * FROM forgeerp.read_all()", &[]),
        "42501",
    );
    role.grant(None).unwrap();
    let seen = feed_tenants(
        &mut role.session(),
        "SELECT * FROM forgeerp.read_all(0, 0, 100000)",
    )
    .unwrap();
    assert!(
        seen.contains(&a.0) && seen.contains(&b.0),
        "unscoped again: every tenant"
    );
}

#[test]
fn a_caller_named_by_hand_is_believed_only_for_roles_the_session_can_become() {
    let (a, b) = two_tenants();
    let scoped = Role::new();
    scoped.grant(Some(a.0)).unwrap();
    let unscoped = Role::new();
    unscoped.grant(None).unwrap();
    let mut session = scoped.session();
    for claimed in ["postgres", unscoped.0.as_str()] {
        expect_state(
            session.query(
                "SELECT * FROM forgeerp.read_all_as($1, 0, 0, 100000, $2)",
                &[&claimed, &b.0],
            ),
            "ES002",
        );
        expect_state(
            session.query("SELECT forgeerp.scope_of($1)", &[&claimed]),
            "ES002",
        );
    }
}

#[test]
fn unscoped_roles_and_superusers_still_reach_every_tenant() {
    let (a, b) = two_tenants();
    let unscoped = Role::new();
    unscoped.grant(None).unwrap();
    // A scoped role elsewhere changes nothing for them.
    let scoped = Role::new();
    scoped.grant(Some(a.0)).unwrap();
    for mut client in [unscoped.session(), connect()] {
        let seen =
            feed_tenants(&mut client, "SELECT * FROM forgeerp.read_all(0, 0, 100000)").unwrap();
        assert!(seen.contains(&a.0) && seen.contains(&b.0));
        append(&mut client, b.0, "t", b.1, None, &ticks(1)).unwrap();
    }
}

/// Inside another owner's SECURITY DEFINER function the role calling is that
/// owner: `append` (which reads its caller itself) judges the call by the
/// owner's scope; a read function cannot tell such a call from a forged one
/// and refuses it unless the session user is a member of the owner
/// (docs/security.md).
#[test]
fn inside_another_owners_security_definer_function_the_owner_is_the_caller() {
    let (a, b) = two_tenants();
    let scoped = Role::new();
    scoped.grant(Some(a.0)).unwrap();
    let unscoped = Role::new();
    unscoped.grant(None).unwrap();
    let function = format!("public.{}_append", scoped.0);
    let mut admin = connect();
    admin
        .batch_execute(&format!(
            "CREATE FUNCTION {function}(t uuid, s uuid) RETURNS bigint
             LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
             AS $$ SELECT count(*) FROM forgeerp.append(t, 't', s, NULL, '[{{\"event_type\": \"T\", \"payload\": {{}}}}]') $$;
             ALTER FUNCTION {function}(uuid, uuid) OWNER TO {owner};
             GRANT EXECUTE ON FUNCTION {function}(uuid, uuid) TO {caller};
             CREATE FUNCTION {function}_read(t uuid) RETURNS bigint
             LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
             AS $$ SELECT count(*) FROM forgeerp.read_all(0, 0, 100000, t) $$;
             ALTER FUNCTION {function}_read(uuid) OWNER TO {owner};
             GRANT EXECUTE ON FUNCTION {function}_read(uuid) TO {caller};",
            owner = scoped.0,
            caller = unscoped.0
        ))
        .unwrap();
    let mut session = unscoped.session();
    // The unscoped session appends to B itself, but not through the scoped owner's function.
    append(&mut session, b.0, "t", b.1, None, &ticks(1)).unwrap();
    expect_state(
        session.query(&format!("SELECT {function}($1, $2)"), &[&b.0, &b.1]),
        "ES002",
    );
    let appended: i64 = session
        .query_one(&format!("SELECT {function}($1, $2)"), &[&a.0, &a.1])
        .unwrap()
        .get(0);
    assert_eq!(
        appended, 1,
        "the owner's own tenant is reachable through it"
    );
    expect_state(
        session.query(&format!("SELECT {function}_read($1)"), &[&a.0]),
        "ES002",
    );
    admin
        .batch_execute(&format!(
            "DROP FUNCTION {function}(uuid, uuid); DROP FUNCTION {function}_read(uuid)"
        ))
        .unwrap();
}

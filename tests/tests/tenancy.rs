//! Tenant binding (ES002) and application roles without table privileges (42501).

use forgeerp_server_tests::*;
use postgres::Client;
use serde_json::json;

/// A call of one contract function inside a bound transaction.
type TenantCall = dyn Fn(&mut postgres::Transaction) -> Result<u64, postgres::Error>;

fn app_role(db: &mut Client) -> String {
    let role = format!("forgeerp_test_role_app_{}", id().simple());
    db.batch_execute(&format!("CREATE ROLE {role} LOGIN"))
        .unwrap();
    db.execute("SELECT forgeerp.grant_usage($1)", &[&role])
        .unwrap();
    role
}

#[test]
fn a_bound_transaction_refuses_every_function_for_another_tenant() {
    let mut db = connect();
    let (mine, theirs, item) = (id(), id(), id());
    append(&mut db, theirs, "t", item, None, &ticks(1)).unwrap();
    let before = store_fingerprint(&mut db);

    let calls: [(&str, Box<TenantCall>); 4] = [
        (
            "append",
            Box::new(move |tx| {
                append(tx, theirs, "t", item, None, &ticks(1)).map(|r| r.len() as u64)
            }),
        ),
        (
            "load_stream",
            Box::new(move |tx| {
                tx.execute(
                    "SELECT * FROM forgeerp.load_stream($1, $2)",
                    &[&theirs, &item],
                )
            }),
        ),
        (
            "stream_version",
            Box::new(move |tx| {
                tx.execute("SELECT forgeerp.stream_version($1, $2)", &[&theirs, &item])
            }),
        ),
        (
            "read_all",
            Box::new(move |tx| {
                tx.execute("SELECT * FROM forgeerp.read_all(0, 0, 10, $1)", &[&theirs])
            }),
        ),
    ];
    for (name, call) in calls {
        let mut tx = db.transaction().unwrap();
        tx.execute("SELECT forgeerp.bind_tenant($1)", &[&mine])
            .unwrap();
        let error = expect_state(call(&mut tx), "ES002");
        assert!(
            error.message().contains(&theirs.to_string()),
            "{name}: {}",
            error.message()
        );
        tx.rollback().unwrap();
    }
    assert_eq!(store_fingerprint(&mut db), before);
}

#[test]
fn a_bound_transaction_works_normally_for_its_own_tenant_and_read_all_sees_only_it() {
    let mut db = connect();
    let (mine, theirs) = (id(), id());
    append(&mut db, theirs, "t", id(), None, &ticks(2)).unwrap();
    append(&mut db, mine, "t", id(), None, &ticks(3)).unwrap();
    let mut tx = db.transaction().unwrap();
    tx.execute("SELECT forgeerp.bind_tenant($1)", &[&mine])
        .unwrap();
    tx.execute("SELECT forgeerp.bind_tenant($1)", &[&mine])
        .unwrap(); // rebinding to the same tenant is fine
    append(&mut tx, mine, "t", id(), None, &ticks(1)).unwrap();
    let tenants: Vec<uuid::Uuid> = tx
        .query("SELECT tenant_id FROM forgeerp.read_all(0, 0, 100000)", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        tenants.len(),
        3,
        "the three committed events of the bound tenant"
    );
    assert!(tenants.iter().all(|t| *t == mine));
    tx.commit().unwrap();
}

#[test]
fn binding_lasts_for_the_transaction_only_and_cannot_be_switched() {
    let mut db = connect();
    let (a, b) = (id(), id());
    let mut tx = db.transaction().unwrap();
    tx.execute("SELECT forgeerp.bind_tenant($1)", &[&a])
        .unwrap();
    let error = expect_state(
        tx.execute("SELECT forgeerp.bind_tenant($1)", &[&b]),
        "ES002",
    );
    assert!(error.message().contains(&b.to_string()));
    tx.rollback().unwrap();
    // Next transaction: unbound, any tenant may be named.
    append(&mut db, b, "t", id(), None, &ticks(1)).unwrap();
    expect_state(
        db.execute("SELECT forgeerp.bind_tenant(NULL)", &[]),
        "ES003",
    );
    expect_state(
        db.execute(
            "SELECT forgeerp.bind_tenant('00000000-0000-0000-0000-000000000000')",
            &[],
        ),
        "ES003",
    );
}

#[test]
fn set_local_of_the_setting_binds_too() {
    let mut db = connect();
    let (a, b) = (id(), id());
    let mut tx = db.transaction().unwrap();
    tx.batch_execute(&format!(
        "SET LOCAL forgeerp.tenant_id = '{}'",
        a.to_string().to_uppercase()
    ))
    .unwrap();
    expect_state(append(&mut tx, b, "t", id(), None, &ticks(1)), "ES002");
}

#[test]
fn an_application_role_has_no_table_privileges() {
    let mut db = connect();
    let role = app_role(&mut db);
    let mut app = connect_as(&role);
    let tenant = id();
    append(&mut app, tenant, "t", id(), None, &ticks(1)).unwrap();
    for statement in [
        "SELECT * FROM forgeerp.events",
        "INSERT INTO forgeerp.events (transaction_id, tenant_id, aggregate_type, aggregate_id, sequence_number, event_id, event_type, event_version, payload, occurred_at, recorded_at) VALUES (1, gen_random_uuid(), 't', gen_random_uuid(), 1, gen_random_uuid(), 'A', 1, '{}', now(), now())",
        "UPDATE forgeerp.events SET payload = '{}'",
        "DELETE FROM forgeerp.events",
        "SELECT nextval('forgeerp.events_global_position_seq')",
    ] {
        expect_state(app.batch_execute(statement), "42501");
    }
    // Everything of the contract works through the functions.
    let item = id();
    append(&mut app, tenant, "t", item, Some(0), &ticks(2)).unwrap();
    assert_eq!(
        app.query(
            "SELECT * FROM forgeerp.load_stream($1, $2)",
            &[&tenant, &item]
        )
        .unwrap()
        .len(),
        2
    );
    let version: i64 = app
        .query_one("SELECT forgeerp.stream_version($1, $2)", &[&tenant, &item])
        .unwrap()
        .get(0);
    assert_eq!(version, 2);
    assert_eq!(
        app.query("SELECT * FROM forgeerp.read_all(0, 0, 100, $1)", &[&tenant])
            .unwrap()
            .len(),
        3
    );
    app.query_one("SELECT forgeerp.version()", &[]).unwrap();
    // Not granted: the internals and granting itself.
    expect_state(
        app.execute("SELECT forgeerp.grant_usage('postgres')", &[]),
        "42501",
    );
    expect_state(
        app.execute("SELECT forgeerp.check_tenant($1, NULL)", &[&tenant]),
        "42501",
    );
    expect_state(
        app.execute("SELECT forgeerp.revoke_usage('postgres')", &[]),
        "42501",
    );
    expect_state(
        app.query("SELECT * FROM forgeerp.caller_scopes('postgres')", &[]),
        "42501",
    );
    expect_state(
        app.query("SELECT * FROM forgeerp.role_scopes", &[]),
        "42501",
    );
}

#[test]
fn an_application_role_cannot_cross_its_bound_tenant() {
    let mut db = connect();
    let role = app_role(&mut db);
    let (mine, theirs, item) = (id(), id(), id());
    append(
        &mut db,
        theirs,
        "t",
        item,
        None,
        &json!([{"event_type": "Secret", "payload": {"pin": 1234}}]),
    )
    .unwrap();
    let own_event = append(&mut db, mine, "t", id(), None, &ticks(1)).unwrap()[0]
        .get::<_, uuid::Uuid>("event_id");
    wait_for_feed(&mut db);
    let mut app = connect_as(&role);
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT forgeerp.bind_tenant($1)", &[&mine])
        .unwrap();
    expect_state(
        tx.query(
            "SELECT * FROM forgeerp.load_stream($1, $2)",
            &[&theirs, &item],
        ),
        "ES002",
    );
    tx.rollback().unwrap();
    let mut tx = app.transaction().unwrap();
    tx.execute("SELECT forgeerp.bind_tenant($1)", &[&mine])
        .unwrap();
    let seen: Vec<(uuid::Uuid, uuid::Uuid)> = tx
        .query(
            "SELECT tenant_id, event_id FROM forgeerp.read_all(0, 0, 1000000)",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // The positive control: the bound tenant's own event is there, so an
    // empty answer would not pass for isolation.
    assert!(seen.contains(&(mine, own_event)), "{seen:?}");
    assert!(seen.iter().all(|(tenant, _)| *tenant == mine), "{seen:?}");
}

#[test]
fn grant_usage_names_a_missing_role() {
    let mut db = connect();
    let error = expect_state(
        db.execute("SELECT forgeerp.grant_usage('no_such_role_x')", &[]),
        "ES003",
    );
    assert!(error.message().contains("no_such_role_x"));
    expect_state(
        db.execute("SELECT forgeerp.grant_usage(NULL)", &[]),
        "ES003",
    );
}

#[test]
fn security_definer_functions_pin_their_search_path() {
    let mut db = connect();
    let unpinned: Vec<String> = db
        .query(
            "SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              JOIN pg_language l ON l.oid = p.prolang
              WHERE n.nspname = 'forgeerp' AND (p.prosecdef OR l.lanname = 'c')
                AND NOT coalesce(p.proconfig, '{}') @> ARRAY['search_path=pg_catalog, forgeerp, pg_temp']",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        unpinned.is_empty(),
        "SECURITY DEFINER or C functions (which may switch identity) without a pinned search_path: {unpinned:?}"
    );
    let definers: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'forgeerp' AND p.prosecdef",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        definers >= 4,
        "load_stream_as, stream_version_as, read_all_as and scope_of run as the owner"
    );
}

#[test]
fn a_binding_that_is_not_a_tenant_id_refuses_everything() {
    let mut db = connect();
    let tenant = id();
    for call in [
        "SELECT count(*) FROM forgeerp.read_all()",
        "SELECT count(*) FROM forgeerp.read_all(0, 0, 10, '6f1c1a52-8c36-4a4e-9d55-2a4a7c1f0b10')",
        "SELECT count(*) FROM forgeerp.load_stream('6f1c1a52-8c36-4a4e-9d55-2a4a7c1f0b10', gen_random_uuid())",
    ] {
        let mut tx = db.transaction().unwrap();
        tx.batch_execute("SET LOCAL forgeerp.tenant_id = 'nonsense'").unwrap();
        let error = expect_state(tx.query_one(call, &[]), "ES002");
        let said = format!("{} {}", error.message(), error.detail().unwrap_or_default());
        assert!(said.contains("nonsense"), "{call}: {said}");
    }
    let mut tx = db.transaction().unwrap();
    tx.batch_execute("SET LOCAL forgeerp.tenant_id = 'nonsense'")
        .unwrap();
    expect_state(append(&mut tx, tenant, "t", id(), None, &ticks(1)), "ES002");
}

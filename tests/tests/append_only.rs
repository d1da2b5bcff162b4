//! forgeerp.events is append-only for everyone, the owner included (ES006).

use forgeerp_server_tests::*;

#[test]
fn update_delete_and_truncate_fail_with_es006_even_for_the_superuser() {
    let mut db = connect();
    let tenant = id();
    append(&mut db, tenant, "t", id(), None, &ticks(2)).unwrap();
    let before = store_fingerprint(&mut db);
    for (statement, names) in [
        (
            "UPDATE forgeerp.events SET payload = '{}' WHERE tenant_id = $1",
            "UPDATE",
        ),
        ("DELETE FROM forgeerp.events WHERE tenant_id = $1", "DELETE"),
        (
            "DELETE FROM forgeerp.events WHERE tenant_id = $1 AND false",
            "DELETE",
        ),
    ] {
        let error = expect_state(db.execute(statement, &[&tenant]), "ES006");
        assert!(
            error.message().contains(names) && error.message().contains("append-only"),
            "{}",
            error.message()
        );
    }
    expect_state(db.batch_execute("TRUNCATE forgeerp.events"), "ES006");
    expect_state(
        db.batch_execute("TRUNCATE forgeerp.events CASCADE"),
        "ES006",
    );
    assert_eq!(store_fingerprint(&mut db), before);
}

/// The owner of `forgeerp.events`, made a role that is not a superuser (in
/// a database of its own): it cannot change events with UPDATE, DELETE or
/// TRUNCATE (ES006), nor turn the triggers off for its session
/// (`session_replication_role` is for superusers, and the triggers fire in
/// every role anyway: ENABLE ALWAYS). What it can do is what PostgreSQL
/// gives every table owner: `ALTER TABLE … DISABLE TRIGGER`. That is why the
/// owner must be as trusted as a superuser (`docs/security.md`); a role that
/// does not own the table cannot (42501).
#[test]
fn the_table_owner_cannot_change_events_either() {
    let name = forgeerp_test_fixtures::database_name("forgeerp_owner_test", "");
    let conninfo = forgeerp_test_fixtures::fresh_database_blocking(
        &name,
        forgeerp_test_fixtures::Install::Current,
    );
    let mut admin = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    let (owner, stranger) = (
        format!("forgeerp_test_role_owner_{}", std::process::id()),
        format!("forgeerp_test_role_stranger_{}", std::process::id()),
    );
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {owner}; DROP ROLE IF EXISTS {stranger};
             CREATE ROLE {owner} LOGIN NOSUPERUSER; CREATE ROLE {stranger} LOGIN NOSUPERUSER;
             GRANT USAGE ON SCHEMA forgeerp TO {owner}, {stranger};
             ALTER TABLE forgeerp.events OWNER TO {owner};"
        ))
        .unwrap();
    let tenant = id();
    append(&mut admin, tenant, "t", id(), None, &ticks(2)).unwrap();
    let before = store_fingerprint(&mut admin);
    let is_superuser: bool = admin
        .query_one(
            "SELECT r.rolsuper FROM pg_tables t JOIN pg_roles r ON r.rolname = t.tableowner
              WHERE t.schemaname = 'forgeerp' AND t.tablename = 'events'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        !is_superuser,
        "the test needs an owner that is not a superuser"
    );

    let mut as_owner =
        postgres::Client::connect(&format!("{conninfo} user={owner}"), postgres::NoTls).unwrap();
    for statement in [
        "UPDATE forgeerp.events SET payload = '{}'",
        "DELETE FROM forgeerp.events",
        "TRUNCATE forgeerp.events",
    ] {
        expect_state(as_owner.batch_execute(statement), "ES006");
    }
    expect_state(
        as_owner.batch_execute("SET session_replication_role = replica"),
        "42501",
    );
    let mut as_stranger =
        postgres::Client::connect(&format!("{conninfo} user={stranger}"), postgres::NoTls).unwrap();
    expect_state(
        as_stranger.batch_execute("ALTER TABLE forgeerp.events DISABLE TRIGGER events_append_only"),
        "42501",
    );
    // The owner's own power over its table, shown and rolled back: with the
    // trigger off, the DELETE goes through.
    let mut tx = as_owner.transaction().unwrap();
    tx.batch_execute("ALTER TABLE forgeerp.events DISABLE TRIGGER events_append_only")
        .unwrap();
    assert_eq!(tx.execute("DELETE FROM forgeerp.events", &[]).unwrap(), 2);
    tx.rollback().unwrap();
    assert_eq!(store_fingerprint(&mut admin), before);

    drop((as_owner, as_stranger));
    admin
        .batch_execute("ALTER TABLE forgeerp.events OWNER TO CURRENT_USER")
        .unwrap();
    drop(admin);
    let mut maintenance = postgres::Client::connect(
        &forgeerp_test_fixtures::conninfo("postgres"),
        postgres::NoTls,
    )
    .unwrap();
    for statement in [
        format!("DROP DATABASE {name} WITH (FORCE)"),
        format!("DROP ROLE {owner}"),
        format!("DROP ROLE {stranger}"),
    ] {
        maintenance.batch_execute(&statement).unwrap();
    }
}

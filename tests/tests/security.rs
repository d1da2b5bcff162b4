//! Owner's rights against a hostile application role (see `tests/src/attack.rs`).

use forgeerp_server_tests::attack::Attacker;
use forgeerp_server_tests::{
    admin_base, append, connect, database, expect_state, id, store_fingerprint, ticks,
};

#[test]
fn no_security_definer_function_runs_an_application_roles_pg_temp_types() {
    let attacker = Attacker::new(database());
    let outcome = attacker.shadow_types_and_call_every_definer();
    // append switches identity itself; the read functions are SECURITY
    // INVOKER wrappers of the *_as ones.
    for f in [
        "forgeerp.append(uuid,text,uuid,bigint,jsonb)",
        "forgeerp.load_stream_as(text,uuid,uuid,bigint,integer)",
        "forgeerp.read_all_as(text,bigint,bigint,integer,uuid)",
        "forgeerp.stream_version_as(text,uuid,uuid)",
        "forgeerp.scope_of(text)",
    ] {
        assert!(
            outcome.called.iter().any(|c| c == f),
            "{f} runs with the owner's rights and was called: {:?}",
            outcome.called
        );
    }
    assert!(
        outcome.hits.is_empty(),
        "the attacker's pg_temp domain ran with another role's rights: {:?}",
        outcome.hits
    );
    assert!(!attacker.is_superuser(), "the attacker became superuser");
}

/// Errors raised inside the append path's Rust code carry no Rust backtrace,
/// whatever the server's environment: the private cluster runs with
/// RUST_BACKTRACE=full on purpose (scripts/setup.sh).
#[test]
fn no_rust_backtrace_reaches_a_client_whatever_the_servers_environment() {
    let mut holder = connect();
    // When the server runs here, check that its environment is the hostile
    // one (else this test would prove little). A backend's own environ is
    // overwritten by its process title: read the postmaster's.
    let data_directory: String = holder
        .query_one("SELECT current_setting('data_directory')", &[])
        .unwrap()
        .get(0);
    if let Ok(pid_file) = std::fs::read_to_string(format!("{data_directory}/postmaster.pid")) {
        let postmaster = pid_file.lines().next().unwrap_or_default();
        let environ = std::fs::read(format!("/proc/{postmaster}/environ")).unwrap();
        assert!(
            environ
                .split(|b| *b == 0)
                .any(|var| var.starts_with(b"RUST_BACKTRACE=")),
            "the test server runs with RUST_BACKTRACE set (scripts/setup.sh)"
        );
    }
    let (tenant, aggregate) = (id(), id());
    append(&mut holder, tenant, "t", aggregate, None, &ticks(1)).unwrap();
    let mut tx = holder.transaction().unwrap();
    append(&mut tx, tenant, "t", aggregate, None, &ticks(1)).unwrap(); // holds the stream's lock

    // A PostgreSQL error raised inside the Rust code (the lock wait times out).
    let mut waiter = connect();
    waiter.batch_execute("SET lock_timeout = '100ms'").unwrap();
    let error = expect_state(
        append(&mut waiter, tenant, "t", aggregate, None, &ticks(1)),
        "55P03",
    );
    for text in [Some(error.message()), error.detail(), error.hint()]
        .into_iter()
        .flatten()
    {
        for leak in ["backtrace", "panicked", ".rs:", "rust_begin_unwind", "pgrx"] {
            assert!(
                !text.contains(leak),
                "{leak:?} reached the client: {text:?}"
            );
        }
    }
    // And the offset that used to fail inside the conversion with a raw 22009.
    let error = expect_state(
        append(
            &mut waiter,
            id(),
            "t",
            id(),
            None,
            &serde_json::json!([{"event_type": "A", "payload": {}, "occurred_at": "2024-01-01T00:00:00+16:00"}]),
        ),
        "ES003",
    );
    assert!(error.detail().is_none(), "{:?}", error.detail());
    tx.rollback().unwrap();
}

/// `session_replication_role = replica` turns ordinary triggers off; the
/// append-only ones fire anyway (ENABLE ALWAYS), for the superuser too.
#[test]
fn the_append_only_triggers_fire_under_session_replication_role_replica() {
    let mut db = connect();
    append(&mut db, id(), "t", id(), None, &ticks(2)).unwrap();
    let before = store_fingerprint(&mut db);
    db.batch_execute("SET session_replication_role = replica")
        .unwrap();
    for statement in [
        "UPDATE forgeerp.events SET payload = '{}'",
        "DELETE FROM forgeerp.events",
        "TRUNCATE forgeerp.events",
    ] {
        expect_state(db.batch_execute(statement), "ES006");
    }
    db.batch_execute("RESET session_replication_role").unwrap();
    assert_eq!(store_fingerprint(&mut db), before);
}

/// The table itself holds the contract's invariants: not even the owner can
/// insert a row forgeerp.append would refuse.
#[test]
fn the_table_refuses_rows_the_contract_forbids_even_from_its_owner() {
    let mut db = connect();
    let before = store_fingerprint(&mut db);
    for (column, value, constraint) in [
        ("payload", "'[]'::jsonb", "events_payload_is_object"),
        ("payload", "'1'::jsonb", "events_payload_is_object"),
        ("metadata", "'\"x\"'::jsonb", "events_metadata_is_object"),
        ("event_type", "''", "events_event_type_valid"),
        ("event_type", "repeat('x', 256)", "events_event_type_valid"),
        ("aggregate_type", "''", "events_aggregate_type_valid"),
    ] {
        let mut row = std::collections::BTreeMap::from([
            (
                "transaction_id",
                "pg_current_xact_id()::text::bigint".to_string(),
            ),
            ("tenant_id", "gen_random_uuid()".to_string()),
            ("aggregate_type", "'t'".to_string()),
            ("aggregate_id", "gen_random_uuid()".to_string()),
            ("sequence_number", "1".to_string()),
            ("event_id", "gen_random_uuid()".to_string()),
            ("event_type", "'T'".to_string()),
            ("event_version", "1".to_string()),
            ("payload", "'{}'::jsonb".to_string()),
            ("metadata", "'{}'::jsonb".to_string()),
            ("occurred_at", "now()".to_string()),
            ("recorded_at", "now()".to_string()),
        ]);
        row.insert(column, value.to_string());
        let (columns, values): (Vec<&str>, Vec<String>) = row.into_iter().unzip();
        let error = expect_state(
            db.batch_execute(&format!(
                "INSERT INTO forgeerp.events ({}) VALUES ({})",
                columns.join(", "),
                values.join(", ")
            )),
            "23514",
        );
        assert_eq!(error.constraint(), Some(constraint), "{column} = {value}");
    }
    assert_eq!(store_fingerprint(&mut db), before);
}

/// CREATE EXTENSION forgeerp refuses a schema forgeerp it did not create
/// itself: its owner could have planted operators there that the functions
/// running with the extension owner's rights would use.
#[test]
fn create_extension_refuses_a_schema_forgeerp_it_did_not_create() {
    let name = format!("forgeerp_test_{}_adopt", std::process::id());
    let owner = format!("forgeerp_test_role_owner_{}", id().simple());
    let mut admin = postgres::Client::connect(
        &format!("{} dbname=postgres", admin_base()),
        postgres::NoTls,
    )
    .unwrap();
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE ROLE {owner} LOGIN"),
        format!("CREATE DATABASE {name} OWNER {owner}"),
    ] {
        admin.batch_execute(&statement).unwrap();
    }
    let mut as_owner = postgres::Client::connect(
        &format!("{} dbname={name} user={owner}", admin_base()),
        postgres::NoTls,
    )
    .unwrap();
    as_owner
        .batch_execute(
            "CREATE SCHEMA forgeerp;
             CREATE FUNCTION forgeerp.planted(uuid, uuid) RETURNS boolean LANGUAGE sql AS 'SELECT true';",
        )
        .unwrap();
    drop(as_owner);
    let mut db =
        postgres::Client::connect(&format!("{} dbname={name}", admin_base()), postgres::NoTls)
            .unwrap();
    let error = expect_state(db.batch_execute("CREATE EXTENSION forgeerp"), "42P06");
    assert!(
        error.message().contains("schema forgeerp already exists"),
        "{}",
        error.message()
    );
    assert!(
        error.message().contains(&owner),
        "names the schema's owner: {}",
        error.message()
    );
    let installed: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_extension WHERE extname = 'forgeerp'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(installed, 0, "nothing was installed");
    let objects: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_proc WHERE pronamespace = 'forgeerp'::regnamespace",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        objects, 1,
        "the schema holds what it held before, nothing more"
    );
    drop(db);
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .unwrap();
    admin.batch_execute(&format!("DROP ROLE {owner}")).unwrap();
}

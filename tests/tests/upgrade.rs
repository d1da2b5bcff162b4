//! Releases: every released version installs, and a database at any of them
//! upgrades in place to the current version with its data (docs/releases.md).
//!
//! The versions come from the server (`pg_available_extension_versions`), so
//! each new release is covered without editing this file. The contract tests
//! themselves also run on upgraded databases: `scripts/test.sh` runs them
//! once per older release with `FORGEERP_TEST_UPGRADE_FROM`.

use forgeerp_server_tests::attack::Attacker;
use forgeerp_server_tests::{
    admin_base, append, expect_state, id, store_fingerprint, ticks, wait_for_feed,
};
use forgeerp_test_fixtures::{database_name, fresh_database_blocking, Install};
use postgres::{Client, NoTls};
use serde_json::json;
use uuid::Uuid;

/// One line per object of the extension (tests/sql/extension_catalog.sql).
const CATALOG: &str = include_str!("../sql/extension_catalog.sql");
/// An application role, granted in every database of these tests (the
/// catalogs compared include its privileges).
const APP_ROLE: &str = "forgeerp_test_role_upgrade_app";

/// Every installable version, oldest first; the last is the current one.
fn versions() -> Vec<String> {
    let mut admin = connect("postgres");
    let current: String = admin
        .query_one(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'forgeerp'",
            &[],
        )
        .unwrap()
        .get(0);
    let mut all: Vec<String> = admin
        .query(
            "SELECT version FROM pg_available_extension_versions WHERE name = 'forgeerp'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    all.sort_by_key(|v| {
        v.split('.')
            .map(|n| n.parse::<u64>().expect("versions are numeric"))
            .collect::<Vec<_>>()
    });
    assert_eq!(all.last(), Some(&current), "the current version sorts last");
    assert!(
        all.iter().any(|v| v == "0.1.0"),
        "the first release stays installable: {all:?}"
    );
    all
}

fn older_versions() -> Vec<String> {
    let mut all = versions();
    all.pop();
    assert!(!all.is_empty(), "there is a release before the current one");
    all
}

fn connect(database: &str) -> Client {
    Client::connect(&format!("{} dbname={database}", admin_base()), NoTls)
        .unwrap_or_else(|e| panic!("connect to {database}: {e}"))
}

/// A database of these tests, dropped when this goes out of scope (its
/// notifier with it, so that the tests after these find worker slots free).
struct Scratch(String);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = connect("postgres")
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
    }
}

/// A new database `forgeerp_upgrade_test_<pid>_<suffix>` with the extension
/// at `version` (None: the current one) and `APP_ROLE` granted.
fn database_at(suffix: &str, version: Option<&str>) -> (Scratch, Client) {
    let name = database_name("forgeerp_upgrade_test", &format!("_{suffix}"));
    connect("postgres")
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ))
        .unwrap();
    let install = match version {
        Some(v) => Install::At(v),
        None => Install::Current,
    };
    let mut db = Client::connect(&fresh_database_blocking(&name, install), NoTls)
        .unwrap_or_else(|e| panic!("connect to {name}: {e}"));
    db.batch_execute(&format!("SELECT forgeerp.grant_usage('{APP_ROLE}')"))
        .unwrap();
    (Scratch(name), db)
}

fn catalog(db: &mut Client) -> Vec<String> {
    db.query(CATALOG, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn version_of(db: &mut Client) -> String {
    db.query_one("SELECT forgeerp.version()", &[])
        .unwrap()
        .get(0)
}

/// Asserts two catalogs are equal, naming the lines that differ.
#[track_caller]
fn assert_same_catalog(upgraded: &[String], fresh: &[String], path: &str) {
    let only_upgraded: Vec<_> = upgraded.iter().filter(|l| !fresh.contains(l)).collect();
    let only_fresh: Vec<_> = fresh.iter().filter(|l| !upgraded.contains(l)).collect();
    assert!(
        only_upgraded.is_empty() && only_fresh.is_empty() && upgraded.len() == fresh.len(),
        "{path}: the upgraded extension differs from a fresh install\nonly after the upgrade: {only_upgraded:#?}\nonly in a fresh install: {only_fresh:#?}"
    );
}

/// What a database holds, written by [`write_data`].
struct Written {
    streams: Vec<(Uuid, Uuid)>,
    /// A feed cursor taken half-way through the writes.
    cursor: (i64, i64),
}

/// Real data: three tenants with three streams each, written in two rounds
/// (the feed cursor is taken between them), events with their own ids,
/// metadata and times, an append by the application role, and the driver's
/// read model with a checkpoint at the cursor.
fn write_data(name: &str, db: &mut Client) -> Written {
    let streams: Vec<(Uuid, Uuid)> = (0..3)
        .flat_map(|_| {
            let tenant = id();
            (0..3).map(move |_| (tenant, id()))
        })
        .collect();
    for (i, (tenant, aggregate)) in streams.iter().enumerate() {
        let events = json!([
            {"event_type": "ItemCreated", "payload": {"sku": format!("SKU-{i}")},
             "event_id": id().to_string(), "metadata": {"actor": "upgrade-test"},
             "occurred_at": "2024-02-29T12:00:00Z"},
            {"event_type": "StockReceived", "payload": {"quantity": 10 * i}, "event_version": 2},
        ]);
        append(db, *tenant, "inventory.item", *aggregate, Some(0), &events).unwrap();
    }
    wait_for_feed(db);
    let cursor: (i64, i64) = {
        let row = db
            .query_one(
                "SELECT transaction_id, global_position FROM forgeerp.read_all(0, 0, 100000)
                  ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    for (tenant, aggregate) in &streams {
        append(
            db,
            *tenant,
            "inventory.item",
            *aggregate,
            Some(2),
            &ticks(3),
        )
        .unwrap();
    }
    let (tenant, aggregate) = streams[0];
    let mut app = Client::connect(
        &format!("{} dbname={name} user={APP_ROLE}", admin_base()),
        NoTls,
    )
    .unwrap();
    append(
        &mut app,
        tenant,
        "inventory.item",
        aggregate,
        Some(5),
        &ticks(1),
    )
    .unwrap();

    // The driver's own tables, made by its migrations as an application would.
    let url = format!("{} dbname={name}", admin_base());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = forgeerp_infra::PgEventStore::connect(&url, 1).unwrap();
            forgeerp_infra::migrate(store.pool()).await.unwrap();
        });
    db.execute(
        "INSERT INTO forgeerp_read.entries (model, tenant_id, key, value) VALUES ('stock', $1, 'SKU-0', '{\"on_hand\": 0}')",
        &[&tenant],
    )
    .unwrap();
    db.execute(
        "INSERT INTO forgeerp_read.checkpoints (projection, tenant_key, transaction_id, global_position) VALUES ('stock', '*', $1, $2)",
        &[&cursor.0, &cursor.1],
    )
    .unwrap();
    Written { streams, cursor }
}

/// Everything a reader can see, as lines: the stored rows, each stream's
/// version and events, the feed after the cursor, and the driver's tables.
fn snapshot(db: &mut Client, written: &Written) -> Vec<String> {
    let mut lines = vec![store_fingerprint(db)];
    let mut text = |sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]| {
        db.query(sql, params)
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    lines.extend(text(
        "SELECT e::text FROM forgeerp.events e ORDER BY global_position",
        &[],
    ));
    for (tenant, aggregate) in &written.streams {
        lines.extend(text(
            "SELECT forgeerp.stream_version($1, $2)::text",
            &[tenant, aggregate],
        ));
        lines.extend(text(
            "SELECT e::text FROM forgeerp.load_stream($1, $2) e",
            &[tenant, aggregate],
        ));
        lines.extend(text(
            "SELECT e::text FROM forgeerp.read_all($1, $2, 100000, $3) e",
            &[&written.cursor.0, &written.cursor.1, tenant],
        ));
    }
    lines.extend(text(
        "SELECT e::text FROM forgeerp.read_all($1, $2, 100000) e",
        &[&written.cursor.0, &written.cursor.1],
    ));
    for table in ["entries", "checkpoints", "schema_migrations"] {
        lines.extend(text(
            &format!("SELECT t::text FROM forgeerp_read.{table} t ORDER BY t::text"),
            &[],
        ));
    }
    lines
}

/// The whole feed after the cursor taken half-way.
fn feed_after_cursor(db: &mut Client, written: &Written) -> Vec<String> {
    db.query(
        "SELECT e::text FROM forgeerp.read_all($1, $2, 100000) e",
        &[&written.cursor.0, &written.cursor.1],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Appends continue every stream where it stood, and the feed from the old
/// cursor shows what it showed before, then the new events.
fn assert_streams_continue(db: &mut Client, written: &Written, feed_before: &[String]) {
    let last_position: i64 = db
        .query_one("SELECT max(global_position) FROM forgeerp.events", &[])
        .unwrap()
        .get(0);
    for (tenant, aggregate) in &written.streams {
        let version: i64 = db
            .query_one(
                "SELECT forgeerp.stream_version($1, $2)",
                &[tenant, aggregate],
            )
            .unwrap()
            .get(0);
        let rows = append(
            db,
            *tenant,
            "inventory.item",
            *aggregate,
            Some(version),
            &ticks(1),
        )
        .unwrap_or_else(|e| panic!("append after the upgrade: {e}"));
        assert_eq!(rows[0].get::<_, i64>("sequence_number"), version + 1);
        assert!(rows[0].get::<_, i64>("global_position") > last_position);
    }
    wait_for_feed(db);
    let feed = feed_after_cursor(db, written);
    assert!(
        feed.starts_with(feed_before) && feed.len() == feed_before.len() + written.streams.len(),
        "the feed after the old cursor is what it was, then the new events"
    );
}

#[test]
fn every_older_release_upgrades_in_place_to_the_current_version() {
    let (_fresh, mut fresh) = database_at("fresh", None);
    let fresh_catalog = catalog(&mut fresh);
    let current = version_of(&mut fresh);
    for version in older_versions() {
        let suffix = format!("from_{}", version.replace('.', "_"));
        let (scratch, mut db) = database_at(&suffix, Some(&version));
        assert_eq!(version_of(&mut db), version);
        let written = write_data(&scratch.0, &mut db);
        let before = snapshot(&mut db, &written);
        let feed_before = feed_after_cursor(&mut db, &written);

        db.batch_execute("ALTER EXTENSION forgeerp UPDATE")
            .unwrap_or_else(|e| panic!("ALTER EXTENSION forgeerp UPDATE from {version}: {e}"));

        assert_eq!(version_of(&mut db), current);
        assert_same_catalog(
            &catalog(&mut db),
            &fresh_catalog,
            &format!("{version} -> {current}"),
        );
        assert_eq!(
            snapshot(&mut db, &written),
            before,
            "{version} -> {current}: the data a reader sees is unchanged"
        );
        assert_streams_continue(&mut db, &written, &feed_before);
    }
}

#[test]
fn the_chain_of_single_steps_from_the_first_release_matches_a_fresh_install() {
    let all = versions();
    let (_fresh, mut fresh) = database_at("chain_fresh", None);
    let fresh_catalog = catalog(&mut fresh);
    let (scratch, mut db) = database_at("chain", Some(&all[0]));
    let written = write_data(&scratch.0, &mut db);
    let before = snapshot(&mut db, &written);
    let feed_before = feed_after_cursor(&mut db, &written);
    for step in all.windows(2) {
        db.batch_execute(&format!("ALTER EXTENSION forgeerp UPDATE TO '{}'", step[1]))
            .unwrap_or_else(|e| panic!("{} -> {}: {e}", step[0], step[1]));
        assert_eq!(version_of(&mut db), step[1]);
        assert_eq!(
            snapshot(&mut db, &written),
            before,
            "{} -> {}: the data a reader sees is unchanged",
            step[0],
            step[1]
        );
    }
    assert_same_catalog(&catalog(&mut db), &fresh_catalog, &all.join(" -> "));
    assert_streams_continue(&mut db, &written, &feed_before);
}

#[test]
fn a_database_not_yet_updated_keeps_working_on_the_installed_library() {
    for version in older_versions() {
        let suffix = format!("stays_{}", version.replace('.', "_"));
        let (scratch, mut db) = database_at(&suffix, Some(&version));
        let written = write_data(&scratch.0, &mut db);
        assert_eq!(version_of(&mut db), version, "nothing updated it");
        for (tenant, aggregate) in &written.streams {
            let v: i64 = db
                .query_one(
                    "SELECT forgeerp.stream_version($1, $2)",
                    &[tenant, aggregate],
                )
                .unwrap()
                .get(0);
            assert!(v >= 5, "stream_version reads the stream ({v})");
        }
        let (tenant, aggregate) = written.streams[1];
        expect_state(
            append(
                &mut db,
                tenant,
                "inventory.item",
                aggregate,
                Some(1),
                &ticks(1),
            ),
            "ES001",
        );
        let feed: i64 = db
            .query_one("SELECT count(*) FROM forgeerp.read_all(0, 0, 100000)", &[])
            .unwrap()
            .get(0);
        assert_eq!(feed, 9 * 5 + 1, "{version}: the whole feed");
    }
}

#[test]
fn a_database_at_a_version_the_library_does_not_serve_is_refused_clearly() {
    let (scratch, mut db) = database_at("unserved", None);
    let (tenant, aggregate) = (id(), id());
    append(
        &mut db,
        tenant,
        "inventory.item",
        aggregate,
        Some(0),
        &ticks(1),
    )
    .unwrap();
    db.batch_execute("UPDATE pg_extension SET extversion = '0.0.1' WHERE extname = 'forgeerp'")
        .unwrap();
    let before = store_fingerprint(&mut db);
    // The check runs once per backend: a new session sees the new version.
    let mut session = connect(&scratch.0);
    let error = expect_state(
        append(
            &mut session,
            tenant,
            "inventory.item",
            aggregate,
            Some(1),
            &ticks(1),
        ),
        "55000",
    );
    assert!(
        error.message().contains("version 0.0.1"),
        "{}",
        error.message()
    );
    assert!(
        error
            .hint()
            .unwrap_or("")
            .contains("ALTER EXTENSION forgeerp UPDATE"),
        "{:?}",
        error.hint()
    );
    assert_eq!(store_fingerprint(&mut db), before, "nothing was written");
}

#[test]
fn an_update_to_a_version_that_does_not_exist_fails_and_changes_nothing() {
    let oldest = versions().remove(0);
    let (scratch, mut db) = database_at("no_such_version", Some(&oldest));
    let written = write_data(&scratch.0, &mut db);
    let (before, catalog_before) = (snapshot(&mut db, &written), catalog(&mut db));
    let error = expect_state(
        db.batch_execute("ALTER EXTENSION forgeerp UPDATE TO '9.9.9'"),
        "22023",
    );
    assert!(error.message().contains("9.9.9"), "{}", error.message());
    assert_eq!(version_of(&mut db), oldest);
    assert_eq!(snapshot(&mut db, &written), before);
    assert_eq!(catalog(&mut db), catalog_before);
}

#[test]
fn the_update_closes_the_pg_temp_attack_that_0_1_0_was_open_to() {
    let (scratch, mut db) = database_at("attack", Some("0.1.0"));
    let attacker = Attacker::new(&scratch.0);
    let outcome = attacker.shadow_types_and_call_every_definer();
    assert!(
        !outcome.hits.is_empty() && attacker.is_superuser(),
        "0.1.0 pinned search_path = forgeerp, pg_catalog, so the attack works there (else this test proves nothing)"
    );
    attacker.demote();

    db.batch_execute("ALTER EXTENSION forgeerp UPDATE").unwrap();
    let outcome = attacker.shadow_types_and_call_every_definer();
    assert!(outcome.hits.is_empty(), "{:?}", outcome.hits);
    assert!(!attacker.is_superuser());
}

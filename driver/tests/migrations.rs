//! The driver's numbered migrations against the private cluster: once each,
//! safe when two processes start together, from every past schema version
//! with data in it, and all or nothing when one fails.

mod common;

use deadpool_postgres::Pool;
use forgeerp_infra::migrations::{self, Migration, MigrationError, MIGRATIONS};
use forgeerp_infra::PgEventStore;
use std::time::Duration;
use uuid::Uuid;

const READ_SCHEMA: &str = include_str!("sql/read_schema_catalog.sql");

async fn pool_of(suffix: &str) -> Pool {
    let url = common::fresh_database(suffix).await;
    PgEventStore::connect(&url, 4).unwrap().pool().clone()
}

async fn read_schema(pool: &Pool) -> Vec<String> {
    let client = pool.get().await.unwrap();
    // Names in expressions come out schema-qualified, whatever this pooled
    // session's search_path was.
    client
        .batch_execute("SET search_path = pg_catalog")
        .await
        .unwrap();
    client
        .query(READ_SCHEMA, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn recorded(pool: &Pool) -> Vec<(i32, String)> {
    let client = pool.get().await.unwrap();
    client
        .query(
            "SELECT version, name FROM forgeerp_read.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn all_versions() -> Vec<i32> {
    MIGRATIONS.iter().map(|m| m.version).collect()
}

/// Where the tables of any schema version are found by their bare names:
/// migration 5 moved the inventory tables from `forgeerp_read` to
/// `forgeerp_inventory`.
const SCHEMAS: &str = "SET search_path = forgeerp_read, forgeerp_inventory, public;";

/// Rows in every table that exists at schema version `version` (0: the
/// tables as made before migrations were numbered, which is what migrations
/// 1 and 2 make); returns the rows as text, table by table.
async fn write_rows(pool: &Pool, version: i32) -> Vec<String> {
    let client = pool.get().await.unwrap();
    let tenant = Uuid::new_v4();
    let mut tables = vec![];
    if version >= 1 {
        client
            .batch_execute(&format!(
                "{SCHEMAS} BEGIN; SELECT forgeerp.bind_tenant('{tenant}');
                 INSERT INTO forgeerp_read.entries (model, tenant_id, key, value) VALUES ('stock', '{tenant}', 'SKU-1', '{{\"on_hand\": 3}}');
                 INSERT INTO forgeerp_read.checkpoints (projection, tenant_key, transaction_id, global_position) VALUES ('stock', '*', 7, 42);
                 INSERT INTO forgeerp_read.parked_events VALUES ('stock', '{tenant}', gen_random_uuid(), gen_random_uuid(), 3, 7, 41, 'bad payload', 5);
                 INSERT INTO stock_history_runs VALUES ('{tenant}', gen_random_uuid(), 1, 2, ARRAY[now(), now()], ARRAY[5, 3], ARRAY[0, 1]);
                 COMMIT;"
            ))
            .await
            .unwrap();
        tables.extend([
            "entries",
            "checkpoints",
            "parked_events",
            "stock_history_runs",
        ]);
    }
    if version >= 2 {
        client
            .batch_execute(&format!(
                "{SCHEMAS} BEGIN; SELECT forgeerp.bind_tenant('{tenant}');
                 INSERT INTO ai_insights (tenant_id, item_id, kind, occurred_at, severity, score, observed, expected, name, explanation)
                 VALUES ('{tenant}', gen_random_uuid(), 'theft_like_drop', now(), 'high', 9.5, 240, 12, 'M8 bolt', '240 units left');
                 COMMIT;"
            ))
            .await
            .unwrap();
        tables.push("ai_insights");
    }
    rows_of(pool, &tables).await
}

async fn rows_of(pool: &Pool, tables: &[&str]) -> Vec<String> {
    let client = pool.get().await.unwrap();
    client.batch_execute(SCHEMAS).await.unwrap();
    let mut rows = vec![];
    for table in tables {
        // As the superuser: row-level security does not hide rows from it.
        for row in client
            .query(&format!("SELECT t::text FROM {table} t ORDER BY 1"), &[])
            .await
            .unwrap()
        {
            rows.push(format!("{table}: {}", row.get::<_, String>(0)));
        }
    }
    rows
}

#[tokio::test]
async fn each_migration_runs_once_and_a_second_call_finds_nothing_to_do() {
    let pool = pool_of("_once").await;
    assert_eq!(migrations::schema_version(&pool).await.unwrap(), 0);
    let first = forgeerp_infra::migrate(&pool).await.unwrap();
    assert_eq!(first.from_version, 0);
    assert_eq!(first.applied, all_versions());
    assert_eq!(first.to_version, MIGRATIONS.len() as i32);
    let second = forgeerp_infra::migrate(&pool).await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.from_version, second.to_version);
    let names: Vec<(i32, String)> = MIGRATIONS
        .iter()
        .map(|m| (m.version, m.name.to_string()))
        .collect();
    assert_eq!(recorded(&pool).await, names);
}

#[tokio::test]
async fn two_processes_that_migrate_at_once_apply_each_migration_once() {
    let url = common::fresh_database("_race").await;
    let (a, b) = (
        PgEventStore::connect(&url, 1).unwrap().pool().clone(),
        PgEventStore::connect(&url, 1).unwrap().pool().clone(),
    );
    // Hold the migrators' lock so that both really wait on it together, then
    // let them go at once.
    let gate = PgEventStore::connect(&url, 1).unwrap().pool().clone();
    let gate = gate.get().await.unwrap();
    gate.execute(
        "SELECT pg_advisory_lock(hashtext('forgeerp_read.migrate'))",
        &[],
    )
    .await
    .unwrap();
    let (ra, rb) = (
        tokio::spawn({
            let a = a.clone();
            async move { forgeerp_infra::migrate(&a).await }
        }),
        tokio::spawn({
            let b = b.clone();
            async move { forgeerp_infra::migrate(&b).await }
        }),
    );
    let mut waiting = 0;
    for _ in 0..100 {
        waiting = gate
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        if waiting == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(waiting, 2, "both migrators wait on the lock together");
    gate.execute(
        "SELECT pg_advisory_unlock(hashtext('forgeerp_read.migrate'))",
        &[],
    )
    .await
    .unwrap();
    let (ra, rb) = (ra.await.unwrap().unwrap(), rb.await.unwrap().unwrap());
    let mut applied = [ra.applied, rb.applied].concat();
    applied.sort();
    assert_eq!(
        applied,
        all_versions(),
        "each migration applied by exactly one"
    );
    assert_eq!(recorded(&a).await.len(), MIGRATIONS.len());
}

#[tokio::test]
async fn every_past_schema_version_with_data_migrates_to_the_current_one() {
    let reference = pool_of("_reference").await;
    forgeerp_infra::migrate(&reference).await.unwrap();
    let current_schema = read_schema(&reference).await;

    // "legacy": the tables as the driver made them before migrations were
    // numbered: the statements of migrations 1 and 2, run without a record.
    let mut starts: Vec<(String, Option<i32>)> = vec![("legacy".into(), None)];
    starts.extend((0..MIGRATIONS.len() as i32).map(|v| (format!("v{v}"), Some(v))));
    for (label, start) in starts {
        let pool = pool_of(&format!("_from_{label}")).await;
        let rows = match start {
            None => {
                let client = pool.get().await.unwrap();
                for m in &MIGRATIONS[..2] {
                    client.batch_execute(m.sql).await.unwrap();
                }
                drop(client);
                write_rows(&pool, 2).await
            }
            Some(version) => {
                let report = migrations::apply(&pool, MIGRATIONS, Some(version))
                    .await
                    .unwrap();
                assert_eq!(report.to_version, version);
                write_rows(&pool, version).await
            }
        };
        let report = forgeerp_infra::migrate(&pool).await.unwrap();
        assert_eq!(report.to_version, MIGRATIONS.len() as i32, "{label}");
        assert_eq!(
            report.from_version,
            start.unwrap_or(0),
            "{label}: the version it started from"
        );
        assert_eq!(read_schema(&pool).await, current_schema, "{label}: schema");
        let mut tables: Vec<&str> = rows.iter().map(|r| r.split(':').next().unwrap()).collect();
        tables.dedup();
        assert_eq!(rows_of(&pool, &tables).await, rows, "{label}: data intact");
    }
}

#[tokio::test]
async fn a_failing_migration_is_rolled_back_whole_and_named() {
    let pool = pool_of("_failing").await;
    let broken = [
        MIGRATIONS[0],
        Migration {
            version: 2,
            name: "broken",
            sql: "CREATE TABLE forgeerp_read.half_done (x integer); SELECT 1 / 0;",
        },
    ];
    let error = migrations::apply(&pool, &broken, None).await.unwrap_err();
    match &error {
        MigrationError::Failed {
            version: 2,
            name: "broken",
            sqlstate: Some(code),
            ..
        } => assert_eq!(code, "22012"),
        other => panic!("expected migration 2 to fail, got {other:?}"),
    }
    assert!(
        error.to_string().contains("migration 2 (broken)"),
        "{error}"
    );
    assert_eq!(
        migrations::schema_version(&pool).await.unwrap(),
        1,
        "the schema stays at the version before the failing migration"
    );
    let client = pool.get().await.unwrap();
    let half_done: bool = client
        .query_one(
            "SELECT to_regclass('forgeerp_read.half_done') IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!half_done, "nothing of the failed migration stays");
    // Fixed, the same call goes on from where it stopped.
    let report = forgeerp_infra::migrate(&pool).await.unwrap();
    assert_eq!(report.applied, all_versions()[1..].to_vec());
}

#[tokio::test]
async fn a_database_that_recorded_an_edited_migration_is_refused() {
    let pool = pool_of("_edited").await;
    forgeerp_infra::migrate(&pool).await.unwrap();
    let mut edited = MIGRATIONS.to_vec();
    edited[0].sql = "CREATE SCHEMA IF NOT EXISTS forgeerp_read;";
    let error = migrations::apply(&pool, &edited, None).await.unwrap_err();
    assert_eq!(
        error,
        MigrationError::Edited {
            version: 1,
            name: "read_models"
        }
    );
}

#[tokio::test]
async fn migrations_out_of_order_are_refused_before_anything_runs() {
    let pool = pool_of("_numbering").await;
    let error = migrations::apply(&pool, &[MIGRATIONS[1]], None)
        .await
        .unwrap_err();
    assert_eq!(error, MigrationError::BadNumbering { place: 1, found: 2 });
    assert_eq!(migrations::schema_version(&pool).await.unwrap(), 0);
}

/// Every row-level security policy of the driver's tables states the
/// binding rule once, through `forgeerp_read.is_bound_tenant`, and none reads
/// the setting itself; the function is inlined, so a bound read of one
/// tenant's entries still uses the primary key's index.
#[tokio::test]
async fn every_policy_asks_the_one_binding_rule() {
    let pool = pool_of("_policies").await;
    forgeerp_infra::migrate(&pool).await.unwrap();
    let client = pool.get().await.unwrap();
    let policies = client
        .query(
            "SELECT tablename::text, qual, with_check FROM pg_policies
              WHERE schemaname IN ('forgeerp_read', 'forgeerp_inventory', 'forgeerp_keys') ORDER BY tablename",
            &[],
        )
        .await
        .unwrap();
    let tables: Vec<String> = policies.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        tables,
        [
            "ai_insights",
            "checkpoints",
            "entries",
            "parked_events",
            "snapshots",
            "stock_history_runs",
            "subject_keys"
        ]
    );
    for row in &policies {
        for clause in [row.get::<_, String>(1), row.get::<_, String>(2)] {
            assert!(clause.contains("is_bound_tenant("), "{clause}");
            assert!(!clause.contains("current_setting"), "{clause}");
        }
    }
    // Superusers bypass row-level security: read as a plain role.
    client
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE forgeerp_test_role_policy_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             GRANT USAGE ON SCHEMA forgeerp_read TO forgeerp_test_role_policy_reader;
             GRANT SELECT ON forgeerp_read.entries TO forgeerp_test_role_policy_reader;
             SET ROLE forgeerp_test_role_policy_reader",
        )
        .await
        .unwrap();
    let plan: Vec<String> = client
        .query(
            "EXPLAIN (COSTS OFF) SELECT 1 FROM forgeerp_read.entries
              WHERE model = 'm' AND tenant_id = 'a5f6c1de-1111-4222-8333-944445555666'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    client.batch_execute("RESET ROLE").await.unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("current_setting"),
        "the policy applies: {plan}"
    );
    assert!(!plan.contains("is_bound_tenant"), "not inlined: {plan}");
    assert!(plan.contains("Index"), "{plan}");
}

/// Migration 5 moves the inventory tables to `forgeerp_inventory`; a role
/// that could use `forgeerp_read` can use the new schema too, and no other.
#[tokio::test]
async fn moving_the_inventory_tables_keeps_who_may_reach_them() {
    let pool = pool_of("_inventory_schema").await;
    migrations::apply(&pool, MIGRATIONS, Some(4)).await.unwrap();
    let client = pool.get().await.unwrap();
    client
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE forgeerp_test_role_reader_before; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             DO $$ BEGIN CREATE ROLE forgeerp_test_role_stranger; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             GRANT USAGE ON SCHEMA forgeerp_read TO forgeerp_test_role_reader_before;
             GRANT SELECT ON forgeerp_read.ai_insights TO forgeerp_test_role_reader_before;",
        )
        .await
        .unwrap();
    drop(client);
    let report = forgeerp_infra::migrate(&pool).await.unwrap();
    assert!(report.applied.contains(&5), "{report:?}");
    let client = pool.get().await.unwrap();
    let may = |role: &'static str, what: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(what, &[&role])
                .await
                .unwrap()
                .get::<_, bool>(0)
        }
    };
    let usage = "SELECT has_schema_privilege($1, 'forgeerp_inventory', 'USAGE')";
    let select = "SELECT has_table_privilege($1, 'forgeerp_inventory.ai_insights', 'SELECT')";
    assert!(may("forgeerp_test_role_reader_before", usage).await);
    assert!(may("forgeerp_test_role_reader_before", select).await);
    assert!(!may("forgeerp_test_role_stranger", usage).await);
    let moved: Option<String> = client
        .query_one("SELECT to_regclass('forgeerp_read.ai_insights')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(moved, None, "nothing of inventory is left in forgeerp_read");
}

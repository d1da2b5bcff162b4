//! Shared by the driver's tests: a fresh database with the extension per test
//! process on the private cluster (`scripts/setup.sh`), or on the server that
//! `FORGEERP_TEST_ADMIN` (a superuser libpq string) names.

#![allow(dead_code)]

use forgeerp_infra::PgEventStore;
use tokio::sync::OnceCell;

pub fn admin_base() -> String {
    std::env::var("FORGEERP_TEST_ADMIN").unwrap_or_else(|_| {
        let port = std::env::var("FORGEERP_PGPORT").unwrap_or_else(|_| "28815".into());
        format!("host=127.0.0.1 port={port} user=postgres")
    })
}

/// Connection string of this process's test database, created on first use.
pub async fn database_url() -> String {
    static URL: OnceCell<String> = OnceCell::const_new();
    URL.get_or_init(|| fresh_database("")).await.clone()
}

/// Creates (again) the database `forgeerp_driver_test_<pid><suffix>` with the
/// extension; returns its connection string.
pub async fn fresh_database(suffix: &str) -> String {
    let name = format!("forgeerp_driver_test_{}{suffix}", std::process::id());
    let (admin, connection) = tokio_postgres::connect(
        &format!("{} dbname=postgres", admin_base()),
        tokio_postgres::NoTls,
    )
    .await
    .expect(
        "cannot reach the test server: run scripts/setup.sh first (or set FORGEERP_TEST_ADMIN)",
    );
    let driver = tokio::spawn(connection);
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    drop(admin);
    let _ = driver.await;
    let url = format!("{} dbname={name}", admin_base());
    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    db.batch_execute("CREATE EXTENSION forgeerp").await.unwrap();
    drop(db);
    let _ = driver.await;
    url
}

/// A Postgres store on the test database.
pub async fn pg_store() -> PgEventStore {
    PgEventStore::connect(&database_url().await, 8).expect("pool")
}

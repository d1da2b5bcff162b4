//! Shared by the driver's tests: a fresh database with the extension per test
//! process (from `forgeerp-test-fixtures`: the private cluster of
//! `scripts/setup.sh`, or the server that `FORGEERP_TEST_ADMIN` names).

#![allow(dead_code)]

use forgeerp_infra::PgEventStore;
use forgeerp_test_fixtures::{database_name, Install};
use tokio::sync::OnceCell;

/// Connection string of this process's test database, created on first use.
pub async fn database_url() -> String {
    static URL: OnceCell<String> = OnceCell::const_new();
    URL.get_or_init(|| fresh_database("")).await.clone()
}

/// Creates (again) the database `forgeerp_driver_test_<pid><suffix>` with the
/// extension; returns its connection string.
pub async fn fresh_database(suffix: &str) -> String {
    let name = database_name("forgeerp_driver_test", suffix);
    forgeerp_test_fixtures::fresh_database(&name, Install::Current).await
}

/// A Postgres store on the test database.
pub async fn pg_store() -> PgEventStore {
    PgEventStore::connect(&database_url().await, 8).expect("pool")
}

/// [`fresh_database`] with the driver's migrations applied: its connection
/// string and a store with a pool of `max_connections` on it.
pub async fn migrated_database(suffix: &str, max_connections: usize) -> (String, PgEventStore) {
    let url = fresh_database(suffix).await;
    let store = PgEventStore::connect(&url, max_connections).unwrap();
    forgeerp_infra::migrate(store.pool()).await.unwrap();
    (url, store)
}

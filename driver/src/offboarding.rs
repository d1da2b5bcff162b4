//! Offboarding a tenant: one call that removes it from everywhere the
//! driver and the extension keep it.
//!
//! [`purge_tenant`] runs, in one transaction, as a superuser:
//! `forgeerp.purge_tenant` (its events, recorded in `forgeerp.purges`), then
//! its read models (`forgeerp_read.entries`), stock history and anomaly
//! insights (`forgeerp_inventory`), parked events, snapshots, data keys
//! (`forgeerp_keys`) and its own checkpoints. All of it or nothing.
//!
//! Other tenants notice nothing: their events, positions, cursors and read
//! models are untouched, and the feed stays gap-free for what remains. The
//! purge waits for projection workers' transactions in flight (it locks
//! every checkpoint) and records the feed's head in
//! `forgeerp_read.purged_tenants`, so a worker that had read some of the
//! tenant's events before the purge skips them instead of writing the
//! tenant's read models again. Stop the tenant's writers first: an append
//! that commits while the purge runs is not removed.

use crate::db_error::DbFailure;
use crate::ids::TenantId;
use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;

/// What [`purge_tenant`] removed, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TenantPurge {
    /// Events (`forgeerp.purge_tenant`'s count).
    pub events: u64,
    /// Read-model entries (stock levels and every [`crate::PgTenantStore`] model).
    pub read_model_entries: u64,
    /// Runs of stock history.
    pub stock_history_runs: u64,
    /// Anomaly insights.
    pub insights: u64,
    /// Parked events.
    pub parked_events: u64,
    /// Aggregate snapshots.
    pub snapshots: u64,
    /// Data keys of its subjects.
    pub data_keys: u64,
    /// Its own checkpoints (of per-tenant workers).
    pub checkpoints: u64,
}

/// Why a tenant was not purged; nothing was removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PurgeError {
    /// The connected role is not a superuser (42501).
    #[error("purging a tenant needs a superuser: {0}")]
    NotPermitted(String),
    /// The driver's tables are not there: run [`crate::migrate`] first.
    #[error(
        "the driver's tables are not at migration 8 or later: run forgeerp_infra::migrate first"
    )]
    NotMigrated,
    /// The database refused or the connection broke.
    #[error("purge failed: {0:?}")]
    Database(DbFailure),
}

impl From<tokio_postgres::Error> for PurgeError {
    fn from(error: tokio_postgres::Error) -> Self {
        match error.code() {
            Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => PurgeError::NotPermitted(
                error
                    .as_db_error()
                    .map_or_else(|| error.to_string(), |e| e.message().to_string()),
            ),
            _ => PurgeError::Database(DbFailure::of(&error)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for PurgeError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        PurgeError::Database(DbFailure::of_pool(&error))
    }
}

/// Removes `tenant_id` from the store and every driver table, in one
/// transaction (see the module's documentation). A tenant with nothing
/// stored is purged all the same (zero counts, and recorded).
pub async fn purge_tenant(pool: &Pool, tenant_id: TenantId) -> Result<TenantPurge, PurgeError> {
    let mut client = pool.get().await?;
    let migrated: bool = client
        .query_one(
            "SELECT to_regclass('forgeerp_read.purged_tenants') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !migrated {
        return Err(PurgeError::NotMigrated);
    }
    let tenant = tenant_id.as_uuid();
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL forgeerp.allow_purge = on")
        .await?;
    tx.query_one(include_str!("../sql/offboarding/lock_checkpoints.sql"), &[])
        .await?;
    let head = tx
        .query_opt(include_str!("../sql/offboarding/feed_head.sql"), &[])
        .await?
        .map_or((0i64, 0i64), |row| (row.get(0), row.get(1)));
    let events: i64 = tx
        .query_one("SELECT forgeerp.purge_tenant($1)", &[&tenant])
        .await?
        .get(0);
    let row = tx
        .query_one(
            include_str!("../sql/offboarding/delete_derived.sql"),
            &[&tenant, &head.0, &head.1],
        )
        .await?;
    tx.commit().await?;
    let count = |i: usize| row.get::<_, i64>(i) as u64;
    let purge = TenantPurge {
        events: events as u64,
        read_model_entries: count(0),
        stock_history_runs: count(1),
        insights: count(2),
        parked_events: count(3),
        snapshots: count(4),
        data_keys: count(5),
        checkpoints: count(6),
    };
    tracing::info!(%tenant_id, ?purge, "tenant purged");
    Ok(purge)
}

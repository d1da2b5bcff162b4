//! The driver's own tables (schema `forgeerp_read`: read models, checkpoints,
//! parked events; schema `forgeerp_inventory`: stock history, AI insights),
//! versioned by numbered migrations.
//!
//! [`migrate`] is the one call an application makes at start-up. Each
//! migration runs once per database, in a transaction of its own, under an
//! advisory lock: two processes that start at once queue, and the second finds
//! the work done. `forgeerp_read.schema_migrations` records what ran, with the
//! md5 of each migration's text, so a database whose recorded migration was
//! edited afterwards is refused instead of silently diverging.
//!
//! Migrations are `driver/sql/migrations/NNNN_name.sql`. A released migration
//! is never edited (CI checks `driver/sql/migrations/released.sha256`); a
//! change to the schema is a new migration. Migrations 1 and 2 are
//! idempotent, so a database made before migrations were numbered is adopted
//! as it is.

use crate::db_error::DbFailure;
use deadpool_postgres::Pool;

/// One numbered change to the driver's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Its number: migrations run in this order, each once.
    pub version: i32,
    /// A short name, recorded beside the number and named in errors.
    pub name: &'static str,
    /// The SQL, run as one transaction.
    pub sql: &'static str,
}

/// Every migration of this driver, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "read_models",
        sql: include_str!("../sql/migrations/0001_read_models.sql"),
    },
    Migration {
        version: 2,
        name: "ai_insights",
        sql: include_str!("../sql/migrations/0002_ai_insights.sql"),
    },
    Migration {
        version: 3,
        name: "isolate_checkpoints_and_parked_events",
        sql: include_str!("../sql/migrations/0003_isolate_checkpoints_and_parked_events.sql"),
    },
    Migration {
        version: 4,
        name: "one_tenant_binding_rule",
        sql: include_str!("../sql/migrations/0004_one_tenant_binding_rule.sql"),
    },
    Migration {
        version: 5,
        name: "inventory_schema",
        sql: include_str!("../sql/migrations/0005_inventory_schema.sql"),
    },
    Migration {
        version: 6,
        name: "snapshots",
        sql: include_str!("../sql/migrations/0006_snapshots.sql"),
    },
    Migration {
        version: 7,
        name: "subject_keys",
        sql: include_str!("../sql/migrations/0007_subject_keys.sql"),
    },
    Migration {
        version: 8,
        name: "purged_tenants",
        sql: include_str!("../sql/migrations/0008_purged_tenants.sql"),
    },
];

/// Why the schema could not be brought up to date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationError {
    /// No connection could be had, or it broke.
    #[error("connection failed: {0}")]
    Connection(String),
    /// A migration failed; it was rolled back whole and the schema stays at
    /// the version before it.
    #[error("migration {version} ({name}) failed and was rolled back: {message}")]
    Failed {
        /// The migration's number.
        version: i32,
        /// The migration's name.
        name: &'static str,
        /// The SQLSTATE, when the database refused it.
        sqlstate: Option<String>,
        /// The server's message.
        message: String,
    },
    /// The database recorded a migration whose text differs from this
    /// driver's: a released migration was edited.
    #[error(
        "migration {version} ({name}) recorded in forgeerp_read.schema_migrations differs from this driver's: released migrations must never change"
    )]
    Edited {
        /// The migration's number.
        version: i32,
        /// The migration's name.
        name: &'static str,
    },
    /// The migrations given are not numbered 1, 2, 3, … in order.
    #[error("migrations must be numbered 1, 2, 3, … in order; found {found} at place {place}")]
    BadNumbering {
        /// The 1-based place in the list.
        place: usize,
        /// The number found there.
        found: i32,
    },
    /// Bookkeeping failed outside any migration.
    #[error("database error {sqlstate}: {message}")]
    Database {
        /// The five-character SQLSTATE.
        sqlstate: String,
        /// The server's message.
        message: String,
    },
}

crate::db_error::from_db_failure!(MigrationError);

/// What a call to [`migrate`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The schema version before the call (0: no migration had run).
    pub from_version: i32,
    /// The schema version after it.
    pub to_version: i32,
    /// The migrations this call applied, in order.
    pub applied: Vec<i32>,
}

/// Brings the driver's schema in the database behind `pool` up to date.
pub async fn migrate(pool: &Pool) -> Result<MigrationReport, MigrationError> {
    apply(pool, MIGRATIONS, None).await
}

/// Applies `migrations` in order up to `target` (all when `None`), each once.
///
/// [`migrate`] is this with [`MIGRATIONS`]. A database that has recorded a
/// migration this list does not know (a newer driver ran) is left as it is.
pub async fn apply(
    pool: &Pool,
    migrations: &[Migration],
    target: Option<i32>,
) -> Result<MigrationReport, MigrationError> {
    if let Some((place, m)) = migrations
        .iter()
        .enumerate()
        .find(|(i, m)| m.version != *i as i32 + 1)
    {
        return Err(MigrationError::BadNumbering {
            place: place + 1,
            found: m.version,
        });
    }
    let mut client = pool.get().await?;
    let mut from_version = None;
    let mut applied = Vec::new();
    loop {
        // One transaction per migration, each behind the lock: a concurrent
        // process waits here and then finds the migration recorded.
        let tx = client.transaction().await?;
        tx.batch_execute(include_str!("../sql/schema_migrations.sql"))
            .await?;
        let recorded = recorded(&tx, migrations).await?;
        let version = recorded.len() as i32;
        from_version.get_or_insert(version);
        let next = migrations
            .get(recorded.len())
            .filter(|m| target.is_none_or(|t| m.version <= t));
        let Some(next) = next else {
            tx.commit().await?;
            break;
        };
        tx.batch_execute(next.sql)
            .await
            .map_err(|e| failed(next, &e))?;
        tx.execute(
            "INSERT INTO forgeerp_read.schema_migrations (version, name, checksum) VALUES ($1, $2, md5($3::text))",
            &[&next.version, &next.name, &next.sql],
        )
        .await?;
        tx.commit().await.map_err(|e| failed(next, &e))?;
        tracing::info!(
            version = next.version,
            name = next.name,
            "applied migration"
        );
        applied.push(next.version);
    }
    let from_version = from_version.unwrap_or(0);
    Ok(MigrationReport {
        from_version,
        to_version: from_version + applied.len() as i32,
        applied,
    })
}

/// The schema version of the database behind `pool`: the highest migration
/// recorded, 0 when none has run.
pub async fn schema_version(pool: &Pool) -> Result<i32, MigrationError> {
    let client = pool.get().await?;
    let exists: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('forgeerp_read.schema_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM forgeerp_read.schema_migrations",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// The migrations of `migrations` recorded in the database, checked against
/// their text; those past the list's end (a newer driver's) are ignored.
async fn recorded<'m>(
    tx: &deadpool_postgres::Transaction<'_>,
    migrations: &'m [Migration],
) -> Result<Vec<&'m Migration>, MigrationError> {
    let rows = tx
        .query(
            "SELECT version, checksum FROM forgeerp_read.schema_migrations ORDER BY version",
            &[],
        )
        .await?;
    let mut known = Vec::with_capacity(rows.len());
    for (row, migration) in rows.iter().zip(migrations) {
        let (version, checksum): (i32, String) = (row.get(0), row.get(1));
        let same_text: bool = tx
            .query_one("SELECT md5($1::text) = $2", &[&migration.sql, &checksum])
            .await?
            .get(0);
        if !same_text || version != migration.version {
            return Err(MigrationError::Edited {
                version: migration.version,
                name: migration.name,
            });
        }
        known.push(migration);
    }
    Ok(known)
}

fn failed(migration: &Migration, error: &tokio_postgres::Error) -> MigrationError {
    let (sqlstate, message) = match DbFailure::of(error) {
        DbFailure::Refused { sqlstate, message } => (Some(sqlstate), message),
        DbFailure::Connection(message) => (None, message),
    };
    MigrationError::Failed {
        version: migration.version,
        name: migration.name,
        sqlstate,
        message,
    }
}

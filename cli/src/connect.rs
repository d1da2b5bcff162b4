//! Connecting: a pre-flight check that turns an unreachable server or a
//! database without the extension into one clear line.

use crate::error::CliError;
use forgeerp_infra::PgEventStore;
use std::time::Duration;
use tokio_postgres::error::SqlState;

/// The private cluster of `scripts/setup.sh` (port from `FORGEERP_PGPORT`).
pub fn default_database_url() -> String {
    let port = std::env::var("FORGEERP_PGPORT").unwrap_or_else(|_| "28815".into());
    format!("postgresql://postgres@127.0.0.1:{port}/forgeerp")
}

/// Connects to `url`, checks that the extension answers, and returns a store
/// with a pool of `max_connections`.
pub async fn connect(url: &str, max_connections: usize) -> Result<PgEventStore, CliError> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| {
        CliError::usage(format!(
            "--database-url {url:?} is not a PostgreSQL connection string: {e}"
        ))
    })?;
    let where_ = describe(&config);
    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        config.connect(tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| {
        CliError::failed(format!(
            "cannot reach PostgreSQL at {where_}: no answer in 10 s; is the server up?"
        ))
    })?;
    let (client, connection) = attempt.map_err(|e| match e.as_db_error() {
        Some(db) => CliError::failed(format!(
            "PostgreSQL at {where_} refused the connection: {} ({})",
            db.message(),
            db.code().code()
        )),
        None => CliError::failed(format!(
            "cannot reach PostgreSQL at {where_} ({}): start the private cluster with `bash scripts/setup.sh`, or pass --database-url",
            root_cause(&e)
        )),
    })?;
    let driver = tokio::spawn(connection);
    let version = client.query_one("SELECT forgeerp.version()", &[]).await;
    drop(client);
    let _ = driver.await;
    match version {
        Ok(_) => {}
        Err(e) if matches!(e.code(), Some(c) if *c == SqlState::INVALID_SCHEMA_NAME || *c == SqlState::UNDEFINED_FUNCTION) => {
            return Err(CliError::failed(format!(
                "the forgeerp extension is not installed in database {:?} at {where_}: run CREATE EXTENSION forgeerp there (as a superuser)",
                config.get_dbname().unwrap_or("?")
            )))
        }
        Err(e) => return Err(e.into()),
    }
    PgEventStore::connect(url, max_connections).map_err(CliError::from)
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

fn root_cause(error: &tokio_postgres::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

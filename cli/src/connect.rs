//! Which database, and connecting to it: the settings come from
//! `--database-url`, else `DATABASE_URL`, else libpq's variables (`PGHOST`,
//! `PGPORT`, `PGDATABASE`, `PGUSER`, `PGPASSWORD`, `PGSSLMODE`, …), else the
//! private cluster of `scripts/setup.sh`. A pre-flight check turns an
//! unreachable server or a database without the extension into one clear
//! line that names what was tried.

use crate::error::CliError;
use forgeerp_infra::{ConnectError, ConnectionSettings, PgEventStore, PgNotifyEventBus};
use std::time::Duration;
use tokio_postgres::error::SqlState;

/// libpq's variables that say where to connect; any one of them set means
/// the user chose libpq's way.
const LIBPQ_VARIABLES: [&str; 8] = [
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGSSLMODE",
    "PGSSLROOTCERT",
];

/// The database a command works on, and where its settings came from.
#[derive(Clone, Debug)]
pub struct Database {
    /// How to connect.
    pub settings: ConnectionSettings,
    /// Where the settings came from, as an error message names it.
    pub source: String,
    /// Whether they are the private cluster's defaults (nothing was given).
    pub private_default: bool,
}

impl Database {
    /// The database of `--database-url` (or the worker file's URL, when it
    /// is `file`), else `DATABASE_URL`, else libpq's variables, else the
    /// private cluster.
    pub fn choose(flag: Option<&str>, file: Option<(&str, &str)>) -> Result<Self, CliError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let given = |text: &str, source: String| {
            let settings = ConnectionSettings::parse(text).map_err(|e| {
                CliError::usage(format!("{source} is not a usable connection string: {e}"))
            })?;
            Ok(Database {
                settings,
                source,
                private_default: false,
            })
        };
        if let Some(url) = flag {
            return given(url, "--database-url".into());
        }
        if let Some(url) = env("DATABASE_URL") {
            return given(&url, "DATABASE_URL".into());
        }
        if let Some((url, path)) = file {
            return given(url, format!("database_url of {path}"));
        }
        let set: Vec<&str> = LIBPQ_VARIABLES
            .into_iter()
            .filter(|name| env(name).is_some())
            .collect();
        if !set.is_empty() {
            let settings = ConnectionSettings::from_libpq_env(|name| std::env::var(name).ok())
                .map_err(|e| CliError::usage(format!("libpq variables: {e}")))?;
            return Ok(Database {
                settings,
                source: format!("the libpq variables ({})", set.join(", ")),
                private_default: false,
            });
        }
        let port = env("FORGEERP_PGPORT").unwrap_or_else(|| "28815".into());
        let settings =
            ConnectionSettings::parse(&format!("postgresql://postgres@127.0.0.1:{port}/forgeerp"))
                .map_err(|e| CliError::usage(format!("FORGEERP_PGPORT {port:?}: {e}")))?;
        Ok(Database {
            settings,
            source: "the private cluster of scripts/setup.sh (no --database-url, DATABASE_URL or PG* variable is set)".into(),
            private_default: true,
        })
    }

    /// A bus on this database.
    pub fn bus(&self) -> PgNotifyEventBus {
        PgNotifyEventBus::with_settings(self.settings.clone())
    }
}

/// Connects to `database`, checks that the extension answers, and returns a
/// store with a pool of `max_connections`.
pub async fn connect(
    database: &Database,
    max_connections: usize,
) -> Result<PgEventStore, CliError> {
    let where_ = format!("{}, from {}", database.settings.describe(), database.source);
    let attempt = tokio::time::timeout(Duration::from_secs(10), database.settings.connect())
        .await
        .map_err(|_| {
            CliError::failed(format!(
                "cannot reach PostgreSQL at {where_}: no answer in 10 s; is the server up?"
            ))
        })?;
    let (client, connection) = attempt.map_err(|e| match e {
        ConnectError::Settings(e) => CliError::usage(format!("cannot connect to {where_}: {e}")),
        ConnectError::Db(e) => match e.as_db_error() {
            Some(db) => CliError::failed(format!(
                "PostgreSQL at {where_} refused the connection: {}",
                db.message()
            ))
            .with_sqlstate(db.code().code()),
            None => {
                let hint = if database.private_default {
                    "; start the private cluster with `bash scripts/setup.sh`, or say which database to use (--database-url, DATABASE_URL or the PG* variables)"
                } else {
                    ""
                };
                CliError::failed(format!("cannot reach PostgreSQL at {where_}: {}{hint}", root_cause(&e)))
            }
        },
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
                database.settings.config().get_dbname().unwrap_or("?")
            )))
        }
        Err(e) => return Err(e.into()),
    }
    PgEventStore::connect_with(&database.settings, max_connections).map_err(CliError::from)
}

fn root_cause(error: &tokio_postgres::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    let cause = source.to_string();
    if cause == error.to_string() {
        cause
    } else {
        format!("{error}: {cause}")
    }
}

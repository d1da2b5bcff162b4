//! Fresh databases with the forgeerp extension, for every test tier and the
//! benchmarks: the contract tests (`tests/`), the driver's tests and
//! benchmarks (`driver/tests`, `driver/benches`) and the CLI's (`cli/tests`).
//!
//! The server is the private cluster that `scripts/setup.sh` starts (port
//! `FORGEERP_PGPORT`, default 28815, superuser `postgres`, trusted on
//! loopback); `FORGEERP_TEST_ADMIN`, a libpq connection string of a
//! superuser without a database, names another one. Everything panics on
//! failure: a test without its database cannot run, and no server is no pass.
//!
//! Async callers await [`fresh_database`]; sync callers use
//! [`fresh_database_blocking`], which runs it on a small runtime of its own and
//! so must not be called inside a tokio runtime. Nothing here depends on the
//! driver: whoever needs the driver's tables runs `forgeerp_infra::migrate`
//! on the database itself.

use tokio_postgres::NoTls;

/// Superuser connection string of the server under test, without a
/// database: `FORGEERP_TEST_ADMIN`, else the private cluster.
pub fn admin_base() -> String {
    std::env::var("FORGEERP_TEST_ADMIN")
        .unwrap_or_else(|_| format!("host=127.0.0.1 port={} user=postgres", private_port()))
}

/// Superuser connection string of `database` on the server under test.
pub fn conninfo(database: &str) -> String {
    format!("{} dbname={database}", admin_base())
}

/// `database` in the form a program takes in `DATABASE_URL`: a
/// `postgresql://` URL of the private cluster, or [`conninfo`] when
/// `FORGEERP_TEST_ADMIN` names another server.
pub fn url(database: &str) -> String {
    match std::env::var("FORGEERP_TEST_ADMIN") {
        Ok(_) => conninfo(database),
        Err(_) => format!(
            "postgresql://postgres@127.0.0.1:{}/{database}",
            private_port()
        ),
    }
}

/// The name `<prefix>_<pid><suffix>` of a database of this test process,
/// e.g. `database_name("forgeerp_driver_test", "_bus")`. Prefixes of the
/// form `forgeerp_…test` keep it among the databases that `scripts/test.sh`
/// drops between tiers.
pub fn database_name(prefix: &str, suffix: &str) -> String {
    format!("{prefix}_{}{suffix}", std::process::id())
}

/// What [`fresh_database`] installs in the new database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Install<'a> {
    /// Nothing: an empty database.
    Nothing,
    /// The current version: `CREATE EXTENSION forgeerp`.
    Current,
    /// A released version, left at it: `CREATE EXTENSION forgeerp VERSION '<version>'`.
    At(&'a str),
    /// A released version, then updated in place to the current one:
    /// `CREATE EXTENSION forgeerp VERSION '<version>'; ALTER EXTENSION forgeerp UPDATE`.
    UpgradedFrom(&'a str),
}

/// Creates database `name` anew on the server under test (dropping one left
/// over, `WITH (FORCE)`), installs `install` in it as the superuser, and
/// returns its connection string ([`conninfo`]).
pub async fn fresh_database(name: &str, install: Install<'_>) -> String {
    let admin = connect(&conninfo("postgres")).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach the test server: run scripts/setup.sh first (or set FORGEERP_TEST_ADMIN): {e}"
        )
    });
    // Two statements, not one batch: DROP DATABASE refuses to run in the
    // implicit transaction of a batch.
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin.run(&statement).await;
    }
    admin.close().await;
    let url = conninfo(name);
    let sql = match install {
        Install::Nothing => None,
        Install::Current => Some("CREATE EXTENSION forgeerp".to_string()),
        Install::At(version) => Some(format!("CREATE EXTENSION forgeerp VERSION '{version}'")),
        Install::UpgradedFrom(version) => Some(format!(
            "CREATE EXTENSION forgeerp VERSION '{version}'; ALTER EXTENSION forgeerp UPDATE"
        )),
    };
    if let Some(sql) = sql {
        let db = connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect to the new database {name}: {e}"));
        db.run(&sql).await;
        db.close().await;
    }
    url
}

/// [`fresh_database`] for sync callers, on a runtime of its own. Panics when
/// called inside a tokio runtime: there, await [`fresh_database`].
pub fn fresh_database_blocking(name: &str, install: Install<'_>) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the test fixture")
        .block_on(fresh_database(name, install))
}

fn private_port() -> String {
    std::env::var("FORGEERP_PGPORT").unwrap_or_else(|_| "28815".into())
}

/// A connection and the task that drives it.
struct Session {
    client: tokio_postgres::Client,
    driver: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
}

async fn connect(conninfo: &str) -> Result<Session, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls).await?;
    Ok(Session {
        client,
        driver: tokio::spawn(connection),
    })
}

impl Session {
    async fn run(&self, sql: &str) {
        self.client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Ends the session before returning, so that nothing of it outlives the
    /// caller's runtime (or holds the database when it is dropped next).
    async fn close(self) {
        drop(self.client);
        let _ = self.driver.await;
    }
}

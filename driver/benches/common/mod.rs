//! Shared by the benchmarks: a fresh database with the extension on the
//! private cluster of `scripts/setup.sh`.

/// Drops and creates database `name` with the extension; its connection string.
pub async fn fresh_database(name: &str) -> String {
    let port = std::env::var("FORGEERP_PGPORT").unwrap_or_else(|_| "28815".into());
    let base = format!("host=127.0.0.1 port={port} user=postgres");
    let (admin, conn) =
        tokio_postgres::connect(&format!("{base} dbname=postgres"), tokio_postgres::NoTls)
            .await
            .expect("run scripts/setup.sh first");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = format!("{base} dbname={name}");
    let (db, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.batch_execute("CREATE EXTENSION forgeerp").await.unwrap();
    url
}

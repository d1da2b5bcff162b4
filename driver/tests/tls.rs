//! The TLS tier: every `sslmode` against the private cluster, which
//! `scripts/setup.sh` runs with TLS on (a certificate for localhost and
//! 127.0.0.1, signed by a private CA in `FORGEERP_TLS_DIR`), and a role the
//! server refuses without TLS (`forgeerp_tls_only`).

mod common;

use forgeerp_infra::event_bus::Subscription;
use forgeerp_infra::{
    ConnectError, ConnectionSettings, EventStore, ExpectedVersion, FeedPosition, PgEventStore,
    PgNotifyEventBus, SslMode, TenantId, UncommittedEvent,
};
use std::time::Duration;

/// The private CA's certificate.
fn ca() -> String {
    let dir = std::env::var("FORGEERP_TLS_DIR")
        .expect("FORGEERP_TLS_DIR names the private cluster's TLS files (source scripts/env.sh)");
    let path = format!("{dir}/ca.crt");
    assert!(
        std::path::Path::new(&path).is_file(),
        "{path} (made by scripts/setup.sh)"
    );
    path
}

fn port() -> String {
    std::env::var("FORGEERP_PGPORT").unwrap_or_else(|_| "28815".into())
}

/// The test database's name.
async fn database() -> String {
    let conninfo = common::database_url().await;
    let settings = ConnectionSettings::parse(&conninfo).unwrap();
    settings.config().get_dbname().unwrap().to_string()
}

/// Key/value settings for the test database, with `extra` appended.
async fn settings(extra: &str) -> ConnectionSettings {
    let db = database().await;
    ConnectionSettings::parse(&format!(
        "port={} user=postgres dbname={db} {extra}",
        port()
    ))
    .unwrap()
}

/// Whether the connection made with `settings` is encrypted, as the server sees it.
async fn encrypted(settings: &ConnectionSettings) -> Result<bool, ConnectError> {
    let (client, connection) = settings.connect().await?;
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(ConnectError::Db)?;
    Ok(row.get(0))
}

fn failure(result: Result<bool, ConnectError>) -> String {
    match result {
        Ok(encrypted) => panic!("connected (encrypted: {encrypted})"),
        Err(error) => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(next) = source {
                text.push_str(": ");
                text.push_str(&next.to_string());
                source = next.source();
            }
            text
        }
    }
}

#[tokio::test]
async fn require_encrypts_without_checking_the_certificate() {
    let s = settings("host=127.0.0.1 sslmode=require").await;
    assert_eq!(s.ssl_mode(), SslMode::Require);
    assert!(encrypted(&s).await.unwrap());
}

#[tokio::test]
async fn prefer_encrypts_when_the_server_offers_it_and_disable_never_does() {
    assert!(encrypted(&settings("host=127.0.0.1").await).await.unwrap());
    assert!(
        !encrypted(&settings("host=127.0.0.1 sslmode=disable").await)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn verify_full_checks_the_chain_and_the_host_name() {
    let ca = ca();
    for host in ["host=localhost", "host=127.0.0.1"] {
        let s = settings(&format!("{host} sslmode=verify-full sslrootcert={ca}")).await;
        assert!(encrypted(&s).await.unwrap(), "{host}");
    }
    // The right server under a name its certificate does not carry.
    let wrong = settings(&format!(
        "host=wrong.example hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={ca}"
    ))
    .await;
    let said = failure(encrypted(&wrong).await);
    assert!(
        said.contains("not valid for name \"wrong.example\""),
        "{said}"
    );
    // verify-ca checks the chain only: the same name is accepted.
    let chain_only = settings(&format!(
        "host=wrong.example hostaddr=127.0.0.1 sslmode=verify-ca sslrootcert={ca}"
    ))
    .await;
    assert!(encrypted(&chain_only).await.unwrap());
    // A root that did not sign the server's certificate: refused, in every
    // mode that checks (require with a root certificate checks like verify-ca).
    for mode in ["require", "verify-ca", "verify-full"] {
        let other = settings(&format!("host=localhost sslmode={mode} sslrootcert=system")).await;
        let said = failure(encrypted(&other).await);
        assert!(
            said.contains("UnknownIssuer") || said.contains("issuer"),
            "{mode}: {said}"
        );
    }
}

#[tokio::test]
async fn verify_modes_without_a_root_certificate_say_so() {
    let missing =
        settings("host=localhost sslmode=verify-full sslrootcert=/nonexistent/root.crt").await;
    let said = failure(encrypted(&missing).await);
    assert!(said.contains("/nonexistent/root.crt"), "{said}");
}

#[tokio::test]
async fn disable_against_a_server_that_demands_tls_is_refused_clearly() {
    let db = database().await;
    let plain = ConnectionSettings::parse(&format!(
        "host=127.0.0.1 port={} user=forgeerp_tls_only dbname={db} sslmode=disable",
        port()
    ))
    .unwrap();
    let error = match plain.connect().await {
        Ok(_) => panic!("the server let forgeerp_tls_only in without TLS"),
        Err(ConnectError::Db(error)) => error,
        Err(other) => panic!("{other}"),
    };
    let db_error = error.as_db_error().expect("the server's refusal");
    assert_eq!(db_error.code().code(), "28000");
    assert!(
        db_error.message().contains("no encryption"),
        "{}",
        db_error.message()
    );
    // The same role over TLS gets in.
    let tls = ConnectionSettings::parse(&format!(
        "host=127.0.0.1 port={} user=forgeerp_tls_only dbname={db} sslmode=require",
        port()
    ))
    .unwrap();
    assert!(encrypted(&tls).await.unwrap());
}

#[tokio::test]
async fn the_store_and_the_bus_work_over_verified_tls() {
    let verified = format!(
        "postgresql://postgres@localhost:{}/{}?sslmode=verify-full&sslrootcert={}",
        port(),
        database().await,
        ca()
    );
    let url_settings = ConnectionSettings::parse(&verified).unwrap();
    assert_eq!(url_settings.ssl_mode(), SslMode::VerifyFull);
    let store = PgEventStore::connect(&verified, 2).unwrap();
    let bus = PgNotifyEventBus::new(&verified);
    let tenant = TenantId::random();
    let mut subscription = bus.follow(FeedPosition::default(), Some(tenant));
    let aggregate = forgeerp_infra::AggregateId::random();
    let stored = store
        .append(
            vec![UncommittedEvent::new(
                tenant,
                "inventory.item",
                aggregate,
                "StockReceived",
                serde_json::json!({"quantity": 1}),
            )],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let delivered = tokio::time::timeout(Duration::from_secs(10), subscription.recv())
        .await
        .expect("delivered within 10 s")
        .unwrap();
    assert_eq!(delivered.event_id, stored[0].event_id);
    subscription.close().await;
    // The pool's connections are encrypted too.
    let client = store.pool().get().await.unwrap();
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
}

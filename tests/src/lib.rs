//! Helpers shared by the contract tests: a fresh database with the extension
//! per test process (installed fresh, or at a released version and updated:
//! `FORGEERP_TEST_UPGRADE_FROM`), connections, and assertions on SQLSTATEs.
//!
//! The server is the private cluster that `scripts/setup.sh` starts; set
//! `FORGEERP_TEST_ADMIN` to a libpq connection string of a superuser to point
//! the tests elsewhere. No server, no pass: every test fails loudly.

pub mod attack;

use forgeerp_test_fixtures::{conninfo, database_name, fresh_database_blocking, Install};
use postgres::{Client, NoTls, Row};
use serde_json::{json, Value};
use std::sync::OnceLock;
use uuid::Uuid;

/// Superuser connection string of the server under test (no database).
pub use forgeerp_test_fixtures::admin_base;

/// The name of this test process's database, created on first use with the
/// extension installed.
pub fn database() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        // Through the proxy (`FORGEERP_TEST_ADMIN` names it): its database
        // as scripts/setup_shards.sh made it; tenants are random, so the
        // tests' tenants land on both shards.
        if through_proxy() {
            return "forgeerp".to_string();
        }
        let name = database_name("forgeerp_test", "");
        let version = upgraded_from();
        // The contract holds on a database upgraded in place, too.
        let install = match &version {
            Some(version) => Install::UpgradedFrom(version),
            None => Install::Current,
        };
        fresh_database_blocking(&name, install);
        name
    })
}

/// Whether the tests run through the proxy of a sharded deployment
/// (`FORGEERP_TEST_THROUGH_PROXY=1`, with `FORGEERP_TEST_ADMIN` naming the
/// proxy): the helpers that read the store then read it through the
/// contract's functions instead of the table, which is on the shards.
pub fn through_proxy() -> bool {
    std::env::var("FORGEERP_TEST_THROUGH_PROXY").is_ok_and(|v| v == "1")
}

/// The released version the test database is installed at and then updated
/// from (`FORGEERP_TEST_UPGRADE_FROM`), or None for a fresh install of the
/// current version.
pub fn upgraded_from() -> Option<String> {
    std::env::var("FORGEERP_TEST_UPGRADE_FROM")
        .ok()
        .filter(|v| !v.is_empty())
}

/// Connection string of the test database as `user`.
pub fn url_as(user: &str) -> String {
    format!("{} user={user}", conninfo(database()))
}

/// A superuser connection to the test database.
pub fn connect() -> Client {
    Client::connect(&conninfo(database()), NoTls).expect("connect to the test database")
}

/// A connection to the test database as `user` (no password: the private cluster trusts loopback).
pub fn connect_as(user: &str) -> Client {
    Client::connect(&url_as(user), NoTls).expect("connect as role")
}

/// A fresh random id (tenants, aggregates, events, role suffixes).
pub fn id() -> Uuid {
    Uuid::new_v4()
}

/// The simplest valid batch: `n` events of type `Tick` with payload `{"n": i}`.
pub fn ticks(n: usize) -> Value {
    Value::Array(
        (1..=n)
            .map(|i| json!({"event_type": "Tick", "payload": {"n": i}}))
            .collect(),
    )
}

/// One event with its own id.
pub fn event_with_id(event_id: Uuid, event_type: &str, payload: Value) -> Value {
    json!({"event_type": event_type, "payload": payload, "event_id": event_id.to_string()})
}

/// Calls `forgeerp.append`.
pub fn append(
    client: &mut impl postgres::GenericClient,
    tenant: Uuid,
    aggregate_type: &str,
    aggregate: Uuid,
    expected: Option<i64>,
    events: &Value,
) -> Result<Vec<Row>, postgres::Error> {
    client.query(
        "SELECT * FROM forgeerp.append($1, $2, $3, $4, $5)",
        &[&tenant, &aggregate_type, &aggregate, &expected, events],
    )
}

/// The SQLSTATE of a database error; panics for any other kind of error.
pub fn sqlstate(error: &postgres::Error) -> String {
    error
        .code()
        .unwrap_or_else(|| panic!("not a database error: {error}"))
        .code()
        .to_string()
}

/// Asserts `result` failed with `state`; returns the error for more checks.
#[track_caller]
pub fn expect_state<T: std::fmt::Debug>(
    result: Result<T, postgres::Error>,
    state: &str,
) -> postgres::error::DbError {
    match result {
        Ok(value) => panic!("expected SQLSTATE {state}, got success: {value:?}"),
        Err(error) => {
            assert_eq!(sqlstate(&error), state, "wrong SQLSTATE: {error:?}");
            error.as_db_error().cloned().expect("database error")
        }
    }
}

/// Number of events stored for `tenant`, read directly from the table.
pub fn events_of(client: &mut Client, tenant: Uuid) -> i64 {
    let sql = if through_proxy() {
        "SELECT count(*) FROM forgeerp.read_all(0, 0, 100000000, $1)"
    } else {
        "SELECT count(*) FROM forgeerp.events WHERE tenant_id = $1"
    };
    client.query_one(sql, &[&tenant]).unwrap().get(0)
}

/// Number of streams stored for `tenant`.
pub fn streams_of(client: &mut Client, tenant: Uuid) -> i64 {
    let sql = if through_proxy() {
        "SELECT count(DISTINCT aggregate_id) FROM forgeerp.read_all(0, 0, 100000000, $1)"
    } else {
        "SELECT count(DISTINCT aggregate_id) FROM forgeerp.events WHERE tenant_id = $1"
    };
    client.query_one(sql, &[&tenant]).unwrap().get(0)
}

/// Everything stored in the whole store, as one fingerprint: proves "changes nothing".
pub fn store_fingerprint(client: &mut Client) -> String {
    let sql = if through_proxy() {
        // Every shard's feed (positions are disjoint across shards).
        "SELECT coalesce(md5(string_agg(e::text, '|' ORDER BY global_position)), '')
           FROM forgeerp.shards() s, LATERAL forgeerp.read_shard(s.shard, 0, 0, 100000000) e"
    } else {
        "SELECT coalesce(md5(string_agg(e::text, '|' ORDER BY global_position)), '') FROM forgeerp.events e"
    };
    client.query_one(sql, &[]).unwrap().get(0)
}

/// Waits (up to 10 s) until the feed shows every stored event: any write
/// transaction elsewhere in the cluster holds it back for a moment, by design.
pub fn wait_for_feed(db: &mut Client) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let complete: bool = db
            .query_one(
                "SELECT (SELECT count(*) FROM forgeerp.read_all(0, 0, 1000000)) = (SELECT count(*) FROM forgeerp.events)",
                &[],
            )
            .unwrap()
            .get(0);
        if complete {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the feed stays held back"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits (up to 10 s) until every backend of `pids` shows in
/// `pg_stat_activity` as waiting on a lock; `meanwhile` runs between looks
/// (to fail early). Panics when they do not.
pub fn wait_for_lock_waits(pids: &[i32], meanwhile: impl Fn()) {
    let mut watcher = connect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1) AND wait_event_type = 'Lock'",
                &[&pids],
            )
            .unwrap()
            .get(0);
        if waiting == pids.len() as i64 {
            return;
        }
        meanwhile();
        assert!(
            std::time::Instant::now() < deadline,
            "only {waiting} of {} sessions wait on a lock",
            pids.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A session's part in an [`overlapped`] race, run on a thread of its own.
pub type Waiter<T> = Box<dyn FnOnce(&mut Client) -> T + Send>;

/// A race made to overlap for certain: `first` runs in a transaction that is
/// held open until each of `waiters` (each on a thread and a session of its
/// own) shows in `pg_stat_activity` as waiting on a lock; then `first`'s
/// transaction commits and the waiters' results come back, in order.
/// Panics if a waiter is not seen waiting within 10 s (it did not queue
/// behind the first writer: a lock is missing) or finishes while the first
/// still holds its transaction.
pub fn overlapped<T: Send + 'static>(
    first: impl FnOnce(&mut postgres::Transaction<'_>),
    waiters: Vec<Waiter<T>>,
) -> Vec<T> {
    let mut holder = connect();
    let mut tx = holder.transaction().unwrap();
    first(&mut tx);
    let (pids, started) = std::sync::mpsc::channel();
    let handles: Vec<_> = waiters
        .into_iter()
        .map(|waiter| {
            let pids = pids.clone();
            std::thread::spawn(move || {
                let mut db = connect();
                let pid: i32 = db.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
                pids.send(pid).unwrap();
                waiter(&mut db)
            })
        })
        .collect();
    let pids: Vec<i32> = (0..handles.len())
        .map(|_| started.recv().unwrap())
        .collect();
    wait_for_lock_waits(&pids, || {
        assert!(
            handles.iter().all(|h| !h.is_finished()),
            "a waiter finished while the first writer held its transaction: it did not queue behind it"
        );
    });
    tx.commit().unwrap();
    handles
        .into_iter()
        .map(|h| h.join().expect("waiter thread"))
        .collect()
}

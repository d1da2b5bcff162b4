//! The contract through the PL/Proxy proxy of `scripts/setup_shards.sh` (a
//! proxy and two shards, each its own cluster): every call is routed to its
//! tenant's shard, the rows really are there and nowhere else, errors reach
//! the caller with the shard's SQLSTATE and words, the binding and tenant
//! scopes reach the shard, positions never collide, `read_all` needs a
//! tenant and `read_shard` reads one shard's feed, and a shard that is down
//! is 08006 for its own tenants only.
//!
//! Run by `scripts/test.sh` after `scripts/setup_shards.sh`; not part of the
//! single-cluster tier (`test = false` in Cargo.toml).

use postgres::{Client, NoTls};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

fn port(var: &str, default: u16) -> u16 {
    std::env::var(var)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

fn conninfo(port: u16, user: &str) -> String {
    format!("host=127.0.0.1 port={port} user={user} dbname=forgeerp")
}

fn proxy_port() -> u16 {
    port("FORGEERP_PROXY_PORT", 28817)
}

fn shard_port(shard: u32) -> u16 {
    match shard {
        0 => port("FORGEERP_SHARD0_PORT", 28818),
        _ => port("FORGEERP_SHARD1_PORT", 28819),
    }
}

fn proxy() -> Client {
    Client::connect(&conninfo(proxy_port(), "postgres"), NoTls)
        .expect("the proxy of scripts/setup_shards.sh")
}

fn shard(n: u32) -> Client {
    Client::connect(&conninfo(shard_port(n), "postgres"), NoTls)
        .expect("a shard of scripts/setup_shards.sh")
}

/// A random tenant whose first 32 bits put it on `shard` (of two).
fn tenant_on(shard: u32) -> Uuid {
    let mut bytes = *Uuid::new_v4().as_bytes();
    bytes[3] = (bytes[3] & !1) | shard as u8;
    Uuid::from_bytes(bytes)
}

fn sqlstate(error: &postgres::Error) -> String {
    error
        .code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no SQLSTATE: {error}"))
}

fn append(
    client: &mut Client,
    tenant: Uuid,
    aggregate: Uuid,
    expected: Option<i64>,
    events: serde_json::Value,
) -> Result<Vec<postgres::Row>, postgres::Error> {
    client.query(
        "SELECT * FROM forgeerp.append($1, 'order', $2, $3, $4)",
        &[&tenant, &aggregate, &expected, &events],
    )
}

/// The error's message, detail and hint as the client sees them.
fn words(error: &postgres::Error) -> String {
    let db = error.as_db_error().expect("a server error");
    format!(
        "{} | {} | {}",
        db.message(),
        db.detail().unwrap_or(""),
        db.hint().unwrap_or("")
    )
}

#[test]
fn every_call_runs_on_its_tenants_shard_and_the_rows_are_there() {
    let mut proxy = proxy();
    let shards: Vec<(i32, String)> = proxy
        .query("SELECT shard, conninfo FROM forgeerp.shards()", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(shards.len(), 2, "{shards:?}");
    for n in 0..2u32 {
        let tenant = tenant_on(n);
        let of: i32 = proxy
            .query_one("SELECT forgeerp.shard_of($1)", &[&tenant])
            .unwrap()
            .get(0);
        assert_eq!(of, n as i32);
        let aggregate = Uuid::new_v4();
        let stored = append(&mut proxy, tenant, aggregate, Some(0), json!([{"event_type": "Placed", "payload": {"n": 1}}, {"event_type": "Paid", "payload": {"n": 2}}])).unwrap();
        assert_eq!(stored.len(), 2);
        let position: i64 = stored[0].get("global_position");
        // Each shard has its own range of positions: 2^48 each.
        assert!(
            position > (n as i64) << 48 && position <= (n as i64 + 1) << 48,
            "{position}"
        );
        // On the tenant's shard, and not on the other one.
        let here: i64 = shard(n)
            .query_one(
                "SELECT count(*) FROM forgeerp.events WHERE tenant_id = $1",
                &[&tenant],
            )
            .unwrap()
            .get(0);
        let there: i64 = shard(1 - n)
            .query_one(
                "SELECT count(*) FROM forgeerp.events WHERE tenant_id = $1",
                &[&tenant],
            )
            .unwrap()
            .get(0);
        assert_eq!((here, there), (2, 0));
        // Reads through the proxy are the shard's.
        let version: i64 = proxy
            .query_one(
                "SELECT forgeerp.stream_version($1, $2)",
                &[&tenant, &aggregate],
            )
            .unwrap()
            .get(0);
        assert_eq!(version, 2);
        let loaded: Vec<(i64, String)> = proxy
            .query(
                "SELECT sequence_number, event_type FROM forgeerp.load_stream($1, $2)",
                &[&tenant, &aggregate],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(loaded, [(1, "Placed".to_string()), (2, "Paid".to_string())]);
        let direct: Vec<(i64, String)> = shard(n)
            .query(
                "SELECT sequence_number, event_type FROM forgeerp.load_stream($1, $2)",
                &[&tenant, &aggregate],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(loaded, direct);
        let feed: i64 = proxy
            .query_one(
                "SELECT count(*) FROM forgeerp.read_all(0, 0, 1000, $1)",
                &[&tenant],
            )
            .unwrap()
            .get(0);
        assert_eq!(feed, 2);
    }
}

#[test]
fn errors_reach_the_caller_with_the_shards_sqlstate_and_words() {
    let mut proxy = proxy();
    let tenant = tenant_on(1);
    let aggregate = Uuid::new_v4();
    let id = Uuid::new_v4();
    append(
        &mut proxy,
        tenant,
        aggregate,
        Some(0),
        json!([{"event_id": id, "event_type": "Placed", "payload": {"n": 1}}]),
    )
    .unwrap();
    // A retry returns the stored rows.
    let retry = append(
        &mut proxy,
        tenant,
        aggregate,
        Some(0),
        json!([{"event_id": id, "event_type": "Placed", "payload": {"n": 1}}]),
    )
    .unwrap();
    assert_eq!(retry[0].get::<_, i64>("sequence_number"), 1);
    let cases = [
        (
            append(
                &mut proxy,
                tenant,
                aggregate,
                Some(0),
                json!([{"event_type": "X", "payload": {}}]),
            ),
            "ES001",
        ),
        (
            append(
                &mut proxy,
                tenant,
                Uuid::new_v4(),
                None,
                json!([{"event_id": id, "event_type": "Other", "payload": {}}]),
            ),
            "ES004",
        ),
        (
            append(
                &mut proxy,
                tenant,
                aggregate,
                None,
                json!([{"event_type": "", "payload": {}}]),
            ),
            "ES003",
        ),
        (
            append(
                &mut proxy,
                Uuid::nil(),
                aggregate,
                None,
                json!([{"event_type": "X", "payload": {}}]),
            ),
            "ES003",
        ),
    ];
    for (result, state) in cases {
        let error = result.unwrap_err();
        assert_eq!(sqlstate(&error), state, "{error}");
        let said = words(&error);
        assert!(
            !said.contains("REMOTE")
                && !said.contains("Remote detail")
                && !said.contains("forgeerp_proxy"),
            "{said}"
        );
    }
    let error = proxy
        .query(
            "SELECT * FROM forgeerp.append($1, 'invoice', $2, NULL, $3)",
            &[
                &tenant,
                &aggregate,
                &json!([{"event_type": "X", "payload": {}}]),
            ],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&error), "ES005");
    assert!(words(&error).contains("invoice"), "{}", words(&error));
    // The same words as the shard itself says.
    let direct = shard(1)
        .query(
            "SELECT * FROM forgeerp.append($1, 'invoice', $2, NULL, $3)",
            &[
                &tenant,
                &aggregate,
                &json!([{"event_type": "X", "payload": {}}]),
            ],
        )
        .unwrap_err();
    assert_eq!(words(&error), words(&direct));
    assert_eq!(
        shard(1)
            .query_one(
                "SELECT forgeerp.stream_version($1, $2)",
                &[&tenant, &aggregate]
            )
            .unwrap()
            .get::<_, i64>(0),
        1,
        "nothing changed"
    );
}

#[test]
fn read_all_needs_a_tenant_and_read_shard_reads_one_shards_feed() {
    let mut proxy = proxy();
    let error = proxy
        .query("SELECT * FROM forgeerp.read_all()", &[])
        .unwrap_err();
    assert_eq!(sqlstate(&error), "ES003");
    let (a, b) = (tenant_on(0), tenant_on(1));
    for tenant in [a, b] {
        append(
            &mut proxy,
            tenant,
            Uuid::new_v4(),
            None,
            json!([{"event_type": "E", "payload": {}}]),
        )
        .unwrap();
    }
    // Bound, read_all reads the bound tenant's feed.
    let mut tx = proxy.transaction().unwrap();
    tx.execute("SELECT forgeerp.bind_tenant($1)", &[&b])
        .unwrap();
    let tenants: Vec<Uuid> = tx
        .query("SELECT DISTINCT tenant_id FROM forgeerp.read_all()", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tenants, [b]);
    // The binding reaches the shard: another tenant is ES002 there.
    let error = tx
        .query(
            "SELECT * FROM forgeerp.stream_version($1, $2)",
            &[&tenant_on(1), &Uuid::new_v4()],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&error), "ES002", "{error}");
    drop(tx);
    for n in 0..2i32 {
        let rows = proxy
            .query(
                "SELECT tenant_id, global_position FROM forgeerp.read_shard($1, 0, 0, 100000)",
                &[&n],
            )
            .unwrap();
        assert!(!rows.is_empty());
        for row in &rows {
            let tenant: Uuid = row.get(0);
            assert_eq!(
                tenant.as_bytes()[3] & 1,
                n as u8,
                "a tenant of shard {n}'s feed"
            );
            let position: i64 = row.get(1);
            assert!(position > (n as i64) << 48);
        }
    }
    let error = proxy
        .query("SELECT * FROM forgeerp.read_shard(2)", &[])
        .unwrap_err();
    assert_eq!(sqlstate(&error), "ES003");
    assert!(words(&error).contains("0 to 1"), "{}", words(&error));
}

#[test]
fn tenant_scopes_hold_through_the_proxy() {
    let role = "forgeerp_test_role_sharded";
    let tenant = tenant_on(0);
    let other = tenant_on(0);
    for mut client in [proxy(), shard(0), shard(1)] {
        client
            .batch_execute(&format!(
                "DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            ))
            .unwrap();
    }
    let mut admin = proxy();
    admin
        .execute("SELECT forgeerp.revoke_usage($1)", &[&role])
        .unwrap();
    admin
        .execute("SELECT forgeerp.grant_usage($1, $2)", &[&role, &tenant])
        .unwrap();
    let mut app = Client::connect(&conninfo(proxy_port(), role), NoTls).unwrap();
    append(
        &mut app,
        tenant,
        Uuid::new_v4(),
        None,
        json!([{"event_type": "E", "payload": {}}]),
    )
    .unwrap();
    let error = append(
        &mut app,
        other,
        Uuid::new_v4(),
        None,
        json!([{"event_type": "E", "payload": {}}]),
    )
    .unwrap_err();
    assert_eq!(sqlstate(&error), "ES002", "{error}");
    let error = app
        .execute("SELECT forgeerp.bind_tenant($1)", &[&other])
        .unwrap_err();
    assert_eq!(sqlstate(&error), "ES002", "{error}");
    // Direct table access is refused on the shard as on one database.
    let mut on_shard = Client::connect(&conninfo(shard_port(0), role), NoTls).unwrap();
    let error = on_shard
        .query("SELECT * FROM forgeerp.events", &[])
        .unwrap_err();
    assert_eq!(sqlstate(&error), "42501");
    // Only superusers purge, on the proxy as on a shard.
    let error = app
        .query("SELECT forgeerp.purge_tenant($1)", &[&tenant])
        .unwrap_err();
    assert_eq!(sqlstate(&error), "42501");
}

fn pg_ctl(shard: u32, args: &[&str]) {
    let state = std::env::var("FORGEERP_STATE")
        .unwrap_or_else(|_| format!("{}/../target/cluster", env!("CARGO_MANIFEST_DIR")));
    let data = format!("{state}/shards/shard{shard}");
    let status = std::process::Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            "/usr/lib/postgresql/15/bin/pg_ctl",
            "-D",
            &data,
            "-w",
            "-s",
        ])
        .args(args)
        .current_dir("/")
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctl {args:?} on shard {shard}");
}

#[test]
fn a_shard_that_is_down_is_a_connection_error_for_its_tenants_only() {
    let (up, down) = (tenant_on(0), tenant_on(1));
    let mut proxy = proxy();
    let aggregate = Uuid::new_v4();
    append(
        &mut proxy,
        down,
        aggregate,
        Some(0),
        json!([{"event_type": "E", "payload": {}}]),
    )
    .unwrap();
    pg_ctl(1, &["-m", "immediate", "stop"]);
    let outcome = std::panic::catch_unwind(|| {
        let mut proxy = self::proxy();
        let error = append(
            &mut proxy,
            down,
            aggregate,
            None,
            json!([{"event_type": "E", "payload": {}}]),
        )
        .unwrap_err();
        assert!(sqlstate(&error).starts_with("08"), "{error}");
        assert!(words(&error).contains("shard 1"), "{}", words(&error));
        // The other shard's tenants go on, on the same proxy connection.
        append(
            &mut proxy,
            up,
            Uuid::new_v4(),
            Some(0),
            json!([{"event_type": "E", "payload": {}}]),
        )
        .unwrap();
    });
    let state = std::env::var("FORGEERP_STATE")
        .unwrap_or_else(|_| format!("{}/../target/cluster", env!("CARGO_MANIFEST_DIR")));
    pg_ctl(
        1,
        &["-l", &format!("{state}/shards/shard1/server.log"), "start"],
    );
    outcome.unwrap();
    // Back: nothing was lost.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let version = loop {
        match proxy.query_one(
            "SELECT forgeerp.stream_version($1, $2)",
            &[&down, &aggregate],
        ) {
            Ok(row) => break row.get::<_, i64>(0),
            Err(error) if std::time::Instant::now() < deadline => {
                let _ = error;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => panic!("shard 1 did not come back: {error}"),
        }
    };
    assert_eq!(version, 1);
}

#[test]
fn the_routing_functions_cannot_put_a_tenant_on_another_shard() {
    let role = "forgeerp_test_role_sharded_any";
    for mut client in [proxy(), shard(0), shard(1)] {
        client
            .batch_execute(&format!(
                "DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            ))
            .unwrap();
    }
    proxy()
        .execute("SELECT forgeerp.grant_usage($1)", &[&role])
        .unwrap();
    let mut app = Client::connect(&conninfo(proxy_port(), role), NoTls).unwrap();
    // The internal function takes no shard: it routes by the tenant itself.
    let tenant = tenant_on(1);
    app.query(
        "SELECT * FROM forgeerp_proxy.append(NULL, $1, 'order', $2, NULL, $3)",
        &[
            &tenant,
            &Uuid::new_v4(),
            &json!([{"event_type": "E", "payload": {}}]),
        ],
    )
    .unwrap();
    let on: Vec<i64> = [0, 1]
        .iter()
        .map(|n| {
            shard(*n)
                .query_one(
                    "SELECT count(*) FROM forgeerp.events WHERE tenant_id = $1",
                    &[&tenant],
                )
                .unwrap()
                .get(0)
        })
        .collect();
    assert_eq!(on, [0, 1]);
    // A shard that is not one is refused; PL/Proxy's validator, which crashes
    // a backend on some input (PL/Proxy issue 51), is not callable.
    let error = app
        .query(
            "SELECT * FROM forgeerp_proxy.read_shard(7, NULL, 0, 0, 10)",
            &[],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&error), "ES003");
    let error = app
        .query("SELECT plproxy_fdw_validator(ARRAY['/V'], 0)", &[])
        .unwrap_err();
    assert_eq!(sqlstate(&error), "42501", "{error}");
}

#[test]
fn an_append_whose_connection_is_killed_is_retried_with_the_same_ids_and_stored_once() {
    let tenant = tenant_on(0);
    let aggregate = Uuid::new_v4();
    let ids = [Uuid::new_v4(), Uuid::new_v4()];
    let batch = json!([
        {"event_id": ids[0], "event_type": "Placed", "payload": {"n": 1}},
        {"event_id": ids[1], "event_type": "Paid", "payload": {"n": 2}}
    ]);
    let mut proxy = proxy();
    append(
        &mut proxy,
        tenant,
        aggregate,
        Some(0),
        json!([{"event_type": "Opened", "payload": {}}]),
    )
    .unwrap();
    // The stream is locked on its shard by an append that has not committed,
    // so the proxy's append waits there, in the middle.
    let mut blocker = shard(0);
    let mut blocking = blocker.transaction().unwrap();
    blocking
        .query(
            "SELECT * FROM forgeerp.append($1, 'order', $2, NULL, $3)",
            &[
                &tenant,
                &aggregate,
                &json!([{"event_type": "Noted", "payload": {}}]),
            ],
        )
        .unwrap();
    let mut victim = self::proxy();
    let pid: i32 = victim
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let attempt = {
        let batch = batch.clone();
        std::thread::spawn(move || append(&mut victim, tenant, aggregate, None, batch))
    };
    // Waits until the shard's backend of the proxy's call waits for the lock.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = shard(0)
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = 'forgeerp'", &[])
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy's append never reached the shard"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The client's connection dies mid-append.
    proxy
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    assert!(
        attempt.join().unwrap().is_err(),
        "the killed connection's append reports no success"
    );
    blocking.commit().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The retry, on a new connection, with the same ids: stored once, whether
    // the first attempt reached its commit on the shard or not.
    let retry = append(&mut self::proxy(), tenant, aggregate, None, batch.clone()).unwrap();
    let again = append(&mut self::proxy(), tenant, aggregate, None, batch).unwrap();
    let sequences = |rows: &[postgres::Row]| {
        rows.iter()
            .map(|r| {
                (
                    r.get::<_, Uuid>("event_id"),
                    r.get::<_, i64>("sequence_number"),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sequences(&retry),
        sequences(&again),
        "the second retry returns the stored rows"
    );
    assert_eq!(
        sequences(&retry)
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        ids
    );
    let stored: i64 = shard(0)
        .query_one(
            "SELECT count(*) FROM forgeerp.events WHERE tenant_id = $1 AND event_id = ANY($2)",
            &[&tenant, &ids.to_vec()],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, 2, "each event once");
}

//! What a native append path (no SQL at call time: direct index scans and
//! the executor's single-row insert) could get wrong: a failure half-way
//! through a batch, a unique violation under REPEATABLE READ, a cancelled
//! lock wait, and memory across many calls in one backend.

use forgeerp_server_tests::*;
use serde_json::json;
use uuid::Uuid;

/// The 3rd of 5 events fails at its insert, after the first two are written:
/// its id is stored concurrently by a transaction committing meanwhile
/// (ES004). The statement leaves nothing behind: after ROLLBACK TO
/// SAVEPOINT the stream is empty, and the same session appends again.
#[test]
fn a_failure_in_the_middle_of_a_batch_leaves_nothing_behind() {
    let (tenant, stream, other) = (id(), id(), id());
    let shared = id();
    let batch = json!([
        {"event_type": "A", "payload": {"n": 1}},
        {"event_type": "A", "payload": {"n": 2}},
        event_with_id(shared, "A", json!({"n": 3})),
        {"event_type": "A", "payload": {"n": 4}},
        {"event_type": "A", "payload": {"n": 5}},
    ]);
    let waiter: Waiter<(String, i64, usize)> = Box::new(move |db| {
        let mut tx = db.transaction().unwrap();
        tx.batch_execute("SAVEPOINT before").unwrap();
        let failed = sqlstate(&append(&mut tx, tenant, "t", stream, None, &batch).unwrap_err());
        tx.batch_execute("ROLLBACK TO SAVEPOINT before").unwrap();
        let left: i64 = tx
            .query_one(
                "SELECT count(*) FROM forgeerp.events WHERE tenant_id = $1 AND aggregate_id = $2",
                &[&tenant, &stream],
            )
            .unwrap()
            .get(0);
        let again = append(&mut tx, tenant, "t", stream, Some(0), &ticks(2))
            .expect("the session goes on")
            .len();
        tx.commit().unwrap();
        (failed, left, again)
    });
    let results = overlapped(
        |tx| {
            append(
                tx,
                tenant,
                "t",
                other,
                None,
                &json!([event_with_id(shared, "B", json!({}))]),
            )
            .unwrap();
        },
        vec![waiter],
    );
    assert_eq!(results, [("ES004".to_string(), 0, 2)]);
    let mut db = connect();
    let sequences: Vec<i64> = db
        .query(
            "SELECT sequence_number FROM forgeerp.load_stream($1, $2)",
            &[&tenant, &stream],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        sequences,
        [1, 2],
        "only the second append's events, numbered from 1"
    );
}

/// Under REPEATABLE READ the snapshot predates another session's append:
/// the stream's head it reads is stale, the insert collides with the stored
/// sequence number, and the caller is told to retry (40001), not 23505.
#[test]
fn a_unique_violation_under_repeatable_read_is_a_serialization_failure() {
    let (tenant, stream) = (id(), id());
    append(&mut connect(), tenant, "t", stream, None, &ticks(1)).unwrap();
    let mut late = connect();
    let mut tx = late
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()
        .unwrap();
    tx.batch_execute("SELECT 1").unwrap(); // the snapshot
    append(&mut connect(), tenant, "t", stream, None, &ticks(1)).unwrap();
    let error = expect_state(
        append(&mut tx, tenant, "t", stream, None, &ticks(1)),
        "40001",
    );
    assert!(
        error.message().contains("could not serialize"),
        "{}",
        error.message()
    );
    tx.rollback().unwrap();
    assert_eq!(events_of(&mut connect(), tenant), 2);
}

/// A writer waiting for a stream's lock, stopped by `statement_timeout` or
/// by `pg_cancel_backend`: 57014, and the backend carries on, for another
/// stream at once and for the same stream once the lock is free.
#[test]
fn a_cancelled_lock_wait_leaves_the_backend_healthy() {
    let (tenant, held, free) = (id(), id(), id());
    let mut holder = connect();
    let mut tx = holder.transaction().unwrap();
    append(&mut tx, tenant, "t", held, None, &ticks(1)).unwrap();

    let mut waiter = connect();
    waiter
        .batch_execute("SET statement_timeout = '200ms'")
        .unwrap();
    expect_state(
        append(&mut waiter, tenant, "t", held, None, &ticks(1)),
        "57014",
    );
    waiter.batch_execute("RESET statement_timeout").unwrap();
    append(&mut waiter, tenant, "t", free, None, &ticks(1)).expect("healthy after a timeout");

    let pid: i32 = waiter
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let waiting = std::thread::spawn(move || {
        let cancelled =
            sqlstate(&append(&mut waiter, tenant, "t", held, None, &ticks(1)).unwrap_err());
        (cancelled, waiter)
    });
    wait_for_lock_waits(&[pid], || {});
    connect()
        .execute("SELECT pg_cancel_backend($1)", &[&pid])
        .unwrap();
    let (cancelled, mut waiter) = waiting.join().unwrap();
    assert_eq!(cancelled, "57014");
    append(&mut waiter, tenant, "t", free, None, &ticks(1)).expect("healthy after a cancel");
    tx.commit().unwrap();
    append(&mut waiter, tenant, "t", held, None, &ticks(1)).expect("the lock is free again");
    assert_eq!(events_of(&mut connect(), tenant), 4);
}

/// The backend's private memory (`RssAnon`, which leaves out the shared
/// buffers it touches) after 100 and after 1,000 appends of
/// `max_batch_events` events each, in one session.
fn rss_anon_kib(pid: i32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the server runs on this machine (the private cluster)");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/<pid>/status")
}

#[test]
fn full_batches_in_one_backend_do_not_grow_its_memory() {
    const BATCH: usize = 100;
    let tenant = id();
    let mut db = connect();
    db.batch_execute(&format!("SET forgeerp.max_batch_events = {BATCH}"))
        .unwrap();
    let pid: i32 = db.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let batch = |round: usize| {
        serde_json::Value::Array(
            (0..BATCH)
                .map(|i| {
                    json!({"event_type": "Tick", "payload": {"round": round, "i": i, "pad": "x".repeat(64)},
                           "event_id": Uuid::new_v4().to_string(), "metadata": {"by": "test"}})
                })
                .collect(),
        )
    };
    let mut after_warm_up = 0;
    for round in 0..1000 {
        let rows = append(&mut db, tenant, "t", id(), Some(0), &batch(round)).unwrap();
        assert_eq!(rows.len(), BATCH);
        if round == 99 {
            after_warm_up = rss_anon_kib(pid);
        }
    }
    let after = rss_anon_kib(pid);
    eprintln!("RssAnon after 100 batches: {after_warm_up} kB, after 1000: {after} kB");
    assert!(
        after - after_warm_up < 4 * 1024,
        "private memory grew from {after_warm_up} kB to {after} kB over 900 full batches"
    );
    assert_eq!(events_of(&mut connect(), tenant), (1000 * BATCH) as i64);
}

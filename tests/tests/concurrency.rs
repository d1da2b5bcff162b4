//! Writers that really race. The outcome tests overlap for certain
//! ([`overlapped`]: the first writer's transaction is held open until the
//! others are seen waiting on its lock); the stress test releases many
//! sessions together with a barrier.

use forgeerp_server_tests::*;
use serde_json::json;
use std::sync::{Arc, Barrier};
use std::thread;
use uuid::Uuid;

/// Runs `writers` sessions that each call `f` at the same moment; returns their results.
fn race<T: Send + 'static>(
    writers: usize,
    f: impl Fn(&mut postgres::Client, usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(writers));
    let f = Arc::new(f);
    let handles: Vec<_> = (0..writers)
        .map(|i| {
            let (barrier, f) = (barrier.clone(), f.clone());
            thread::spawn(move || {
                let mut db = connect();
                barrier.wait();
                f(&mut db, i)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("writer thread"))
        .collect()
}

fn outcome(result: Result<Vec<postgres::Row>, postgres::Error>) -> Result<usize, String> {
    result.map(|rows| rows.len()).map_err(|e| sqlstate(&e))
}

/// A writer that appends `batch` to one stream at `expected`, as a waiter of [`overlapped`].
fn writer(
    tenant: Uuid,
    item: Uuid,
    expected: Option<i64>,
    batch: serde_json::Value,
) -> Waiter<Result<usize, String>> {
    Box::new(move |db| outcome(append(db, tenant, "t", item, expected, &batch)))
}

#[test]
fn two_writers_at_the_same_expected_version_one_wins_the_other_gets_es001() {
    let (tenant, item) = (id(), id());
    append(&mut connect(), tenant, "t", item, Some(0), &ticks(1)).unwrap();
    let results = overlapped(
        |tx| {
            append(tx, tenant, "t", item, Some(1), &ticks(2)).unwrap();
        },
        vec![writer(tenant, item, Some(1), ticks(2))],
    );
    assert_eq!(
        results,
        [Err("ES001".to_string())],
        "the loser, after the winner committed"
    );
    assert_eq!(events_of(&mut connect(), tenant), 3);
}

#[test]
fn racing_to_create_a_stream_one_wins_the_others_get_es001() {
    let (tenant, item) = (id(), id());
    let results = overlapped(
        |tx| {
            append(tx, tenant, "t", item, Some(0), &ticks(1)).unwrap();
        },
        vec![
            writer(tenant, item, Some(0), ticks(1)),
            writer(tenant, item, Some(0), ticks(1)),
        ],
    );
    assert_eq!(
        results,
        [Err("ES001".to_string()), Err("ES001".to_string())],
        "never 23505"
    );
    assert_eq!(events_of(&mut connect(), tenant), 1);
}

/// Without a held transaction: many writers released together, round after
/// round, still never see anything but one winner and ES001.
#[test]
fn racing_writers_released_together_see_one_winner_and_es001() {
    for round in 0..30 {
        let (tenant, item) = (id(), id());
        let results = race(3, move |db, _| {
            outcome(append(db, tenant, "t", item, Some(0), &ticks(1)))
        });
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {results:?}"
        );
        assert!(
            results
                .iter()
                .filter(|r| r.is_err())
                .all(|r| *r == Err("ES001".into())),
            "never 23505: {results:?}"
        );
    }
}

#[test]
fn writers_with_any_version_never_fail_and_never_interleave_their_batches() {
    let (tenant, item) = (id(), id());
    let writers = 8;
    let results = race(writers, move |db, writer| {
        (0..10)
            .map(|round| {
                let batch = json!((0..3).map(|k| json!({"event_type": "W", "payload": {"writer": writer, "round": round, "k": k}})).collect::<Vec<_>>());
                outcome(append(db, tenant, "t", item, None, &batch))
            })
            .collect::<Vec<_>>()
    });
    assert!(results.iter().flatten().all(|r| *r == Ok(3)), "{results:?}");
    let mut db = connect();
    let rows = db
        .query(
            "SELECT sequence_number, payload FROM forgeerp.load_stream($1, $2)",
            &[&tenant, &item],
        )
        .unwrap();
    assert_eq!(rows.len(), writers * 10 * 3);
    for (i, chunk) in rows.chunks(3).enumerate() {
        let first: serde_json::Value = chunk[0].get(1);
        for (k, row) in chunk.iter().enumerate() {
            assert_eq!(
                row.get::<_, i64>(0),
                (i * 3 + k + 1) as i64,
                "sequence numbers 1..n with no gap"
            );
            let payload: serde_json::Value = row.get(1);
            assert_eq!(
                (
                    payload["writer"].clone(),
                    payload["round"].clone(),
                    payload["k"].clone()
                ),
                (first["writer"].clone(), first["round"].clone(), json!(k)),
                "batch {i} interleaved"
            );
        }
    }
}

#[test]
fn under_repeatable_read_a_lost_race_is_es001_or_a_serialization_failure() {
    let (tenant, item) = (id(), id());
    append(&mut connect(), tenant, "t", item, Some(0), &ticks(1)).unwrap();
    let loser: Waiter<Result<usize, String>> = Box::new(move |db| {
        let mut tx = db
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .start()
            .unwrap();
        // The snapshot is taken before the winner commits.
        tx.batch_execute("SELECT 1").unwrap();
        let result = outcome(append(&mut tx, tenant, "t", item, Some(1), &ticks(1)));
        if result.is_ok() {
            tx.commit().unwrap();
        }
        result
    });
    let results = overlapped(
        |tx| {
            append(tx, tenant, "t", item, Some(1), &ticks(1)).unwrap();
        },
        vec![loser],
    );
    assert!(
        results == [Err("ES001".to_string())] || results == [Err("40001".to_string())],
        "{results:?}"
    );
    assert_eq!(events_of(&mut connect(), tenant), 2);
}

/// A writer waiting for a stream's lock gives up at `lock_timeout`, with
/// PostgreSQL's own 55P03, and stores nothing.
#[test]
fn a_writer_waiting_for_the_stream_lock_honours_lock_timeout() {
    let (tenant, item) = (id(), id());
    let mut holder = connect();
    let mut tx = holder.transaction().unwrap();
    append(&mut tx, tenant, "t", item, None, &ticks(1)).unwrap();
    let mut other = connect();
    other.batch_execute("SET lock_timeout = '200ms'").unwrap();
    let started = std::time::Instant::now();
    expect_state(
        append(&mut other, tenant, "t", item, None, &ticks(1)),
        "55P03",
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    tx.commit().unwrap();
    assert_eq!(events_of(&mut connect(), tenant), 1);
}

#[test]
fn writers_of_different_streams_do_not_block_each_other() {
    // One writer holds its stream's lock in an open transaction; another
    // stream of the same tenant appends meanwhile.
    let tenant = id();
    let (held, free): (Uuid, Uuid) = (id(), id());
    let mut holder = connect();
    let mut tx = holder.transaction().unwrap();
    append(&mut tx, tenant, "t", held, None, &ticks(1)).unwrap();
    let mut other = connect();
    other.batch_execute("SET statement_timeout = '5s'").unwrap();
    append(&mut other, tenant, "t", free, None, &ticks(1))
        .expect("not blocked by another stream's writer");
    tx.commit().unwrap();
}

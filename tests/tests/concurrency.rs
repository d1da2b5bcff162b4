//! Writers that really race: separate sessions released together by a barrier.

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

#[test]
fn two_writers_at_the_same_expected_version_one_wins_the_other_gets_es001() {
    for round in 0..30 {
        let (tenant, item) = (id(), id());
        append(&mut connect(), tenant, "t", item, Some(0), &ticks(1)).unwrap();
        let results = race(2, move |db, _| {
            outcome(append(db, tenant, "t", item, Some(1), &ticks(2)))
        });
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {results:?}");
        assert!(
            results.contains(&Err("ES001".into())),
            "round {round}: loser must get ES001, got {results:?}"
        );
        assert_eq!(events_of(&mut connect(), tenant), 3);
    }
}

#[test]
fn racing_to_create_a_stream_one_wins_the_others_get_es001() {
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
    for _ in 0..10 {
        let (tenant, item) = (id(), id());
        append(&mut connect(), tenant, "t", item, Some(0), &ticks(1)).unwrap();
        let results = race(2, move |db, _| {
            let mut tx = db
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .start()
                .unwrap();
            let result = outcome(append(&mut tx, tenant, "t", item, Some(1), &ticks(1)));
            if result.is_ok() {
                tx.commit().unwrap();
            }
            result
        });
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert!(
            results
                .iter()
                .all(|r| r.is_ok() || *r == Err("ES001".into()) || *r == Err("40001".into())),
            "{results:?}"
        );
    }
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

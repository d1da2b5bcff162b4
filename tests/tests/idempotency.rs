//! Idempotent appends: a retry returns the stored rows and writes nothing;
//! any other reuse of an event id is ES004.

use forgeerp_server_tests::*;
use serde_json::json;
use uuid::Uuid;

fn returned(rows: &[postgres::Row]) -> Vec<(Uuid, i64, i64, i64)> {
    rows.iter()
        .map(|r| {
            (
                r.get("event_id"),
                r.get("sequence_number"),
                r.get("global_position"),
                r.get("transaction_id"),
            )
        })
        .collect()
}

#[test]
fn a_retry_returns_the_stored_rows_writes_nothing_and_ignores_expected_version() {
    let mut db = connect();
    let (tenant, item) = (id(), id());
    let batch = json!([
        event_with_id(id(), "A", json!({"q": 1})),
        event_with_id(id(), "B", json!({"q": 2}))
    ]);
    let first = append(&mut db, tenant, "t", item, Some(0), &batch).unwrap();
    append(&mut db, tenant, "t", item, None, &ticks(1)).unwrap();
    let before = store_fingerprint(&mut db);
    for expected in [Some(0), None, Some(-1), Some(2), Some(99)] {
        let again = append(&mut db, tenant, "t", item, expected, &batch).unwrap();
        assert_eq!(
            returned(&again),
            returned(&first),
            "expected_version {expected:?}"
        );
    }
    assert_eq!(
        store_fingerprint(&mut db),
        before,
        "a retry wrote something"
    );
    let version: i64 = db
        .query_one("SELECT forgeerp.stream_version($1, $2)", &[&tenant, &item])
        .unwrap()
        .get(0);
    assert_eq!(version, 3);
}

#[test]
fn a_retry_of_a_part_standing_at_consecutive_positions_is_a_retry() {
    let mut db = connect();
    let (tenant, item) = (id(), id());
    let ids = [id(), id(), id()];
    let batch = json!(ids
        .iter()
        .map(|i| event_with_id(*i, "A", json!({"id": i.to_string()})))
        .collect::<Vec<_>>());
    let first = append(&mut db, tenant, "t", item, Some(0), &batch).unwrap();
    let tail = json!([batch[1], batch[2]]);
    let again = append(&mut db, tenant, "t", item, Some(0), &tail).unwrap();
    assert_eq!(returned(&again), returned(&first)[1..]);
    // Out of order is not "in the same order": ES004.
    let swapped = json!([batch[2], batch[1]]);
    expect_state(append(&mut db, tenant, "t", item, None, &swapped), "ES004");
    // Not consecutive: ES004.
    let gapped = json!([batch[0], batch[2]]);
    expect_state(append(&mut db, tenant, "t", item, None, &gapped), "ES004");
}

#[test]
fn the_same_id_with_other_content_is_a_duplicate() {
    let mut db = connect();
    let (tenant, item, event) = (id(), id(), id());
    append(
        &mut db,
        tenant,
        "t",
        item,
        None,
        &json!([event_with_id(event, "A", json!({"q": 1}))]),
    )
    .unwrap();
    let before = store_fingerprint(&mut db);
    let error = expect_state(
        append(
            &mut db,
            tenant,
            "t",
            item,
            None,
            &json!([event_with_id(event, "A", json!({"q": 2}))]),
        ),
        "ES004",
    );
    assert!(
        error.message().contains(&event.to_string()) && error.message().contains("other content"),
        "{}",
        error.message()
    );
    expect_state(
        append(
            &mut db,
            tenant,
            "t",
            item,
            None,
            &json!([event_with_id(event, "B", json!({"q": 1}))]),
        ),
        "ES004",
    );
    assert_eq!(store_fingerprint(&mut db), before);
}

#[test]
fn the_same_id_in_another_stream_is_a_duplicate() {
    let mut db = connect();
    let (tenant, event) = (id(), id());
    let batch = json!([event_with_id(event, "A", json!({}))]);
    append(&mut db, tenant, "t", id(), None, &batch).unwrap();
    let error = expect_state(append(&mut db, tenant, "t", id(), None, &batch), "ES004");
    assert!(
        error.message().contains("in another stream"),
        "{}",
        error.message()
    );
}

#[test]
fn partial_overlap_is_a_duplicate_and_stores_nothing() {
    let mut db = connect();
    let (tenant, item, old) = (id(), id(), id());
    append(
        &mut db,
        tenant,
        "t",
        item,
        None,
        &json!([event_with_id(old, "A", json!({}))]),
    )
    .unwrap();
    let before = store_fingerprint(&mut db);
    let overlapping = json!([
        event_with_id(id(), "New", json!({})),
        event_with_id(old, "A", json!({}))
    ]);
    let error = expect_state(
        append(&mut db, tenant, "t", item, None, &overlapping),
        "ES004",
    );
    assert!(
        error.message().contains(&old.to_string()),
        "names the reused id: {}",
        error.message()
    );
    let with_new_event_without_id =
        json!([event_with_id(old, "A", json!({})), {"event_type": "New", "payload": {}}]);
    expect_state(
        append(&mut db, tenant, "t", item, None, &with_new_event_without_id),
        "ES004",
    );
    assert_eq!(store_fingerprint(&mut db), before);
}

#[test]
fn the_same_id_twice_in_one_batch_is_a_duplicate() {
    let mut db = connect();
    let event = id();
    let batch = json!([
        event_with_id(event, "A", json!({})),
        event_with_id(event, "A", json!({}))
    ]);
    let tenant = id();
    let error = expect_state(append(&mut db, tenant, "t", id(), None, &batch), "ES004");
    assert!(error.message().contains(&event.to_string()));
    assert_eq!(events_of(&mut db, tenant), 0);
}

#[test]
fn event_ids_are_unique_per_tenant_only() {
    let mut db = connect();
    let event = id();
    let batch = json!([event_with_id(event, "A", json!({}))]);
    append(&mut db, id(), "t", id(), None, &batch).unwrap();
    append(&mut db, id(), "t", id(), None, &batch).unwrap();
}

#[test]
fn a_retry_in_the_same_transaction_is_a_retry_too() {
    let mut db = connect();
    let (tenant, item) = (id(), id());
    let batch = json!([event_with_id(id(), "A", json!({}))]);
    let mut tx = db.transaction().unwrap();
    let first = append(&mut tx, tenant, "t", item, Some(0), &batch).unwrap();
    let again = append(&mut tx, tenant, "t", item, Some(0), &batch).unwrap();
    assert_eq!(returned(&first), returned(&again));
    tx.commit().unwrap();
    assert_eq!(events_of(&mut db, tenant), 1);
}

#[test]
fn concurrent_retries_of_one_batch_store_it_once() {
    let (tenant, item) = (id(), id());
    let batch = json!([
        event_with_id(id(), "A", json!({})),
        event_with_id(id(), "B", json!({}))
    ]);
    // The retries queue behind the first append's lock while it is in
    // flight, then find it committed: each gets the stored rows back.
    let retry = |batch: serde_json::Value| -> Waiter<_> {
        Box::new(move |db| {
            returned(&append(db, tenant, "t", item, None, &batch).expect("a retry never fails"))
        })
    };
    let mut first = Vec::new();
    let results = overlapped(
        |tx| first = returned(&append(tx, tenant, "t", item, None, &batch).unwrap()),
        vec![
            retry(batch.clone()),
            retry(batch.clone()),
            retry(batch.clone()),
        ],
    );
    for result in &results {
        assert_eq!(
            result, &first,
            "every caller sees the first append's stored rows"
        );
    }
    assert_eq!(events_of(&mut connect(), tenant), 2);

    // Released together without a held transaction, too.
    let (tenant, item) = (id(), id());
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (barrier, batch) = (barrier.clone(), batch.clone());
            std::thread::spawn(move || {
                let mut db = connect();
                barrier.wait();
                returned(
                    &append(&mut db, tenant, "t", item, None, &batch).expect("a retry never fails"),
                )
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        results.windows(2).all(|w| w[0] == w[1]),
        "all callers see the same stored rows: {results:?}"
    );
    assert_eq!(events_of(&mut connect(), tenant), 2);
}

//! `forgeerp.append`, `load_stream` and `stream_version`: the happy paths and
//! the expected-version rules.

use forgeerp_server_tests::*;
use serde_json::{json, Value};

#[test]
fn append_returns_one_row_per_event_in_batch_order() {
    let mut db = connect();
    let (tenant, item) = (id(), id());
    let rows = append(&mut db, tenant, "inventory.item", item, Some(0), &ticks(3)).unwrap();
    assert_eq!(rows.len(), 3);
    let sequence: Vec<i64> = rows.iter().map(|r| r.get("sequence_number")).collect();
    assert_eq!(sequence, vec![1, 2, 3]);
    let positions: Vec<i64> = rows.iter().map(|r| r.get("global_position")).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions increase in batch order: {positions:?}"
    );
    let transactions: Vec<i64> = rows.iter().map(|r| r.get("transaction_id")).collect();
    assert!(transactions.iter().all(|t| *t == transactions[0]));

    let stored = db
        .query(
            "SELECT event_id, sequence_number, payload FROM forgeerp.load_stream($1, $2)",
            &[&tenant, &item],
        )
        .unwrap();
    assert_eq!(stored.len(), 3);
    for (i, (row, returned)) in stored.iter().zip(&rows).enumerate() {
        assert_eq!(
            row.get::<_, uuid::Uuid>(0),
            returned.get::<_, uuid::Uuid>("event_id")
        );
        assert_eq!(row.get::<_, Value>(2), json!({"n": i + 1}));
    }
}

#[test]
fn transaction_id_is_the_appending_transactions_xid8() {
    let mut db = connect();
    let mut tx = db.transaction().unwrap();
    let rows = append(&mut tx, id(), "t", id(), None, &ticks(1)).unwrap();
    let xid: i64 = tx
        .query_one("SELECT pg_current_xact_id()::text::bigint", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows[0].get::<_, i64>("transaction_id"), xid);
    tx.commit().unwrap();
}

#[test]
fn optional_keys_get_their_defaults_and_given_values_are_kept() {
    let mut db = connect();
    let (tenant, item) = (id(), id());
    let given = id();
    let events = json!([
        {"event_type": "A", "payload": {}},
        {"event_type": "B", "payload": {"x": [1, 2]}, "event_id": given.to_string(), "event_version": 3,
         "metadata": {"correlation_id": "c-1"}, "occurred_at": "2024-02-29T12:30:00.250+02:00"},
        {"event_type": "C", "payload": {}, "event_id": null, "event_version": null, "metadata": null, "occurred_at": null}
    ]);
    let rows = append(&mut db, tenant, "t", item, None, &events).unwrap();
    let stored = db
        .query(
            "SELECT event_id, event_version, metadata, occurred_at = recorded_at AS default_time,
                    occurred_at = '2024-02-29T10:30:00.250Z'::timestamptz AS given_time, event_type, aggregate_type
               FROM forgeerp.load_stream($1, $2)",
            &[&tenant, &item],
        )
        .unwrap();
    assert_eq!(stored[0].get::<_, i32>("event_version"), 1);
    assert_eq!(stored[0].get::<_, Value>("metadata"), json!({}));
    assert!(stored[0].get::<_, bool>("default_time"));
    assert_eq!(stored[1].get::<_, uuid::Uuid>("event_id"), given);
    assert_eq!(rows[1].get::<_, uuid::Uuid>("event_id"), given);
    assert_eq!(stored[1].get::<_, i32>("event_version"), 3);
    assert_eq!(
        stored[1].get::<_, Value>("metadata"),
        json!({"correlation_id": "c-1"})
    );
    assert!(stored[1].get::<_, bool>("given_time"));
    assert_eq!(
        stored[2].get::<_, Value>("metadata"),
        json!({}),
        "JSON null counts as absent"
    );
    assert_eq!(stored[2].get::<_, i32>("event_version"), 1);
    assert_eq!(stored[2].get::<_, &str>("aggregate_type"), "t");
}

#[test]
fn expected_version_null_appends_at_any_version() {
    let mut db = connect();
    let (tenant, item) = (id(), id());
    append(&mut db, tenant, "t", item, None, &ticks(2)).unwrap();
    let rows = append(&mut db, tenant, "t", item, None, &ticks(1)).unwrap();
    assert_eq!(rows[0].get::<_, i64>("sequence_number"), 3);
}

#[test]
fn expected_version_zero_requires_a_new_stream() {
    let mut db = connect();
    let (tenant, item) = (id(), id());
    append(&mut db, tenant, "t", item, Some(0), &ticks(1)).unwrap();
    let error = expect_state(
        append(&mut db, tenant, "t", item, Some(0), &ticks(1)),
        "ES001",
    );
    assert!(
        error.message().contains(&item.to_string()),
        "{}",
        error.message()
    );
    assert!(
        error
            .detail()
            .unwrap()
            .contains("expected_version 0, actual version 1"),
        "{:?}",
        error.detail()
    );
    assert_eq!(events_of(&mut db, tenant), 1);
}

#[test]
fn expected_version_minus_one_requires_an_existing_stream() {
    let mut db = connect();
    let (tenant, item) = (id(), id());
    let error = expect_state(
        append(&mut db, tenant, "t", item, Some(-1), &ticks(1)),
        "ES001",
    );
    assert!(error.detail().unwrap().contains("actual version 0"));
    assert_eq!(
        streams_of(&mut db, tenant),
        0,
        "a refused append creates no stream"
    );
    append(&mut db, tenant, "t", item, Some(0), &ticks(1)).unwrap();
    append(&mut db, tenant, "t", item, Some(-1), &ticks(1)).unwrap();
    assert_eq!(events_of(&mut db, tenant), 2);
}

#[test]
fn expected_version_n_must_match_exactly() {
    let mut db = connect();
    let (tenant, item) = (id(), id());
    expect_state(
        append(&mut db, tenant, "t", item, Some(1), &ticks(1)),
        "ES001",
    );
    append(&mut db, tenant, "t", item, Some(0), &ticks(2)).unwrap();
    let error = expect_state(
        append(&mut db, tenant, "t", item, Some(1), &ticks(1)),
        "ES001",
    );
    assert!(error
        .detail()
        .unwrap()
        .contains("expected_version 1, actual version 2"));
    expect_state(
        append(&mut db, tenant, "t", item, Some(3), &ticks(1)),
        "ES001",
    );
    let rows = append(&mut db, tenant, "t", item, Some(2), &ticks(1)).unwrap();
    assert_eq!(rows[0].get::<_, i64>("sequence_number"), 3);
}

#[test]
fn a_stream_keeps_its_aggregate_type() {
    let mut db = connect();
    let (tenant, item) = (id(), id());
    append(&mut db, tenant, "inventory.item", item, None, &ticks(1)).unwrap();
    let error = expect_state(
        append(&mut db, tenant, "sales.order", item, None, &ticks(1)),
        "ES005",
    );
    assert!(error.message().contains("inventory.item") && error.message().contains("sales.order"));
    assert_eq!(events_of(&mut db, tenant), 1);
}

#[test]
fn the_same_aggregate_id_under_two_tenants_is_two_streams() {
    let mut db = connect();
    let (a, b, item) = (id(), id(), id());
    append(&mut db, a, "inventory.item", item, Some(0), &ticks(2)).unwrap();
    let rows = append(&mut db, b, "sales.order", item, Some(0), &ticks(1)).unwrap();
    assert_eq!(rows[0].get::<_, i64>("sequence_number"), 1);
    let version = |db: &mut postgres::Client, t| -> i64 {
        db.query_one("SELECT forgeerp.stream_version($1, $2)", &[&t, &item])
            .unwrap()
            .get(0)
    };
    assert_eq!(version(&mut db, a), 2);
    assert_eq!(version(&mut db, b), 1);
}

#[test]
fn a_failing_batch_stores_nothing() {
    let mut db = connect();
    let (tenant, item) = (id(), id());
    append(&mut db, tenant, "t", item, None, &ticks(1)).unwrap();
    let before = store_fingerprint(&mut db);
    let mut events = ticks(3);
    events[2]["payload"] = json!("not an object");
    let error = expect_state(append(&mut db, tenant, "t", item, None, &events), "ES003");
    assert!(
        error.message().contains("events[2].payload"),
        "{}",
        error.message()
    );
    assert_eq!(store_fingerprint(&mut db), before);
}

#[test]
fn load_stream_reads_from_a_sequence_and_at_most_max_count() {
    let mut db = connect();
    let (tenant, item) = (id(), id());
    append(&mut db, tenant, "t", item, None, &ticks(5)).unwrap();
    let seqs = |db: &mut postgres::Client, from: i64, max: Option<i32>| -> Vec<i64> {
        db.query(
            "SELECT sequence_number FROM forgeerp.load_stream($1, $2, $3, $4)",
            &[&tenant, &item, &from, &max],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    assert_eq!(seqs(&mut db, 1, None), vec![1, 2, 3, 4, 5]);
    assert_eq!(seqs(&mut db, 3, None), vec![3, 4, 5]);
    assert_eq!(seqs(&mut db, 2, Some(2)), vec![2, 3]);
    assert_eq!(
        seqs(&mut db, -7, Some(1)),
        vec![1],
        "from_sequence below 1 starts at 1"
    );
    assert_eq!(seqs(&mut db, 6, None), Vec::<i64>::new());
    assert_eq!(seqs(&mut db, 1, Some(0)), Vec::<i64>::new());
    let missing = db
        .query(
            "SELECT * FROM forgeerp.load_stream($1, $2)",
            &[&tenant, &id()],
        )
        .unwrap();
    assert!(missing.is_empty());
    let version: i64 = db
        .query_one("SELECT forgeerp.stream_version($1, $2)", &[&tenant, &id()])
        .unwrap()
        .get(0);
    assert_eq!(version, 0);
}

#[test]
fn event_records_have_the_contracts_columns() {
    let mut db = connect();
    let (tenant, item) = (id(), id());
    append(&mut db, tenant, "t", item, None, &ticks(1)).unwrap();
    for query in [
        "SELECT * FROM forgeerp.load_stream($1, $2)",
        "SELECT * FROM forgeerp.read_all(0, 0, 1000000, $1) WHERE $2::uuid IS NOT NULL",
    ] {
        let row = &db.query(query, &[&tenant, &item]).unwrap()[0];
        let columns: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
        assert_eq!(
            columns,
            [
                "global_position",
                "transaction_id",
                "tenant_id",
                "aggregate_type",
                "aggregate_id",
                "sequence_number",
                "event_id",
                "event_type",
                "event_version",
                "payload",
                "metadata",
                "occurred_at",
                "recorded_at"
            ]
        );
    }
}

#[test]
fn version_reports_the_installed_extension_version() {
    let mut db = connect();
    let version: String = db
        .query_one("SELECT forgeerp.version()", &[])
        .unwrap()
        .get(0);
    let installed: String = db
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'forgeerp'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, installed);
    // The workspace's version is the extension's (docs/releases.md).
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
}

//! Bad input: each gets ES003 (or its own SQLSTATE), a message naming the bad
//! value, and leaves the store exactly as it was.

use forgeerp_server_tests::*;
use postgres::Client;
use serde_json::{json, Value};
use uuid::Uuid;

const NIL: Uuid = Uuid::nil();

/// Runs `f`, asserts it failed with `state` and a message containing `names`,
/// and that the store did not change.
#[track_caller]
fn refused<T: std::fmt::Debug>(
    db: &mut Client,
    state: &str,
    names: &str,
    f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
) {
    let before = store_fingerprint(db);
    let error = expect_state(f(db), state);
    assert!(
        error.message().contains(names),
        "message {:?} should name {names:?}",
        error.message()
    );
    assert_eq!(
        store_fingerprint(db),
        before,
        "a refused call changed the store"
    );
}

fn append_raw(db: &mut Client, events: &Value) -> Result<Vec<postgres::Row>, postgres::Error> {
    append(db, id(), "t", id(), None, events)
}

#[test]
fn null_and_nil_ids_are_invalid_arguments() {
    let mut db = connect();
    let none: Option<Uuid> = None;
    let q = "SELECT * FROM forgeerp.append($1, $2, $3, $4, $5)";
    let events = ticks(1);
    refused(&mut db, "ES003", "tenant_id must not be NULL", |db| {
        db.query(q, &[&none, &"t", &id(), &None::<i64>, &events])
    });
    refused(
        &mut db,
        "ES003",
        "tenant_id must not be the nil uuid",
        |db| append(db, NIL, "t", id(), None, &events),
    );
    refused(&mut db, "ES003", "aggregate_id must not be NULL", |db| {
        db.query(q, &[&id(), &"t", &none, &None::<i64>, &events])
    });
    refused(
        &mut db,
        "ES003",
        "aggregate_id must not be the nil uuid",
        |db| append(db, id(), "t", NIL, None, &events),
    );
    refused(&mut db, "ES003", "events must not be NULL", |db| {
        db.query(q, &[&id(), &"t", &id(), &None::<i64>, &None::<Value>])
    });
    refused(&mut db, "ES003", "aggregate_type must not be NULL", |db| {
        db.query(q, &[&id(), &None::<&str>, &id(), &None::<i64>, &events])
    });
}

#[test]
fn aggregate_type_must_be_1_to_255_bytes() {
    let mut db = connect();
    refused(&mut db, "ES003", "aggregate_type must not be empty", |db| {
        append(db, id(), "", id(), None, &ticks(1))
    });
    let long = "é".repeat(128); // 256 bytes, 128 characters
    refused(&mut db, "ES003", "aggregate_type is 256 bytes long", |db| {
        append(db, id(), &long, id(), None, &ticks(1))
    });
    append(&mut db, id(), &"x".repeat(255), id(), None, &ticks(1)).unwrap();
}

#[test]
fn expected_version_below_minus_one_is_invalid() {
    let mut db = connect();
    refused(&mut db, "ES003", "got -2", |db| {
        append(db, id(), "t", id(), Some(-2), &ticks(1))
    });
    refused(&mut db, "ES003", "got -9223372036854775808", |db| {
        append(db, id(), "t", id(), Some(i64::MIN), &ticks(1))
    });
}

#[test]
fn events_must_be_a_non_empty_array_of_objects() {
    let mut db = connect();
    refused(&mut db, "ES003", "got object", |db| {
        append_raw(db, &json!({"event_type": "A", "payload": {}}))
    });
    refused(&mut db, "ES003", "got string", |db| {
        append_raw(db, &json!("[]"))
    });
    refused(&mut db, "ES003", "got null", |db| {
        append_raw(db, &json!(null))
    });
    refused(&mut db, "ES003", "at least one event", |db| {
        append_raw(db, &json!([]))
    });
    refused(
        &mut db,
        "ES003",
        "events[1] must be a JSON object, got number 5",
        |db| append_raw(db, &json!([{"event_type": "A", "payload": {}}, 5])),
    );
    refused(
        &mut db,
        "ES003",
        "events[0] must be a JSON object, got array",
        |db| append_raw(db, &json!([[1]])),
    );
}

#[test]
fn unknown_keys_are_refused() {
    let mut db = connect();
    refused(&mut db, "ES003", "unknown key \"sequence_number\"", |db| {
        append_raw(
            db,
            &json!([{"event_type": "A", "payload": {}, "sequence_number": 7}]),
        )
    });
}

#[test]
fn event_type_is_a_required_non_empty_string_of_at_most_255_bytes() {
    let mut db = connect();
    refused(&mut db, "ES003", "events[0].event_type is required", |db| {
        append_raw(db, &json!([{"payload": {}}]))
    });
    refused(&mut db, "ES003", "events[0].event_type is required", |db| {
        append_raw(db, &json!([{"event_type": null, "payload": {}}]))
    });
    refused(
        &mut db,
        "ES003",
        "events[0].event_type must be a string, got number 42",
        |db| append_raw(db, &json!([{"event_type": 42, "payload": {}}])),
    );
    refused(
        &mut db,
        "ES003",
        "events[0].event_type must not be empty",
        |db| append_raw(db, &json!([{"event_type": "", "payload": {}}])),
    );
    refused(
        &mut db,
        "ES003",
        "events[0].event_type is 256 bytes long",
        |db| append_raw(db, &json!([{"event_type": "e".repeat(256), "payload": {}}])),
    );
    append_raw(
        &mut db,
        &json!([{"event_type": "e".repeat(255), "payload": {}}]),
    )
    .unwrap();
}

#[test]
fn payload_is_a_required_object_and_metadata_an_optional_object() {
    let mut db = connect();
    refused(&mut db, "ES003", "events[0].payload is required", |db| {
        append_raw(db, &json!([{"event_type": "A"}]))
    });
    refused(&mut db, "ES003", "events[0].payload is required", |db| {
        append_raw(db, &json!([{"event_type": "A", "payload": null}]))
    });
    refused(
        &mut db,
        "ES003",
        "events[0].payload must be a JSON object, got array [1, 2]",
        |db| append_raw(db, &json!([{"event_type": "A", "payload": [1, 2]}])),
    );
    refused(
        &mut db,
        "ES003",
        "events[0].metadata must be a JSON object, got string",
        |db| {
            append_raw(
                db,
                &json!([{"event_type": "A", "payload": {}, "metadata": "actor=me"}]),
            )
        },
    );
}

#[test]
fn event_id_must_be_a_uuid_string() {
    let mut db = connect();
    for bad in [
        json!("not-a-uuid"),
        json!(12),
        json!("6f1c1a52-8c36-4a4e-9d55-2a4a7c1f0b1"),
        json!({}),
    ] {
        refused(
            &mut db,
            "ES003",
            "events[0].event_id must be a uuid string",
            |db| {
                append_raw(
                    db,
                    &json!([{"event_type": "A", "payload": {}, "event_id": bad}]),
                )
            },
        );
    }
    // Postgres' other spellings of a uuid are accepted and stored canonically.
    let rows = append_raw(&mut db, &json!([{"event_type": "A", "payload": {}, "event_id": "{6F1C1A528C364A4E9D552A4A7C1F0B10}"}])).unwrap();
    assert_eq!(
        rows[0].get::<_, Uuid>("event_id").to_string(),
        "6f1c1a52-8c36-4a4e-9d55-2a4a7c1f0b10"
    );
}

#[test]
fn event_version_must_be_a_positive_int4() {
    let mut db = connect();
    for bad in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!("1"),
        json!(2147483648_i64),
        json!(true),
    ] {
        refused(
            &mut db,
            "ES003",
            "events[0].event_version must be an integer from 1 to 2147483647",
            |db| {
                append_raw(
                    db,
                    &json!([{"event_type": "A", "payload": {}, "event_version": bad}]),
                )
            },
        );
    }
    append_raw(
        &mut db,
        &json!([{"event_type": "A", "payload": {}, "event_version": 2147483647}]),
    )
    .unwrap();
}

#[test]
fn occurred_at_must_be_rfc3339() {
    let mut db = connect();
    for bad in [
        "yesterday",
        "2024-01-01",
        "2024-01-01T10:00:00",  // no offset
        "2024-02-30T10:00:00Z", // no such day
        "2023-02-29T10:00:00Z", // not a leap year
        "2024-01-01T24:00:00Z",
        "2024-01-01T10:00:00+25:00",
        "0000-01-01T00:00:00Z",
        "2024-01-01T10:00:00.Z",
        "01/02/2024 10:00:00+00",
    ] {
        refused(
            &mut db,
            "ES003",
            "events[0].occurred_at must be an RFC 3339 timestamp",
            |db| {
                append_raw(
                    db,
                    &json!([{"event_type": "A", "payload": {}, "occurred_at": bad}]),
                )
            },
        );
    }
    // Valid RFC 3339, but beyond what PostgreSQL stores: ES003 naming the
    // value, never the conversion's raw 22009.
    for offset in ["+16:00", "-23:59"] {
        refused(
            &mut db,
            "ES003",
            &format!("got string \"2024-01-01T00:00:00{offset}\" (a UTC offset beyond ±15:59"),
            |db| {
                append_raw(
                    db,
                    &json!([{"event_type": "A", "payload": {}, "occurred_at": format!("2024-01-01T00:00:00{offset}")}]),
                )
            },
        );
    }
    refused(&mut db, "ES003", "got number 1700000000", |db| {
        append_raw(
            db,
            &json!([{"event_type": "A", "payload": {}, "occurred_at": 1700000000}]),
        )
    });
    for good in [
        "2024-02-29T23:59:59Z",
        "2024-01-01t10:00:00.123456-05:30",
        "2024-01-01 10:00:00z",
    ] {
        append_raw(
            &mut db,
            &json!([{"event_type": "A", "payload": {}, "occurred_at": good}]),
        )
        .unwrap();
    }
}

#[test]
fn batches_larger_than_max_batch_events_are_refused() {
    let mut db = connect();
    refused(
        &mut db,
        "ES003",
        "events has 10001 events, more than forgeerp.max_batch_events (10000)",
        |db| append_raw(db, &ticks(10_001)),
    );
    append_raw(&mut db, &ticks(10_000)).unwrap();

    let mut tx = db.transaction().unwrap();
    tx.batch_execute("SET LOCAL forgeerp.max_batch_events = 3")
        .unwrap();
    append(&mut tx, id(), "t", id(), None, &ticks(3)).unwrap();
    let error = expect_state(append(&mut tx, id(), "t", id(), None, &ticks(4)), "ES003");
    assert!(error
        .message()
        .contains("more than forgeerp.max_batch_events (3)"));
}

/// Builds a payload whose jsonb text is exactly `bytes` long.
fn payload_of_text_length(db: &mut Client, bytes: usize) -> Value {
    let base = json!({"data": ""});
    let base_len: i32 = db
        .query_one("SELECT octet_length($1::jsonb::text)", &[&base])
        .unwrap()
        .get(0);
    let payload = json!({"data": "x".repeat(bytes - base_len as usize)});
    let len: i32 = db
        .query_one("SELECT octet_length($1::jsonb::text)", &[&payload])
        .unwrap()
        .get(0);
    assert_eq!(len as usize, bytes);
    payload
}

#[test]
fn event_size_is_measured_on_postgres_jsonb_text() {
    let mut db = connect();
    let mut limited = connect();
    limited
        .batch_execute("SET forgeerp.max_event_bytes = 100")
        .unwrap();
    // 100 bytes exactly pass, 101 fail; metadata counts too.
    let fits = payload_of_text_length(&mut db, 100);
    append(
        &mut limited,
        id(),
        "t",
        id(),
        None,
        &json!([{"event_type": "A", "payload": fits}]),
    )
    .unwrap();
    let too_big = payload_of_text_length(&mut db, 101);
    refused(
        &mut limited,
        "ES003",
        "take 101 bytes, more than forgeerp.max_event_bytes (100)",
        |db| {
            append(
                db,
                id(),
                "t",
                id(),
                None,
                &json!([{"event_type": "A", "payload": too_big}]),
            )
        },
    );
    refused(&mut limited, "ES003", "take 102 bytes", |db| {
        append(
            db,
            id(),
            "t",
            id(),
            None,
            &json!([{"event_type": "A", "payload": {}, "metadata": fits}]),
        )
    });

    // Numbers, escapes and non-ASCII count as Postgres prints them, not as sent.
    let tricky: Value = serde_json::from_str(
        r#"{"n": 1e3, "m": 1.50, "s": "tab\tquote\"é€😀\u001f", "nested": {"a": [1.50, true, null]}, "b": 1, "a": 2, "a": 3}"#,
    )
    .unwrap();
    let sent = format!(r#"[{{"event_type": "A", "payload": {tricky}}}]"#);
    let len: i32 = db
        .query_one("SELECT octet_length($1::jsonb::text)", &[&tricky])
        .unwrap()
        .get(0);
    limited
        .batch_execute(&format!("SET forgeerp.max_event_bytes = {len}"))
        .unwrap();
    limited
        .query(
            "SELECT forgeerp.append($1, 't', $2, NULL, $3::text::jsonb)",
            &[&id(), &id(), &sent],
        )
        .unwrap();
    limited
        .batch_execute(&format!("SET forgeerp.max_event_bytes = {}", len - 1))
        .unwrap();
    refused(&mut limited, "ES003", &format!("take {len} bytes"), |db| {
        db.query(
            "SELECT forgeerp.append($1, 't', $2, NULL, $3::text::jsonb)",
            &[&id(), &id(), &sent],
        )
    });

    // The default limit is 1 MiB.
    let big = payload_of_text_length(&mut db, 1_048_576);
    append(
        &mut db,
        id(),
        "t",
        id(),
        None,
        &json!([{"event_type": "A", "payload": big}]),
    )
    .unwrap();
    let bigger = payload_of_text_length(&mut db, 1_048_577);
    refused(&mut db, "ES003", "take 1048577 bytes", |db| {
        append(
            db,
            id(),
            "t",
            id(),
            None,
            &json!([{"event_type": "A", "payload": bigger}]),
        )
    });
}

#[test]
fn limits_can_be_changed_by_superusers_only() {
    let mut db = connect();
    let role = format!("forgeerp_test_role_limits_{}", id().simple());
    db.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN; SELECT forgeerp.grant_usage('{role}')"
    ))
    .unwrap();
    let mut app = connect_as(&role);
    for setting in ["forgeerp.max_batch_events", "forgeerp.max_event_bytes"] {
        // Loaded library first: a placeholder would swallow the SET.
        app.query(
            "SELECT forgeerp.append($1, 't', $2, NULL, $3)",
            &[&id(), &id(), &ticks(1)],
        )
        .unwrap();
        expect_state(app.batch_execute(&format!("SET {setting} = 5")), "42501");
    }
}

#[test]
fn nul_escapes_never_reach_the_store() {
    let mut db = connect();
    // jsonb itself refuses \u0000 (22P05) before append runs; nothing is written.
    refused(&mut db, "22P05", "Unicode escape", |db| {
        db.query(
            "SELECT * FROM forgeerp.append($1, 't', $2, NULL, $3::text::jsonb)",
            &[
                &id(),
                &id(),
                &r#"[{"event_type": "A\u0000", "payload": {}}]"#,
            ],
        )
    });
    refused(&mut db, "22P05", "Unicode escape", |db| {
        db.query(
            "SELECT * FROM forgeerp.append($1, 't', $2, NULL, $3::text::jsonb)",
            &[
                &id(),
                &id(),
                &r#"[{"event_type": "A", "payload": {"k": "\u0000"}}]"#,
            ],
        )
    });
}

#[test]
fn readers_refuse_null_cursors_and_negative_counts() {
    let mut db = connect();
    let t = id();
    refused(&mut db, "ES003", "from_sequence must not be NULL", |db| {
        db.query(
            "SELECT * FROM forgeerp.load_stream($1, $2, NULL)",
            &[&t, &id()],
        )
    });
    refused(
        &mut db,
        "ES003",
        "max_count must not be negative, got -1",
        |db| {
            db.query(
                "SELECT * FROM forgeerp.load_stream($1, $2, 1, -1)",
                &[&t, &id()],
            )
        },
    );
    refused(&mut db, "ES003", "tenant_id must not be NULL", |db| {
        db.query("SELECT * FROM forgeerp.load_stream(NULL, $1)", &[&id()])
    });
    refused(
        &mut db,
        "ES003",
        "tenant_id must not be the nil uuid",
        |db| db.query("SELECT * FROM forgeerp.load_stream($1, $2)", &[&NIL, &id()]),
    );
    refused(&mut db, "ES003", "aggregate_id must not be NULL", |db| {
        db.query("SELECT forgeerp.stream_version($1, NULL)", &[&t])
    });
    refused(
        &mut db,
        "ES003",
        "cursor must not be NULL, got (NULL, 0)",
        |db| db.query("SELECT * FROM forgeerp.read_all(NULL, 0)", &[]),
    );
    refused(
        &mut db,
        "ES003",
        "cursor must not be NULL, got (0, NULL)",
        |db| db.query("SELECT * FROM forgeerp.read_all(0, NULL)", &[]),
    );
    refused(
        &mut db,
        "ES003",
        "max_count must not be negative, got -5",
        |db| db.query("SELECT * FROM forgeerp.read_all(0, 0, -5)", &[]),
    );
    refused(
        &mut db,
        "ES003",
        "tenant_id must not be the nil uuid",
        |db| db.query("SELECT * FROM forgeerp.read_all(0, 0, 10, $1)", &[&NIL]),
    );
}

#[test]
fn checks_run_in_the_contracts_order() {
    let mut db = connect();
    let (tenant, other, item) = (id(), id(), id());
    let taken = id();
    append(
        &mut db,
        tenant,
        "inventory.item",
        item,
        None,
        &json!([event_with_id(taken, "A", json!({}))]),
    )
    .unwrap();

    let mut tx = db.transaction().unwrap();
    tx.execute("SELECT forgeerp.bind_tenant($1)", &[&other])
        .unwrap();
    // bad argument and wrong tenant: ES003
    expect_state(append(&mut tx, tenant, "", item, None, &ticks(1)), "ES003");
    tx.rollback().unwrap();

    let mut tx = db.transaction().unwrap();
    tx.execute("SELECT forgeerp.bind_tenant($1)", &[&other])
        .unwrap();
    // wrong tenant and a duplicate id: ES002
    expect_state(
        append(
            &mut tx,
            tenant,
            "inventory.item",
            item,
            None,
            &json!([event_with_id(taken, "B", json!({}))]),
        ),
        "ES002",
    );
    tx.rollback().unwrap();

    // duplicate id, wrong type and wrong version: ES004
    expect_state(
        append(
            &mut db,
            tenant,
            "sales.order",
            item,
            Some(7),
            &json!([event_with_id(taken, "B", json!({}))]),
        ),
        "ES004",
    );
    // wrong type and wrong version: ES005
    expect_state(
        append(&mut db, tenant, "sales.order", item, Some(7), &ticks(1)),
        "ES005",
    );
    // wrong version only: ES001
    expect_state(
        append(&mut db, tenant, "inventory.item", item, Some(7), &ticks(1)),
        "ES001",
    );
    assert_eq!(events_of(&mut db, tenant), 1);
}

#[test]
fn many_refused_appends_leave_the_backend_healthy() {
    // Errors are raised with Postgres' own ereport from Rust: a session that
    // sees thousands of them must stay usable, and so must the server.
    let mut db = connect();
    for i in 0..2000 {
        let events = if i % 2 == 0 {
            json!({"x": i})
        } else {
            json!([{"event_type": "", "payload": {}}])
        };
        expect_state(append(&mut db, id(), "t", id(), None, &events), "ES003");
    }
    let (tenant, item) = (id(), id());
    append(&mut db, tenant, "t", item, None, &ticks(2)).unwrap();
    assert_eq!(events_of(&mut db, tenant), 2);
}

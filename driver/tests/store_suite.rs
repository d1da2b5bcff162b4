//! One behaviour suite, written once, run against both stores: the in-memory
//! store must follow exactly the rules of the Postgres store.

mod common;

use forgeerp_infra::{
    AggregateId, EventId, EventStore, EventStoreError, ExpectedVersion, FeedPosition,
    InMemoryEventStore, TenantId, UncommittedEvent,
};
use serde_json::json;

fn event(tenant: TenantId, aggregate: AggregateId, n: i64) -> UncommittedEvent {
    UncommittedEvent::new(
        tenant,
        "inventory.item",
        aggregate,
        "StockReceived",
        json!({"quantity": n}),
    )
}

fn batch(tenant: TenantId, aggregate: AggregateId, n: i64) -> Vec<UncommittedEvent> {
    (1..=n).map(|i| event(tenant, aggregate, i)).collect()
}

async fn appended_events_come_back_in_order_with_their_fields<S: EventStore>(store: &S) {
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let occurred = chrono::DateTime::parse_from_rfc3339("2024-02-29T10:30:00.123456Z")
        .unwrap()
        .to_utc();
    let first = event(tenant, item, 1)
        .with_metadata(json!({"correlation_id": "c-1"}))
        .with_event_version(2)
        .occurred_at(occurred);
    let stored = store
        .append(
            vec![first.clone(), event(tenant, item, 2)],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    assert_eq!(
        stored.iter().map(|e| e.sequence_number).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(stored[0].global_position < stored[1].global_position);
    assert_eq!(stored[0].transaction_id, stored[1].transaction_id);

    let loaded = store.load_stream(tenant, item).await.unwrap();
    assert_eq!(loaded, stored);
    assert_eq!(loaded[0].event_id, first.event_id);
    assert_eq!(loaded[0].metadata, json!({"correlation_id": "c-1"}));
    assert_eq!(loaded[0].event_version, 2);
    assert_eq!(loaded[0].occurred_at, occurred);
    assert_eq!(loaded[1].payload, json!({"quantity": 2}));
    assert_eq!(store.stream_version(tenant, item).await.unwrap(), 2);
    assert_eq!(
        store.load_stream_from(tenant, item, 2).await.unwrap(),
        stored[1..].to_vec()
    );
    assert!(store
        .load_stream(tenant, AggregateId::random())
        .await
        .unwrap()
        .is_empty());
}

async fn expected_versions_are_enforced_with_expected_and_actual<S: EventStore>(store: &S) {
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let conflict = |expected, actual| EventStoreError::Concurrency {
        aggregate_id: item,
        expected,
        actual,
    };
    let refused = store
        .append(batch(tenant, item, 1), ExpectedVersion::StreamExists)
        .await
        .unwrap_err();
    assert_eq!(refused, conflict(ExpectedVersion::StreamExists, 0));
    let refused = store
        .append(batch(tenant, item, 1), ExpectedVersion::Exact(1))
        .await
        .unwrap_err();
    assert_eq!(refused, conflict(ExpectedVersion::Exact(1), 0));
    store
        .append(batch(tenant, item, 2), ExpectedVersion::NoStream)
        .await
        .unwrap();
    let refused = store
        .append(batch(tenant, item, 1), ExpectedVersion::NoStream)
        .await
        .unwrap_err();
    assert_eq!(refused, conflict(ExpectedVersion::NoStream, 2));
    let refused = store
        .append(batch(tenant, item, 1), ExpectedVersion::Exact(1))
        .await
        .unwrap_err();
    assert_eq!(refused, conflict(ExpectedVersion::Exact(1), 2));
    store
        .append(batch(tenant, item, 1), ExpectedVersion::Exact(2))
        .await
        .unwrap();
    store
        .append(batch(tenant, item, 1), ExpectedVersion::StreamExists)
        .await
        .unwrap();
    store
        .append(batch(tenant, item, 1), ExpectedVersion::Any)
        .await
        .unwrap();
    assert_eq!(store.stream_version(tenant, item).await.unwrap(), 5);
}

async fn a_stream_keeps_its_aggregate_type<S: EventStore>(store: &S) {
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    store
        .append(batch(tenant, item, 1), ExpectedVersion::Any)
        .await
        .unwrap();
    let mut other = event(tenant, item, 1);
    other.aggregate_type = "sales.order".into();
    let refused = store
        .append(vec![other], ExpectedVersion::Any)
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        EventStoreError::AggregateTypeMismatch {
            aggregate_id: item,
            requested: "sales.order".into(),
            stored: "inventory.item".into()
        }
    );
}

async fn a_retry_returns_the_stored_events_and_writes_nothing<S: EventStore>(store: &S) {
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let events = batch(tenant, item, 3);
    let first = store
        .append(events.clone(), ExpectedVersion::NoStream)
        .await
        .unwrap();
    let again = store
        .append(events, ExpectedVersion::NoStream)
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(store.stream_version(tenant, item).await.unwrap(), 3);
}

async fn reused_event_ids_are_duplicates<S: EventStore>(store: &S) {
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let original = event(tenant, item, 1);
    store
        .append(vec![original.clone()], ExpectedVersion::Any)
        .await
        .unwrap();
    let mut changed = original.clone();
    changed.payload = json!({"quantity": 99});
    assert!(matches!(
        store.append(vec![changed], ExpectedVersion::Any).await,
        Err(EventStoreError::DuplicateEvent(_))
    ));
    let elsewhere = UncommittedEvent {
        aggregate_id: AggregateId::random(),
        ..original.clone()
    };
    assert!(matches!(
        store.append(vec![elsewhere], ExpectedVersion::Any).await,
        Err(EventStoreError::DuplicateEvent(_))
    ));
    let twice = event(tenant, AggregateId::random(), 1).with_event_id(EventId::random());
    let refused = store
        .append(vec![twice.clone(), twice], ExpectedVersion::Any)
        .await;
    assert!(
        matches!(refused, Err(EventStoreError::DuplicateEvent(_))),
        "{refused:?}"
    );
    // The same id under another tenant is another event.
    let other_tenant = UncommittedEvent {
        tenant_id: TenantId::random(),
        ..original
    };
    store
        .append(vec![other_tenant], ExpectedVersion::Any)
        .await
        .unwrap();
}

async fn batches_must_target_one_stream_of_one_tenant<S: EventStore>(store: &S) {
    let item = AggregateId::random();
    let mixed = vec![
        event(TenantId::random(), item, 1),
        event(TenantId::random(), item, 2),
    ];
    assert!(matches!(
        store.append(mixed, ExpectedVersion::Any).await,
        Err(EventStoreError::TenantIsolation(_))
    ));
    let tenant = TenantId::random();
    let two_streams = vec![
        event(tenant, item, 1),
        event(tenant, AggregateId::random(), 2),
    ];
    assert!(matches!(
        store.append(two_streams, ExpectedVersion::Any).await,
        Err(EventStoreError::InvalidAppend(_))
    ));
    assert!(matches!(
        store.append(vec![], ExpectedVersion::Any).await,
        Err(EventStoreError::InvalidAppend(_))
    ));
}

async fn invalid_events_are_refused_and_store_nothing<S: EventStore>(store: &S) {
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let base = || event(tenant, item, 1);
    let bad: Vec<UncommittedEvent> = vec![
        UncommittedEvent {
            event_type: String::new(),
            ..base()
        },
        UncommittedEvent {
            event_type: "e".repeat(256),
            ..base()
        },
        UncommittedEvent {
            aggregate_type: String::new(),
            ..base()
        },
        UncommittedEvent {
            payload: json!([1, 2]),
            ..base()
        },
        UncommittedEvent {
            metadata: json!("actor"),
            ..base()
        },
        UncommittedEvent {
            event_version: 0,
            ..base()
        },
        UncommittedEvent {
            payload: json!({"text": "nul\u{0}byte"}),
            ..base()
        },
    ];
    for event in bad {
        let result = store
            .append(vec![base(), event.clone()], ExpectedVersion::Any)
            .await;
        assert!(
            matches!(result, Err(EventStoreError::InvalidAppend(_))),
            "{event:?}: {result:?}"
        );
    }
    let too_many = (0..10_001).map(|i| event(tenant, item, i)).collect();
    assert!(matches!(
        store.append(too_many, ExpectedVersion::Any).await,
        Err(EventStoreError::InvalidAppend(_))
    ));
    let huge = UncommittedEvent {
        payload: json!({"blob": "x".repeat(1_100_000)}),
        ..base()
    };
    assert!(matches!(
        store.append(vec![huge], ExpectedVersion::Any).await,
        Err(EventStoreError::InvalidAppend(_))
    ));
    assert_eq!(store.stream_version(tenant, item).await.unwrap(), 0);
}

async fn the_feed_pages_through_a_tenant_exactly_once<S: EventStore>(store: &S) {
    let (tenant, other) = (TenantId::random(), TenantId::random());
    let mut written = Vec::new();
    for round in 0..5 {
        let item = AggregateId::random();
        written.extend(
            store
                .append(batch(tenant, item, 1 + round % 3), ExpectedVersion::Any)
                .await
                .unwrap(),
        );
        store
            .append(batch(other, item, 1), ExpectedVersion::Any)
            .await
            .unwrap();
    }
    // Page like a projection. Other tests' transactions may hold the feed
    // back for a moment (by design), so keep paging until all is seen.
    let mut cursor = FeedPosition::default();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while seen.len() < written.len() && std::time::Instant::now() < deadline {
        let page = store.read_all(cursor, 2, Some(tenant)).await.unwrap();
        match page.last() {
            Some(last) => cursor = last.position(),
            None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
        seen.extend(page);
    }
    assert!(
        store
            .read_all(cursor, 2, Some(tenant))
            .await
            .unwrap()
            .is_empty(),
        "nothing after the last event"
    );
    assert_eq!(seen, written);
    let everyone = store
        .read_all(FeedPosition::default(), 1_000_000, None)
        .await
        .unwrap();
    assert!(everyone.iter().any(|e| e.tenant_id == other));
    assert!(everyone
        .windows(2)
        .all(|w| w[0].position() < w[1].position()));
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod in_memory {
            $(#[tokio::test]
            async fn $case() {
                super::$case(&forgeerp_infra::InMemoryEventStore::new()).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() {
                super::$case(&super::common::pg_store().await).await;
            })*
        }
    };
}

suite!(
    appended_events_come_back_in_order_with_their_fields,
    expected_versions_are_enforced_with_expected_and_actual,
    a_stream_keeps_its_aggregate_type,
    a_retry_returns_the_stored_events_and_writes_nothing,
    reused_event_ids_are_duplicates,
    batches_must_target_one_stream_of_one_tenant,
    invalid_events_are_refused_and_store_nothing,
    the_feed_pages_through_a_tenant_exactly_once,
);

#[tokio::test]
async fn the_database_stops_a_wrong_tenant_that_trusted_code_passes_along() {
    // PgEventStore binds each call's transaction to its tenant: the SQL
    // function sees the bound tenant and the argument agree. Simulate a bug
    // that binds one tenant and names another by calling the SQL directly.
    let url = common::database_url().await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let error = client
        .query(
            "SELECT a.* FROM forgeerp.append((SELECT $1::uuid FROM forgeerp.bind_tenant($2::uuid)), 't', $3, NULL, '[{\"event_type\": \"A\", \"payload\": {}}]') AS a",
            &[&uuid::Uuid::new_v4(), &uuid::Uuid::new_v4(), &uuid::Uuid::new_v4()],
        )
        .await
        .unwrap_err();
    assert_eq!(error.code().unwrap().code(), "ES002");
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_not_a_panic() {
    let store = forgeerp_infra::PgEventStore::connect(
        "host=127.0.0.1 port=1 user=nobody connect_timeout=2",
        1,
    )
    .unwrap();
    let result = store
        .stream_version(TenantId::random(), AggregateId::random())
        .await;
    assert!(
        matches!(result, Err(EventStoreError::Connection(_))),
        "{result:?}"
    );
    assert!(matches!(
        forgeerp_infra::PgEventStore::connect("this is not a url ===", 1),
        Err(EventStoreError::Connection(_))
    ));
    let _ = InMemoryEventStore::new();
}

#[tokio::test]
async fn database_errors_map_to_their_variants_by_sqlstate() {
    let url = common::database_url().await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let error = |sql: &'static str| {
        let client = &client;
        async move { EventStoreError::from(client.batch_execute(sql).await.unwrap_err()) }
    };
    assert!(matches!(
        error("DELETE FROM forgeerp.events").await,
        EventStoreError::AppendOnly(_)
    ));
    assert!(matches!(
        error("TRUNCATE forgeerp.events").await,
        EventStoreError::AppendOnly(_)
    ));
    assert!(matches!(
        error("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001'; END $$").await,
        EventStoreError::TransactionConflict(_)
    ));
    assert!(matches!(
        error("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END $$").await,
        EventStoreError::TransactionConflict(_)
    ));
    assert!(matches!(
        error("SELECT forgeerp.bind_tenant(NULL)").await,
        EventStoreError::InvalidAppend(_)
    ));
    match error("SELECT 1/0").await {
        EventStoreError::Database { sqlstate, .. } => assert_eq!(sqlstate, "22012"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        error("BEGIN; SELECT forgeerp.bind_tenant(gen_random_uuid()); SELECT forgeerp.bind_tenant(gen_random_uuid())").await,
        EventStoreError::TenantIsolation(_)
    ));
}

#[tokio::test]
async fn a_stored_row_the_driver_cannot_represent_is_a_decode_error() {
    // Only a superuser writing around `append` can store a nil aggregate id;
    // reading it back must be an error, not a panic. In a database of its
    // own: the other tests read the whole feed.
    let url = common::fresh_database("_decode").await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let tenant = TenantId::random();
    client
        .execute(
            "INSERT INTO forgeerp.events (transaction_id, tenant_id, aggregate_type, aggregate_id, sequence_number,
                                          event_id, event_type, event_version, payload, occurred_at, recorded_at)
             VALUES (pg_current_xact_id()::text::bigint, $1, 't', '00000000-0000-0000-0000-000000000000', 1,
                     gen_random_uuid(), 'A', 1, '{}', now(), now())",
            &[&tenant.as_uuid()],
        )
        .await
        .unwrap();
    let store = forgeerp_infra::PgEventStore::connect(&url, 1).unwrap();
    // The feed shows the row once no older transaction of the cluster is in
    // flight (other tests are appending meanwhile).
    let mut result = Ok(Vec::new());
    for _ in 0..100 {
        result = store
            .read_all(FeedPosition::default(), 10, Some(tenant))
            .await;
        if !matches!(&result, Ok(rows) if rows.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        matches!(result, Err(EventStoreError::Decode(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_conflict_on_a_pool_of_one_connection_is_reported_not_a_hang() {
    // The actual version is read back after the refused append: with the
    // append's connection still held, a pool of one would wait forever.
    let store =
        forgeerp_infra::PgEventStore::connect(&common::database_url().await, 1).expect("pool");
    let (tenant, aggregate) = (TenantId::random(), AggregateId::random());
    store
        .append(batch(tenant, aggregate, 2), ExpectedVersion::NoStream)
        .await
        .unwrap();
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        store.append(batch(tenant, aggregate, 1), ExpectedVersion::Exact(5)),
    )
    .await
    .expect("answered within 10 s");
    match refused {
        Err(EventStoreError::Concurrency {
            expected, actual, ..
        }) => {
            assert_eq!((expected, actual), (ExpectedVersion::Exact(5), 2))
        }
        other => panic!("{other:?}"),
    }
}

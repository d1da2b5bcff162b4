//! Events that evolve and commands that run once, on both stores:
//! upcasters in the dispatcher and the projection worker, and command ids.

mod common;

use forgeerp_infra::inventory::{upcasters, InventoryCommand as C, InventoryItem};
use forgeerp_infra::upcasting::{UpcastError, Upcasters};
use forgeerp_infra::{
    AggregateId, CommandDispatcher, DispatchError, EventId, EventStore, EventStoreError,
    ExpectedVersion, InMemoryEventStore, InventoryStockProjection, PgEventStore, PgNotifyEventBus,
    ProjectionWorker, StoredEvent, TenantId, UncommittedEvent, WorkerConfig,
};
use serde_json::{json, Value};
use std::time::Duration;

fn v1(tenant: TenantId, item: AggregateId, event_type: &str, payload: Value) -> UncommittedEvent {
    UncommittedEvent::new(tenant, "inventory.item", item, event_type, payload)
}

/// An item written before `StockReceived` had lots (version 1 events only).
async fn old_item<S: EventStore>(store: &S) -> (TenantId, AggregateId) {
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    store
        .append(
            vec![
                v1(
                    tenant,
                    item,
                    "ItemCreated",
                    json!({"sku": "OLD-1", "name": "Old"}),
                ),
                v1(tenant, item, "StockReceived", json!({"quantity": 7})),
            ],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    (tenant, item)
}

/// A registry with two more versions of `StockReceived` than the inventory's:
/// v2 → v3 renames `quantity` to `units`, v3 → v4 puts it back (so the
/// aggregate, which reads `quantity`, works only when every step ran).
fn three_steps() -> Upcasters {
    Upcasters::builder()
        .step("StockReceived", 1, |mut p| {
            p["lot"] = Value::Null;
            Ok(p)
        })
        .step("StockReceived", 2, |mut p| {
            p["units"] = p["quantity"].take();
            p.as_object_mut().unwrap().remove("quantity");
            Ok(p)
        })
        .step("StockReceived", 3, |mut p| {
            p["quantity"] = p["units"].take();
            p.as_object_mut().unwrap().remove("units");
            Ok(p)
        })
        .declare("ItemCreated")
        .build()
        .unwrap()
}

async fn old_streams_rehydrate_after_new_versions<S: EventStore>(store: S) {
    let (tenant, item) = old_item(&store).await;
    let dispatcher = CommandDispatcher::new(store).with_upcasters(three_steps());
    let (state, version) = dispatcher
        .load::<InventoryItem>(tenant, item)
        .await
        .unwrap();
    assert_eq!((state.on_hand, version), (7, 2));
    // New events are written at the current version, and read back as such.
    let done = dispatcher
        .dispatch::<InventoryItem>(
            tenant,
            item,
            &C::ReceiveLot {
                quantity: 3,
                lot: "L-9".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.events[0].event_version, 4);
    assert_eq!(done.events[0].payload, json!({"quantity": 3, "lot": "L-9"}));
    let stored = dispatcher.store().load_stream(tenant, item).await.unwrap();
    // The stored events are never changed: the old one is still version 1.
    assert_eq!(stored[1].event_version, 1);
    assert_eq!(stored[1].payload, json!({"quantity": 7}));
    let (state, _) = dispatcher
        .load::<InventoryItem>(tenant, item)
        .await
        .unwrap();
    assert_eq!(state.on_hand, 10);
}

#[tokio::test]
async fn old_streams_rehydrate_after_new_versions_in_memory() {
    old_streams_rehydrate_after_new_versions(InMemoryEventStore::new()).await;
}

#[tokio::test]
async fn old_streams_rehydrate_after_new_versions_postgres() {
    old_streams_rehydrate_after_new_versions(common::pg_store().await).await;
}

#[test]
fn version_1_of_stock_received_reads_back_with_no_lot() {
    let old = v1(
        TenantId::random(),
        AggregateId::random(),
        "StockReceived",
        json!({"quantity": 5}),
    )
    .into_stored(2, 1, 1, chrono::Utc::now());
    let read = upcasters().upcast(old).unwrap();
    assert_eq!(read.event_version, 2);
    assert_eq!(read.payload, json!({"quantity": 5, "lot": null}));
}

async fn a_version_newer_than_known_is_an_error_not_a_misread<S: EventStore>(store: S) {
    let (tenant, item) = old_item(&store).await;
    let future = v1(
        tenant,
        item,
        "StockReceived",
        json!({"quantity": 1, "lot": "X", "vat": 19}),
    )
    .with_event_version(9);
    let future_id = future.event_id;
    store
        .append(vec![future], ExpectedVersion::Exact(2))
        .await
        .unwrap();
    let dispatcher = CommandDispatcher::new(store).with_upcasters(upcasters());
    let error = dispatcher
        .load::<InventoryItem>(tenant, item)
        .await
        .unwrap_err();
    match error {
        DispatchError::Upcast(UpcastError::UnknownVersion {
            event_id,
            event_type,
            version,
            known,
        }) => {
            assert_eq!(
                (event_id, event_type.as_str(), version, known),
                (future_id, "StockReceived", 9, 2)
            );
        }
        other => panic!("{other}"),
    }
    // The dispatcher keeps working for other streams.
    let fresh = AggregateId::random();
    dispatcher
        .dispatch::<InventoryItem>(
            tenant,
            fresh,
            &C::CreateItem {
                sku: "N".into(),
                name: "N".into(),
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_version_newer_than_known_is_an_error_in_memory() {
    a_version_newer_than_known_is_an_error_not_a_misread(InMemoryEventStore::new()).await;
}

#[tokio::test]
async fn a_version_newer_than_known_is_an_error_postgres() {
    a_version_newer_than_known_is_an_error_not_a_misread(common::pg_store().await).await;
}

#[tokio::test]
async fn a_failing_upcaster_is_an_error_for_that_event_and_the_process_goes_on() {
    let store = InMemoryEventStore::new();
    let (tenant, item) = old_item(&store).await;
    let panics = Upcasters::builder()
        .step("StockReceived", 1, |_| panic!("a bug in a step"))
        .build()
        .unwrap();
    let dispatcher = CommandDispatcher::new(store).with_upcasters(panics);
    let error = dispatcher
        .load::<InventoryItem>(tenant, item)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DispatchError::Upcast(UpcastError::Failed { event_type, version: 1, .. }) if event_type == "StockReceived"),
        "{error}"
    );
}

/// Runs `projection` in a worker over `url` with `upcasters` until its
/// checkpoint passes `through`, then stops it.
async fn project<P: forgeerp_infra::PgProjection>(
    url: &str,
    store: &PgEventStore,
    projection: P,
    upcasters: Upcasters,
    through: &StoredEvent,
) {
    let name = projection.name().to_string();
    let worker = ProjectionWorker::spawn(
        store.pool().clone(),
        PgNotifyEventBus::new(url),
        projection,
        None,
        WorkerConfig {
            upcasters,
            ..WorkerConfig::default()
        },
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while ProjectionWorker::checkpoint(store.pool(), &name, None)
        .await
        .unwrap()
        < through.position()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown().await.unwrap();
}

#[tokio::test]
async fn projections_see_the_current_version_and_park_what_they_cannot_read() {
    let (url, store) = common::migrated_database("_evolution", 4).await;
    let (tenant, item) = old_item(&store).await;
    let future = v1(tenant, item, "StockReceived", json!({"quantity": 100})).with_event_version(3);
    let future_id = future.event_id;
    let stored = store
        .append(vec![future], ExpectedVersion::Exact(2))
        .await
        .unwrap();
    let after = store
        .append(
            vec![v1(tenant, item, "StockShipped", json!({"quantity": 2}))],
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    let _ = stored;
    project(
        &url,
        &store,
        InventoryStockProjection,
        upcasters(),
        &after[0],
    )
    .await;
    let stock = InventoryStockProjection::stock(store.pool(), tenant)
        .await
        .unwrap();
    // 7 received (a version-1 event, read as version 2); the version-3 event
    // is parked, and so is the shipment after it: the stream's stock cannot
    // be known past an event nobody can read.
    assert_eq!(stock.len(), 1);
    assert_eq!((stock[0].0, stock[0].1.on_hand), (item, 7));
    let client = store.pool().get().await.unwrap();
    let parked = client
        .query(
            "SELECT event_id, error FROM forgeerp_read.parked_events WHERE projection = 'inventory_stock' ORDER BY sequence_number",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(parked.len(), 2);
    assert_eq!(EventId(parked[0].get(0)), future_id);
    let error: String = parked[0].get(1);
    assert!(error.contains("StockReceived version 3"), "{error}");
}

async fn a_retried_command_is_carried_out_once<S: EventStore>(store: S) {
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let dispatcher = CommandDispatcher::new(store).with_cache_capacity(0);
    dispatcher
        .dispatch::<InventoryItem>(
            tenant,
            item,
            &C::CreateItem {
                sku: "S".into(),
                name: "N".into(),
            },
        )
        .await
        .unwrap();
    dispatcher
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 5 })
        .await
        .unwrap();
    let command_id = uuid::Uuid::new_v4();
    let ship = C::ShipStock { quantity: 5 };
    // The first attempt commits; its reply is lost (dropped here).
    let first = dispatcher
        .dispatch_once::<InventoryItem>(tenant, item, command_id, &ship, json!({}))
        .await
        .unwrap();
    assert!(!first.repeated);
    assert_eq!(
        first.events[0].event_id,
        EventId::of_command(tenant, command_id, 0)
    );
    let first_events = first.events.clone();
    drop(first);
    // The retry: the stock is gone now, so deciding again would refuse; it
    // returns the first outcome instead, and appends nothing.
    let retry = dispatcher
        .dispatch_once::<InventoryItem>(tenant, item, command_id, &ship, json!({}))
        .await
        .unwrap();
    assert!(retry.repeated);
    assert_eq!(retry.events, first_events);
    assert_eq!(retry.state.on_hand, 0);
    // Again after the state moved on in a way a new decision would accept.
    dispatcher
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 50 })
        .await
        .unwrap();
    let again = dispatcher
        .dispatch_once::<InventoryItem>(tenant, item, command_id, &ship, json!({}))
        .await
        .unwrap();
    assert!(again.repeated);
    assert_eq!(again.events, first_events);
    assert_eq!(
        dispatcher
            .store()
            .load_stream(tenant, item)
            .await
            .unwrap()
            .len(),
        4
    );
    // The same command id on another stream: its ids are taken, ES004.
    let other = AggregateId::random();
    let error = dispatcher
        .dispatch_once::<InventoryItem>(
            tenant,
            other,
            command_id,
            &C::CreateItem {
                sku: "T".into(),
                name: "T".into(),
            },
            json!({}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            DispatchError::Store(EventStoreError::DuplicateEvent(_))
        ),
        "{error}"
    );
    // Without a command id, nothing changes: the same command twice is two.
    for _ in 0..2 {
        dispatcher
            .dispatch::<InventoryItem>(tenant, item, &C::ShipStock { quantity: 1 })
            .await
            .unwrap();
    }
    assert_eq!(
        dispatcher
            .store()
            .load_stream(tenant, item)
            .await
            .unwrap()
            .len(),
        6
    );
}

#[tokio::test]
async fn a_retried_command_is_carried_out_once_in_memory() {
    a_retried_command_is_carried_out_once(InMemoryEventStore::new()).await;
}

#[tokio::test]
async fn a_retried_command_is_carried_out_once_postgres() {
    a_retried_command_is_carried_out_once(common::pg_store().await).await;
}

async fn two_processes_with_one_command_id_append_once<S: EventStore + Clone + 'static>(store: S) {
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let setup = CommandDispatcher::new(store.clone());
    setup
        .dispatch::<InventoryItem>(
            tenant,
            item,
            &C::CreateItem {
                sku: "S".into(),
                name: "N".into(),
            },
        )
        .await
        .unwrap();
    setup
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 3 })
        .await
        .unwrap();
    let command_id = uuid::Uuid::new_v4();
    // Two dispatchers (two processes: no shared cache), released together.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let dispatcher = CommandDispatcher::new(store);
                let _ = dispatcher
                    .load::<InventoryItem>(tenant, item)
                    .await
                    .unwrap();
                barrier.wait().await;
                dispatcher
                    .dispatch_once::<InventoryItem>(
                        tenant,
                        item,
                        command_id,
                        &C::ShipStock { quantity: 3 },
                        json!({}),
                    )
                    .await
                    .unwrap()
                    .events
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(
        outcomes[0], outcomes[1],
        "both callers get the same outcome"
    );
    assert_eq!(outcomes[0].len(), 1);
    let stream = store.load_stream(tenant, item).await.unwrap();
    assert_eq!(stream.len(), 3, "one append");
}

#[tokio::test]
async fn two_processes_with_one_command_id_append_once_in_memory() {
    two_processes_with_one_command_id_append_once(std::sync::Arc::new(InMemoryEventStore::new()))
        .await;
}

#[tokio::test]
async fn two_processes_with_one_command_id_append_once_postgres() {
    two_processes_with_one_command_id_append_once(std::sync::Arc::new(common::pg_store().await))
        .await;
}

/// A projection that remembers the payloads it was given, in feed order.
#[derive(Clone, Default)]
struct Recording(std::sync::Arc<std::sync::Mutex<Vec<(u32, Value)>>>);

impl forgeerp_infra::PgProjection for Recording {
    fn name(&self) -> &str {
        "recording"
    }

    async fn apply(
        &self,
        _tx: &tokio_postgres::Transaction<'_>,
        event: &StoredEvent,
    ) -> Result<(), forgeerp_infra::ProjectionError> {
        self.0
            .lock()
            .unwrap()
            .push((event.event_version, event.payload.clone()));
        Ok(())
    }
}

#[tokio::test]
async fn a_projection_sees_version_1_events_through_the_whole_chain() {
    let (url, store) = common::migrated_database("_evolution_chain", 4).await;
    let (tenant, item) = old_item(&store).await;
    let last = store
        .load_stream(tenant, item)
        .await
        .unwrap()
        .pop()
        .unwrap();
    let seen = Recording::default();
    project(&url, &store, seen.clone(), three_steps(), &last).await;
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (1, json!({"sku": "OLD-1", "name": "Old"})),
            (4, json!({"quantity": 7, "lot": null})),
        ]
    );
}

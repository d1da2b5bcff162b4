//! The projection worker and the inventory stock projection, end to end on
//! the real cluster: dispatcher → feed → NOTIFY → worker → read model.

mod common;

use forgeerp_infra::event_bus::pg_notify::SubscriptionConfig;
use forgeerp_infra::inventory::{InventoryCommand as C, InventoryItem};
use forgeerp_infra::{
    AggregateId, CommandDispatcher, EventStore, ExpectedVersion, FeedPosition,
    InventoryStockProjection, PgEventStore, PgNotifyEventBus, PgProjection, ProjectionError,
    ProjectionWorker, StockLevel, StoredEvent, TenantId, UncommittedEvent, WorkerConfig,
};
use serde_json::json;
use std::time::{Duration, Instant};

/// A fresh database per test: workers follow the whole feed.
async fn setup(suffix: &str) -> (String, PgEventStore, PgNotifyEventBus) {
    let (url, store) = common::migrated_database(suffix, 4).await;
    let bus = PgNotifyEventBus::new(url.clone()).with_config(SubscriptionConfig {
        poll_interval: Duration::from_millis(200),
        ..SubscriptionConfig::default()
    });
    (url, store, bus)
}

fn quick() -> WorkerConfig {
    WorkerConfig {
        max_attempts: 3,
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..WorkerConfig::default()
    }
}

/// Waits until the projection's checkpoint reaches `target`.
async fn caught_up(
    store: &PgEventStore,
    name: &str,
    tenant: Option<TenantId>,
    target: FeedPosition,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let at = ProjectionWorker::checkpoint(store.pool(), name, tenant)
            .await
            .unwrap();
        if at >= target {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "checkpoint {at:?} never reached {target:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn last_position(store: &PgEventStore) -> FeedPosition {
    let client = store.pool().get().await.unwrap();
    let row = client
        .query_one("SELECT coalesce(max(transaction_id), 0), coalesce(max(global_position), 0) FROM forgeerp.events", &[])
        .await
        .unwrap();
    // The last event in feed order has the largest transaction id; its position is the max among those.
    let txid: i64 = row.get(0);
    let pos: i64 = client
        .query_one("SELECT coalesce(max(global_position), 0) FROM forgeerp.events WHERE transaction_id = $1", &[&txid])
        .await
        .unwrap()
        .get(0);
    FeedPosition {
        transaction_id: txid,
        global_position: pos,
    }
}

async fn expect_stock(
    store: &PgEventStore,
    tenant: TenantId,
    item: AggregateId,
    on_hand: i64,
    reserved: i64,
) -> StockLevel {
    let stock = InventoryStockProjection::stock(store.pool(), tenant)
        .await
        .unwrap();
    let (_, level) = stock
        .into_iter()
        .find(|(id, _)| *id == item)
        .expect("item projected");
    assert_eq!(
        (level.on_hand, level.reserved, level.available),
        (on_hand, reserved, on_hand - reserved)
    );
    level
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dispatched_commands_reach_the_stock_projection() {
    let (_, store, bus) = setup("_proj_e2e").await;
    let worker = ProjectionWorker::spawn(
        store.pool().clone(),
        bus,
        InventoryStockProjection,
        None,
        quick(),
    );
    let dispatcher = CommandDispatcher::new(store.clone());
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    for command in [
        C::CreateItem {
            sku: "BOLT-M8".into(),
            name: "M8 bolt".into(),
        },
        C::ReceiveStock { quantity: 100 },
        C::ReserveStock { quantity: 30 },
        C::ShipStock { quantity: 40 },
    ] {
        dispatcher
            .dispatch::<InventoryItem>(tenant, item, &command)
            .await
            .unwrap();
    }
    caught_up(&store, "inventory_stock", None, last_position(&store).await).await;
    let level = expect_stock(&store, tenant, item, 60, 0).await;
    assert_eq!(level.sku.as_deref(), Some("BOLT-M8"));
    assert_eq!(level.last_sequence, 4);
    let history = InventoryStockProjection::history(store.pool(), tenant, item)
        .await
        .unwrap();
    let on_hand: Vec<i64> = history.iter().map(|p| p.on_hand).collect();
    assert_eq!(on_hand, vec![0, 100, 100, 60]);
    let final_position = worker.shutdown().await.unwrap();
    assert_eq!(
        final_position,
        last_position(&store).await,
        "shutdown returns the saved checkpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_stopped_and_restarted_mid_stream_counts_nothing_twice() {
    let (_, store, bus) = setup("_proj_restart").await;
    let dispatcher = CommandDispatcher::new(store.clone());
    let (tenant, item) = (TenantId::random(), AggregateId::random());
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
    let worker = ProjectionWorker::spawn(
        store.pool().clone(),
        bus.clone(),
        InventoryStockProjection,
        None,
        quick(),
    );
    for _ in 0..20 {
        dispatcher
            .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 1 })
            .await
            .unwrap();
    }
    // The first worker got somewhere before it stopped: it applied the first
    // 21 events and saved that checkpoint on its way out.
    let first_half = last_position(&store).await;
    caught_up(&store, "inventory_stock", None, first_half).await;
    expect_stock(&store, tenant, item, 20, 0).await;
    assert_eq!(worker.shutdown().await.unwrap(), first_half);
    for _ in 0..20 {
        dispatcher
            .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 1 })
            .await
            .unwrap();
    }
    let worker = ProjectionWorker::spawn(
        store.pool().clone(),
        bus,
        InventoryStockProjection,
        None,
        quick(),
    );
    caught_up(&store, "inventory_stock", None, last_position(&store).await).await;
    expect_stock(&store, tenant, item, 40, 0).await;
    assert_eq!(
        InventoryStockProjection::history(store.pool(), tenant, item)
            .await
            .unwrap()
            .len(),
        41
    );
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_are_ignored_and_gaps_are_healed_from_the_stream() {
    let (_, store, _) = setup("_proj_dup").await;
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let dispatcher = CommandDispatcher::new(store.clone());
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
    for quantity in [5, 7, 11] {
        dispatcher
            .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity })
            .await
            .unwrap();
    }
    let events = store.load_stream(tenant, item).await.unwrap();
    let apply = |event: StoredEvent| {
        let pool = store.pool().clone();
        async move {
            let mut client = pool.get().await.unwrap();
            let tx = client.transaction().await.unwrap();
            tx.execute(
                "SELECT forgeerp.bind_tenant($1)",
                &[&event.tenant_id.as_uuid()],
            )
            .await
            .unwrap();
            InventoryStockProjection.apply(&tx, &event).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    apply(events[0].clone()).await;
    apply(events[0].clone()).await; // duplicate
    apply(events[3].clone()).await; // gap: 2 and 3 are read from the stream first
    apply(events[2].clone()).await; // late duplicate
    expect_stock(&store, tenant, item, 23, 0).await;
    let history: Vec<u64> = InventoryStockProjection::history(store.pool(), tenant, item)
        .await
        .unwrap()
        .iter()
        .map(|p| p.sequence_number)
        .collect();
    assert_eq!(history, vec![1, 2, 3, 4], "in order, once each");
}

/// Fails on every event of type `Poison`; projects nothing.
struct Picky;

impl PgProjection for Picky {
    fn name(&self) -> &str {
        "picky"
    }
    async fn apply(
        &self,
        _: &tokio_postgres::Transaction<'_>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        if event.event_type == "Poison" {
            Err(ProjectionError::Decode("cannot digest Poison".into()))
        } else {
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_event_is_parked_and_the_worker_goes_on() {
    let (_, store, bus) = setup("_proj_poison").await;
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let event = |event_type: &str| UncommittedEvent::new(tenant, "t", item, event_type, json!({}));
    store
        .append(
            vec![event("Fine"), event("Poison"), event("Fine")],
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    let worker = ProjectionWorker::spawn(store.pool().clone(), bus, Picky, None, quick());
    caught_up(&store, "picky", None, last_position(&store).await).await;
    let client = store.pool().get().await.unwrap();
    let parked = client
        .query("SELECT sequence_number, error, attempts FROM forgeerp_read.parked_events WHERE projection = 'picky'", &[])
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].get::<_, i64>(0), 2);
    assert!(parked[0].get::<_, String>(1).contains("Poison"));
    assert_eq!(
        parked[0].get::<_, i32>(2),
        3,
        "retried max_attempts times first"
    );
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_filtered_worker_touches_only_its_tenant_and_rebuild_equals_live() {
    let (_, store, bus) = setup("_proj_tenant").await;
    let (mine, theirs) = (TenantId::random(), TenantId::random());
    let worker = ProjectionWorker::spawn(
        store.pool().clone(),
        bus,
        InventoryStockProjection,
        Some(mine),
        quick(),
    );
    let dispatcher = CommandDispatcher::new(store.clone());
    let items: Vec<AggregateId> = (0..3).map(|_| AggregateId::random()).collect();
    for tenant in [mine, theirs] {
        for (i, item) in items.iter().enumerate() {
            dispatcher
                .dispatch::<InventoryItem>(
                    tenant,
                    *item,
                    &C::CreateItem {
                        sku: format!("S{i}"),
                        name: "N".into(),
                    },
                )
                .await
                .unwrap();
            dispatcher
                .dispatch::<InventoryItem>(
                    tenant,
                    *item,
                    &C::ReceiveStock {
                        quantity: 10 * (i as i64 + 1),
                    },
                )
                .await
                .unwrap();
            dispatcher
                .dispatch::<InventoryItem>(tenant, *item, &C::ShipStock { quantity: 3 })
                .await
                .unwrap();
        }
    }
    // A late event of its own tenant, after all of the other tenant's: once
    // the worker has applied it, it has passed every event of the other
    // tenant, so "untouched" below means it skipped them, not that it had
    // not got there yet.
    let late = dispatcher
        .dispatch::<InventoryItem>(mine, items[0], &C::ReceiveStock { quantity: 1 })
        .await
        .unwrap();
    let theirs_last = store
        .read_all(FeedPosition::default(), 1000, Some(theirs))
        .await
        .unwrap()
        .last()
        .unwrap()
        .position();
    let mine_last = late.events[0].position();
    assert!(mine_last > theirs_last);
    caught_up(&store, "inventory_stock", Some(mine), mine_last).await;
    assert!(
        InventoryStockProjection::stock(store.pool(), theirs)
            .await
            .unwrap()
            .is_empty(),
        "other tenants untouched"
    );
    let live = InventoryStockProjection::stock(store.pool(), mine)
        .await
        .unwrap();
    assert_eq!(live.len(), 3);
    let live_history = InventoryStockProjection::history(store.pool(), mine, items[2])
        .await
        .unwrap();
    worker.shutdown().await.unwrap();

    let applied = InventoryStockProjection::rebuild_tenant(store.pool(), mine)
        .await
        .unwrap();
    assert_eq!(applied, 10);
    assert_eq!(
        InventoryStockProjection::stock(store.pool(), mine)
            .await
            .unwrap(),
        live,
        "rebuild equals live"
    );
    assert_eq!(
        InventoryStockProjection::history(store.pool(), mine, items[2])
            .await
            .unwrap(),
        live_history
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_folds_in_memory_skips_duplicates_and_refuses_gaps() {
    let (_, store, _) = setup("_proj_batch").await;
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let dispatcher = CommandDispatcher::new(store.clone());
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
    for quantity in [5, 7] {
        dispatcher
            .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity })
            .await
            .unwrap();
    }
    let events = store.load_stream(tenant, item).await.unwrap();
    let batch = |events: Vec<StoredEvent>| {
        let pool = store.pool().clone();
        async move {
            let mut client = pool.get().await.unwrap();
            let tx = client.transaction().await.unwrap();
            tx.execute("SELECT forgeerp.bind_tenant($1)", &[&tenant.as_uuid()])
                .await
                .unwrap();
            let result = InventoryStockProjection.apply_batch(&tx, &events).await;
            if result.is_ok() {
                tx.commit().await.unwrap();
            }
            result
        }
    };
    assert!(
        batch(vec![events[0].clone(), events[2].clone()])
            .await
            .is_err(),
        "a gap is refused, for apply to heal"
    );
    batch(vec![
        events[0].clone(),
        events[1].clone(),
        events[0].clone(),
    ])
    .await
    .unwrap();
    batch(vec![events[1].clone(), events[2].clone()])
        .await
        .unwrap();
    expect_stock(&store, tenant, item, 12, 0).await;
    let history: Vec<u64> = InventoryStockProjection::history(store.pool(), tenant, item)
        .await
        .unwrap()
        .iter()
        .map(|p| p.sequence_number)
        .collect();
    assert_eq!(history, vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_heals_a_stream_whose_events_commit_out_of_feed_order() {
    let (_, store, _) = setup("_proj_rebuild_order").await;
    let (tenant, item, other) = (
        TenantId::random(),
        AggregateId::random(),
        AggregateId::random(),
    );
    let dispatcher = CommandDispatcher::new(store.clone());
    for id in [item, other] {
        dispatcher
            .dispatch::<InventoryItem>(
                tenant,
                id,
                &C::CreateItem {
                    sku: "S".into(),
                    name: "N".into(),
                },
            )
            .await
            .unwrap();
    }
    // Transaction A takes its transaction id first (an append to `other`)...
    let mut early = store.pool().get().await.unwrap();
    let a = early.transaction().await.unwrap();
    let received =
        |quantity: i64| json!([{"event_type": "StockReceived", "payload": {"quantity": quantity}}]);
    a.execute("SELECT forgeerp.bind_tenant($1)", &[&tenant.as_uuid()])
        .await
        .unwrap();
    a.query(
        "SELECT * FROM forgeerp.append($1, 'inventory.item', $2, NULL, $3)",
        &[&tenant.as_uuid(), &other.as_uuid(), &received(1)],
    )
    .await
    .unwrap();
    // ...B appends sequence 2 of `item` and commits...
    dispatcher
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 5 })
        .await
        .unwrap();
    // ...and A appends sequence 3 and commits: in feed order 3 comes before 2.
    a.query(
        "SELECT * FROM forgeerp.append($1, 'inventory.item', $2, 2, $3)",
        &[&tenant.as_uuid(), &item.as_uuid(), &received(7)],
    )
    .await
    .unwrap();
    a.commit().await.unwrap();
    let feed: Vec<(AggregateId, u64)> = store
        .read_all(FeedPosition::default(), 100, Some(tenant))
        .await
        .unwrap()
        .iter()
        .map(|e| (e.aggregate_id, e.sequence_number))
        .collect();
    let (three, two) = (
        feed.iter().position(|e| *e == (item, 3)).unwrap(),
        feed.iter().position(|e| *e == (item, 2)).unwrap(),
    );
    assert!(three < two, "the set-up put sequence 3 first: {feed:?}");

    let applied = InventoryStockProjection::rebuild_tenant(store.pool(), tenant)
        .await
        .unwrap();
    assert_eq!(applied, 5);
    expect_stock(&store, tenant, item, 12, 0).await;
    expect_stock(&store, tenant, other, 1, 0).await;
    let history: Vec<(u64, i64)> = InventoryStockProjection::history(store.pool(), tenant, item)
        .await
        .unwrap()
        .iter()
        .map(|p| (p.sequence_number, p.on_hand))
        .collect();
    assert_eq!(history, vec![(1, 0), (2, 5), (3, 12)]);
}

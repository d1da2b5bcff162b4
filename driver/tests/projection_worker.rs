//! The projection worker and the inventory stock projection, end to end on
//! the real cluster: dispatcher → feed → NOTIFY → worker → read model.

mod common;

use forgeerp_infra::event_bus::pg_notify::SubscriptionConfig;
use forgeerp_infra::inventory::{InventoryCommand as C, InventoryItem};
use forgeerp_infra::{
    AggregateId, CommandDispatcher, EventStore, ExpectedVersion, FeedPosition,
    InventoryStockProjection, Partition, PgEventStore, PgNotifyEventBus, PgProjection,
    ProjectionError, ProjectionWorker, StockLevel, StoredEvent, TenantId, UncommittedEvent,
    WorkerConfig,
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

/// Waits up to 5 s for `condition`.
async fn within_5s(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "within 5 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two instances of one projection: one leads and applies, the other stands
/// by; when the leader stops, or its connection is killed, the standby takes
/// over within 5 s and nothing is lost or applied twice (the read model
/// equals a rebuild from the streams).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_instance_leads_and_a_standby_takes_over() {
    let (_, store, bus) = setup("_proj_leader").await;
    let config = WorkerConfig {
        standby_poll: Duration::from_millis(100),
        ..quick()
    };
    let spawn = || {
        ProjectionWorker::spawn(
            store.pool().clone(),
            bus.clone(),
            InventoryStockProjection,
            None,
            config.clone(),
        )
    };
    let first = spawn();
    within_5s("the first instance leads", || first.is_leader()).await;
    let second = spawn();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        first.is_leader() && !second.is_leader(),
        "exactly one leads"
    );

    let dispatcher = CommandDispatcher::new(store.clone());
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let receive = |n: usize| {
        let dispatcher = &dispatcher;
        async move {
            for _ in 0..n {
                dispatcher
                    .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 1 })
                    .await
                    .unwrap();
            }
        }
    };
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
    receive(10).await;
    caught_up(&store, "inventory_stock", None, last_position(&store).await).await;

    // The leader stops: the standby takes over.
    first.shutdown().await.unwrap();
    within_5s("the standby takes over", || second.is_leader()).await;
    receive(10).await;
    caught_up(&store, "inventory_stock", None, last_position(&store).await).await;
    expect_stock(&store, tenant, item, 20, 0).await;

    // The new leader's connection is killed: a third instance takes over, and
    // the old leader finds out at its next event and stands by.
    let third = spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_leader());
    let killed: i64 = store
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l
              WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "one session holds the projection's leadership");
    within_5s("an instance takes over", || third.is_leader()).await;
    receive(10).await;
    caught_up(&store, "inventory_stock", None, last_position(&store).await).await;
    within_5s("the old leader stands by", || !second.is_leader()).await;
    expect_stock(&store, tenant, item, 30, 0).await;
    let history = InventoryStockProjection::history(store.pool(), tenant, item)
        .await
        .unwrap();
    assert_eq!(history.len(), 31, "every event once");
    second.shutdown().await.unwrap();
    third.shutdown().await.unwrap();

    let live = InventoryStockProjection::stock(store.pool(), tenant)
        .await
        .unwrap();
    InventoryStockProjection::rebuild_tenant(store.pool(), tenant)
        .await
        .unwrap();
    assert_eq!(
        InventoryStockProjection::stock(store.pool(), tenant)
            .await
            .unwrap(),
        live,
        "the read model equals a rebuild from the streams"
    );
}

/// Logs every event it applies, and holds instance "slow" inside its first
/// apply until the test lets it go.
struct Logging {
    instance: &'static str,
    gate: std::sync::Arc<tokio::sync::Semaphore>,
}

impl PgProjection for Logging {
    fn name(&self) -> &str {
        "logging"
    }
    async fn apply(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        if self.instance == "slow" {
            self.gate.acquire().await.unwrap().forget();
        }
        tx.execute(
            "INSERT INTO projection_log (event_id, instance) VALUES ($1, $2)",
            &[&event.event_id.0, &self.instance],
        )
        .await?;
        Ok(())
    }
}

/// A leader that loses its leadership in the middle of a batch (its
/// connection killed while it applies) and then commits is fenced: the
/// checkpoint it read has been moved by the new leader, so its commit
/// writes nothing, the checkpoint never moves backwards, and every event is
/// applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_leader_cannot_move_the_checkpoint_back() {
    let (_, store, bus) = setup("_proj_fenced").await;
    let admin = store.pool().get().await.unwrap();
    admin
        .batch_execute(
            "CREATE TABLE projection_log (event_id uuid NOT NULL, instance text NOT NULL)",
        )
        .await
        .unwrap();
    let config = WorkerConfig {
        standby_poll: Duration::from_millis(100),
        max_attempts: 1_000,
        ..quick()
    };
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let slow = ProjectionWorker::spawn(
        store.pool().clone(),
        bus.clone(),
        Logging {
            instance: "slow",
            gate: gate.clone(),
        },
        None,
        WorkerConfig {
            batch_size: 1,
            ..config.clone()
        },
    );
    within_5s("the slow instance leads", || slow.is_leader()).await;
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let events = |n: usize| {
        (0..n)
            .map(|i| UncommittedEvent::new(tenant, "t", item, "E", json!({ "i": i })))
            .collect::<Vec<_>>()
    };
    store.append(events(3), ExpectedVersion::Any).await.unwrap();
    // The slow leader is now inside its first apply, holding the event.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let standby = ProjectionWorker::spawn(
        store.pool().clone(),
        bus,
        Logging {
            instance: "standby",
            gate: gate.clone(),
        },
        None,
        config,
    );
    admin
        .query_one(
            "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l
              WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap();
    within_5s("the standby takes over", || standby.is_leader()).await;
    let last = last_position(&store).await;
    caught_up(&store, "logging", None, last).await;
    // Let the stale leader finish its apply and try to commit.
    gate.add_permits(100);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ProjectionWorker::checkpoint(store.pool(), "logging", None)
            .await
            .unwrap(),
        last,
        "the checkpoint stays where the new leader put it"
    );
    store.append(events(2), ExpectedVersion::Any).await.unwrap();
    caught_up(&store, "logging", None, last_position(&store).await).await;
    let applied: Vec<(uuid::Uuid, i64)> = admin
        .query(
            "SELECT event_id, count(*) FROM projection_log GROUP BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(applied.len(), 5, "every event: {applied:?}");
    assert!(
        applied.iter().all(|(_, n)| *n == 1),
        "each once: {applied:?}"
    );
    let by_slow: i64 = admin
        .query_one(
            "SELECT count(*) FROM projection_log WHERE instance = 'slow'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(by_slow, 0, "the stale leader's batch was rolled back");
    slow.shutdown().await.unwrap();
    standby.shutdown().await.unwrap();
}

/// Re-splitting: K = 1 drained, then split in two; each partition applies
/// its own streams (each stream in one partition, in order) with its own
/// checkpoint and leader; every event once, and the read model equals a
/// rebuild. A re-split is refused while a worker runs, or when the
/// partitions are not drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projection_split_in_partitions_applies_each_stream_once() {
    let (_, store, bus) = setup("_proj_partitions").await;
    let dispatcher = CommandDispatcher::new(store.clone());
    let tenant = TenantId::random();
    let items: Vec<AggregateId> = (0..8).map(|_| AggregateId::random()).collect();
    for item in &items {
        dispatcher
            .dispatch::<InventoryItem>(
                tenant,
                *item,
                &C::CreateItem {
                    sku: "S".into(),
                    name: "N".into(),
                },
            )
            .await
            .unwrap();
    }
    let whole = ProjectionWorker::spawn(
        store.pool().clone(),
        bus.clone(),
        InventoryStockProjection,
        None,
        quick(),
    );
    caught_up(&store, "inventory_stock", None, last_position(&store).await).await;
    let refused = ProjectionWorker::resplit(store.pool(), "inventory_stock", None, 1, 2).await;
    assert!(
        matches!(refused, Err(ProjectionError::CannotResplit(_))),
        "{refused:?}"
    );
    let drained = whole.shutdown().await.unwrap();
    assert_eq!(
        ProjectionWorker::resplit(store.pool(), "inventory_stock", None, 1, 2)
            .await
            .unwrap(),
        drained
    );
    let parts: Vec<_> = Partition::all(2)
        .map(|partition| {
            ProjectionWorker::spawn(
                store.pool().clone(),
                bus.clone(),
                InventoryStockProjection,
                None,
                WorkerConfig {
                    partition,
                    ..quick()
                },
            )
        })
        .collect();
    for round in 0..5 {
        for item in &items {
            dispatcher
                .dispatch::<InventoryItem>(
                    tenant,
                    *item,
                    &C::ReceiveStock {
                        quantity: round + 1,
                    },
                )
                .await
                .unwrap();
        }
    }
    let last = last_position(&store).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    for partition in Partition::all(2) {
        while ProjectionWorker::partition_checkpoint(
            store.pool(),
            "inventory_stock",
            None,
            partition,
        )
        .await
        .unwrap()
            < last
        {
            assert!(
                Instant::now() < deadline,
                "partition {partition:?} never caught up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let in_first: usize = items
        .iter()
        .filter(|item| Partition::of(tenant, **item, 2) == 0)
        .count();
    assert!(
        in_first > 0 && in_first < items.len(),
        "both partitions have streams"
    );
    for item in &items {
        expect_stock(&store, tenant, *item, 15, 0).await;
        let history = InventoryStockProjection::history(store.pool(), tenant, *item)
            .await
            .unwrap();
        assert_eq!(history.len(), 6, "every event once, in order");
    }
    for part in parts {
        part.shutdown().await.unwrap();
    }
    let live = InventoryStockProjection::stock(store.pool(), tenant)
        .await
        .unwrap();
    InventoryStockProjection::rebuild_tenant(store.pool(), tenant)
        .await
        .unwrap();
    assert_eq!(
        InventoryStockProjection::stock(store.pool(), tenant)
            .await
            .unwrap(),
        live
    );

    // Not drained: the two partitions at different positions.
    store
        .pool()
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE forgeerp_read.checkpoints SET global_position = global_position - 1
              WHERE projection = 'inventory_stock' AND tenant_key = '*#0/2'",
            &[],
        )
        .await
        .unwrap();
    let refused = ProjectionWorker::resplit(store.pool(), "inventory_stock", None, 2, 1).await;
    assert!(
        matches!(refused, Err(ProjectionError::CannotResplit(_))),
        "{refused:?}"
    );
}

//! The command dispatcher on both stores: round trips, races, refusals and
//! streams it must not trust.

mod common;

use forgeerp_infra::event_bus::Subscription;
use forgeerp_infra::inventory::{InventoryCommand as C, InventoryError, InventoryItem};
use forgeerp_infra::{
    AggregateId, BusError, CommandDispatcher, DispatchError, EventBus, EventStore, EventStoreError,
    ExpectedVersion, FeedPosition, InMemoryEventBus, InMemoryEventStore, PublishingEventStore,
    RetryPolicy, StoredEvent, TenantId, UncommittedEvent,
};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn create() -> C {
    C::CreateItem {
        sku: "BOLT-M8".into(),
        name: "M8 bolt".into(),
    }
}

async fn round_trip<S: EventStore>(store: S) {
    let dispatcher = CommandDispatcher::new(store);
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    dispatcher
        .dispatch::<InventoryItem>(tenant, item, &create())
        .await
        .unwrap();
    dispatcher
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 100 })
        .await
        .unwrap();
    dispatcher
        .dispatch::<InventoryItem>(tenant, item, &C::ReserveStock { quantity: 30 })
        .await
        .unwrap();
    let done = dispatcher
        .dispatch_with_metadata::<InventoryItem>(
            tenant,
            item,
            &C::ShipStock { quantity: 40 },
            json!({"actor": "dock-3"}),
        )
        .await
        .unwrap();
    assert_eq!((done.state.on_hand, done.state.reserved), (60, 0));
    assert_eq!(done.events.len(), 1);
    assert_eq!(done.events[0].sequence_number, 4);
    assert_eq!(done.events[0].event_type, "StockShipped");
    assert_eq!(done.events[0].metadata, json!({"actor": "dock-3"}));
    let (reloaded, version) = dispatcher
        .load::<InventoryItem>(tenant, item)
        .await
        .unwrap();
    assert_eq!(reloaded, done.state);
    assert_eq!(version, 4);

    // A refused command is its own error and appends nothing.
    let refused = dispatcher
        .dispatch::<InventoryItem>(tenant, item, &C::ShipStock { quantity: 61 })
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        DispatchError::Domain(InventoryError::InsufficientStock {
            requested: 61,
            available: 60
        })
    ));
    assert_eq!(
        dispatcher
            .store()
            .stream_version(tenant, item)
            .await
            .unwrap(),
        4
    );
}

/// A store whose first `DISPATCHERS` appends wait for each other before
/// going in, so the dispatchers' first commands overlap for certain: all of
/// them decided on the same version, one wins, the others lose. Counts the
/// appends the store refused as conflicts.
struct Lockstep<S> {
    inner: S,
    barrier: tokio::sync::Barrier,
    appends: AtomicUsize,
    refused: AtomicUsize,
}

impl<S: EventStore> EventStore for Lockstep<S> {
    async fn append(
        &self,
        events: Vec<UncommittedEvent>,
        expected: ExpectedVersion,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        if self.appends.fetch_add(1, Ordering::SeqCst) < DISPATCHERS {
            self.barrier.wait().await;
        }
        let result = self.inner.append(events, expected).await;
        if matches!(result, Err(EventStoreError::Concurrency { .. })) {
            self.refused.fetch_add(1, Ordering::SeqCst);
        }
        result
    }
    async fn load_stream_from(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        from: u64,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        self.inner
            .load_stream_from(tenant_id, aggregate_id, from)
            .await
    }
    async fn stream_version(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
    ) -> Result<u64, EventStoreError> {
        self.inner.stream_version(tenant_id, aggregate_id).await
    }
    async fn read_all(
        &self,
        after: FeedPosition,
        max: usize,
        tenant_id: Option<TenantId>,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        self.inner.read_all(after, max, tenant_id).await
    }
}

const DISPATCHERS: usize = 8;

/// What a race of dispatchers came to.
#[derive(Debug)]
struct RaceOutcome {
    /// Commands that succeeded.
    received: i64,
    /// Commands that failed with a conflict (reported to the caller).
    conflicts: usize,
    /// Extra attempts the successful commands needed: retries.
    retries: u32,
    /// Appends the store refused with ES001.
    refused: usize,
}

/// 8 dispatchers (as in 8 processes: each its own state cache) over one
/// store, 10 commands each, on one hot item.
async fn race<S: EventStore + 'static>(store: S, retry: RetryPolicy) -> RaceOutcome {
    let store = Arc::new(Lockstep {
        inner: store,
        barrier: tokio::sync::Barrier::new(DISPATCHERS),
        appends: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
    });
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    // Created past the lockstep: the race is about the commands after.
    CommandDispatcher::new(&store.inner)
        .dispatch::<InventoryItem>(tenant, item, &create())
        .await
        .unwrap();
    let tasks: Vec<_> = (0..DISPATCHERS)
        .map(|_| {
            let dispatcher = CommandDispatcher::new(store.clone()).with_retry(retry);
            tokio::spawn(async move {
                let (mut received, mut conflicts, mut retries) = (0, 0, 0);
                for _ in 0..10 {
                    match dispatcher
                        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 1 })
                        .await
                    {
                        Ok(done) => {
                            received += 1;
                            retries += done.attempts - 1;
                        }
                        Err(DispatchError::Store(EventStoreError::Concurrency { .. })) => {
                            conflicts += 1
                        }
                        Err(other) => panic!("unexpected: {other}"),
                    }
                    tokio::task::yield_now().await;
                }
                (received, conflicts, retries)
            })
        })
        .collect();
    let mut outcome = RaceOutcome {
        received: 0,
        conflicts: 0,
        retries: 0,
        refused: 0,
    };
    for task in tasks {
        let (received, conflicts, retries) = task.await.unwrap();
        outcome.received += received;
        outcome.conflicts += conflicts;
        outcome.retries += retries;
    }
    outcome.refused = store.refused.load(Ordering::SeqCst);
    let (state, version) = CommandDispatcher::new(store.clone())
        .load::<InventoryItem>(tenant, item)
        .await
        .unwrap();
    assert_eq!(
        state.on_hand, outcome.received,
        "final stock is the sum of the commands that succeeded: no lost update"
    );
    assert_eq!(version as i64, 1 + outcome.received);
    outcome
}

#[tokio::test]
async fn round_trip_in_memory() {
    round_trip(InMemoryEventStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_trip_postgres() {
    round_trip(common::pg_store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_dispatchers_with_retry_lose_nothing() {
    for outcome in [
        race(common::pg_store().await, RetryPolicy::attempts(100)).await,
        race(InMemoryEventStore::new(), RetryPolicy::attempts(100)).await,
    ] {
        assert_eq!(
            (outcome.received, outcome.conflicts),
            (80, 0),
            "{outcome:?}"
        );
        // The first commands overlapped: 7 of 8 lost, and were retried.
        assert!(outcome.refused >= DISPATCHERS - 1, "{outcome:?}");
        assert!(outcome.retries as usize >= DISPATCHERS - 1, "{outcome:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_dispatchers_without_retry_report_conflicts_and_lose_nothing() {
    for outcome in [
        race(common::pg_store().await, RetryPolicy::NONE).await,
        race(InMemoryEventStore::new(), RetryPolicy::NONE).await,
    ] {
        assert_eq!(
            outcome.received as usize + outcome.conflicts,
            80,
            "{outcome:?}"
        );
        assert!(outcome.received >= 1, "{outcome:?}");
        // 7 of the 8 overlapping first commands lost and were not retried.
        assert!(outcome.conflicts >= DISPATCHERS - 1, "{outcome:?}");
        assert_eq!(outcome.retries, 0, "{outcome:?}");
    }
}

/// A store that serves a doctored stream: for streams it must refuse.
struct PoisonedStore {
    events: Vec<StoredEvent>,
}

impl EventStore for PoisonedStore {
    async fn append(
        &self,
        _: Vec<UncommittedEvent>,
        _: ExpectedVersion,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        panic!("a poisoned stream must never reach append")
    }
    async fn load_stream_from(
        &self,
        _: TenantId,
        _: AggregateId,
        _: u64,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        Ok(self.events.clone())
    }
    async fn stream_version(&self, _: TenantId, _: AggregateId) -> Result<u64, EventStoreError> {
        Ok(self.events.len() as u64)
    }
    async fn read_all(
        &self,
        _: FeedPosition,
        _: usize,
        _: Option<TenantId>,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        Ok(self.events.clone())
    }
}

#[tokio::test]
async fn poisoned_streams_are_refused_before_deciding() {
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let honest = InMemoryEventStore::new();
    let dispatcher = CommandDispatcher::new(&honest);
    dispatcher
        .dispatch::<InventoryItem>(tenant, item, &create())
        .await
        .unwrap();
    dispatcher
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 5 })
        .await
        .unwrap();
    dispatcher
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 5 })
        .await
        .unwrap();
    let good = honest.load_stream(tenant, item).await.unwrap();

    let mut gap = good.clone();
    gap.remove(1);
    let mut repeat = good.clone();
    repeat[2].sequence_number = 2;
    let mut foreign = good.clone();
    foreign[1].tenant_id = TenantId::random();
    let mut other_aggregate = good.clone();
    other_aggregate[0].aggregate_id = AggregateId::random();
    let mut other_type = good.clone();
    other_type[0].aggregate_type = "sales.order".into();
    let mut undecodable = good.clone();
    undecodable[1].event_type = "StockTeleported".into();

    for (what, events) in [
        ("gap", gap),
        ("repeat", repeat),
        ("tenant", foreign),
        ("aggregate", other_aggregate),
        ("type", other_type),
        ("decode", undecodable),
    ] {
        let poisoned = CommandDispatcher::new(PoisonedStore { events });
        let result = poisoned
            .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 1 })
            .await;
        assert!(
            matches!(result, Err(DispatchError::InvalidStream { .. })),
            "{what}: {result:?}"
        );
    }
}

#[tokio::test]
async fn store_errors_surface_as_store_errors() {
    // A stream of another aggregate type under the same id.
    let store = InMemoryEventStore::new();
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    store
        .append(
            vec![UncommittedEvent::new(
                tenant,
                "sales.order",
                item,
                "OrderPlaced",
                json!({}),
            )],
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    let dispatcher = CommandDispatcher::new(&store);
    let result = dispatcher
        .dispatch::<InventoryItem>(tenant, item, &create())
        .await;
    assert!(
        matches!(result, Err(DispatchError::InvalidStream { .. })),
        "{result:?}"
    );

    let unreachable = CommandDispatcher::new(
        forgeerp_infra::PgEventStore::connect(
            "host=127.0.0.1 port=1 user=nobody connect_timeout=2",
            1,
        )
        .unwrap(),
    );
    let result = unreachable
        .dispatch::<InventoryItem>(tenant, item, &create())
        .await;
    assert!(
        matches!(
            result,
            Err(DispatchError::Store(EventStoreError::Connection(_)))
        ),
        "{result:?}"
    );
}

/// A bus that always fails: publishing must never fail or undo an append.
struct BrokenBus;

impl EventBus for BrokenBus {
    type Subscription = forgeerp_infra::event_bus::in_memory::InMemorySubscription;

    async fn subscribe(
        &self,
        _: FeedPosition,
        _: Option<TenantId>,
    ) -> Result<Self::Subscription, BusError> {
        Err(BusError("the bus is down".into()))
    }

    async fn publish(&self, _: &StoredEvent) -> Result<(), BusError> {
        Err(BusError("the bus is down".into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_published_after_the_append_and_only_then() {
    let bus = InMemoryEventBus::new(16);
    let mut subscription = bus.subscribe(FeedPosition::default(), None).await.unwrap();
    let store = PublishingEventStore::new(common::pg_store().await, bus);
    let dispatcher = CommandDispatcher::new(store);
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let created = dispatcher
        .dispatch::<InventoryItem>(tenant, item, &create())
        .await
        .unwrap();
    let published = subscription.recv().await.unwrap();
    assert_eq!(published, created.events[0]);

    // A refused append publishes nothing.
    let stale = dispatcher
        .store()
        .append(
            vec![UncommittedEvent::new(
                tenant,
                "inventory.item",
                item,
                "StockReceived",
                json!({"quantity": 1}),
            )],
            ExpectedVersion::NoStream,
        )
        .await;
    assert!(matches!(
        stale,
        Err(EventStoreError::Concurrency { actual: 1, .. })
    ));
    assert!(
        subscription.try_recv().is_none(),
        "nothing published for a refused append"
    );

    // A broken bus is logged, and the append stands.
    let broken = CommandDispatcher::new(PublishingEventStore::new(
        InMemoryEventStore::new(),
        BrokenBus,
    ));
    let done = broken
        .dispatch::<InventoryItem>(tenant, item, &create())
        .await
        .unwrap();
    assert_eq!(done.events.len(), 1);
    assert_eq!(
        broken.store().stream_version(tenant, item).await.unwrap(),
        1
    );
}

/// A store where another writer gets in between every load and the first
/// `interruptions` appends: a deterministic lost race.
struct InterferingStore {
    inner: InMemoryEventStore,
    interruptions: std::sync::atomic::AtomicU32,
}

impl EventStore for InterferingStore {
    async fn append(
        &self,
        events: Vec<UncommittedEvent>,
        expected: ExpectedVersion,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        use std::sync::atomic::Ordering;
        if self.interruptions.load(Ordering::SeqCst) > 0 {
            self.interruptions.fetch_sub(1, Ordering::SeqCst);
            let rival = UncommittedEvent::new(
                events[0].tenant_id,
                "inventory.item",
                events[0].aggregate_id,
                "StockReceived",
                json!({"quantity": 1000}),
            );
            self.inner.append(vec![rival], ExpectedVersion::Any).await?;
        }
        self.inner.append(events, expected).await
    }
    async fn load_stream_from(
        &self,
        t: TenantId,
        a: AggregateId,
        from: u64,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        self.inner.load_stream_from(t, a, from).await
    }
    async fn stream_version(&self, t: TenantId, a: AggregateId) -> Result<u64, EventStoreError> {
        self.inner.stream_version(t, a).await
    }
    async fn read_all(
        &self,
        after: FeedPosition,
        max: usize,
        t: Option<TenantId>,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        self.inner.read_all(after, max, t).await
    }
}

#[tokio::test]
async fn a_lost_race_is_reported_or_retried_as_configured() {
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let store = InterferingStore {
        inner: InMemoryEventStore::new(),
        interruptions: 0.into(),
    };
    CommandDispatcher::new(&store)
        .dispatch::<InventoryItem>(tenant, item, &create())
        .await
        .unwrap();

    store
        .interruptions
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let lost = CommandDispatcher::new(&store)
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 1 })
        .await;
    match lost {
        Err(DispatchError::Store(EventStoreError::Concurrency {
            expected, actual, ..
        })) => {
            assert_eq!((expected, actual), (ExpectedVersion::Exact(1), 2));
        }
        other => panic!("expected a concurrency error, got {other:?}"),
    }

    store
        .interruptions
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let retried = CommandDispatcher::new(&store)
        .with_retry(RetryPolicy::attempts(3))
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 1 })
        .await
        .unwrap();
    assert_eq!(retried.attempts, 3);
    assert_eq!(
        retried.state.on_hand, 3001,
        "decided again on the reloaded stream: three rivals and this receipt"
    );

    store
        .interruptions
        .store(5, std::sync::atomic::Ordering::SeqCst);
    let exhausted = CommandDispatcher::new(&store)
        .with_retry(RetryPolicy::attempts(2))
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 1 })
        .await;
    assert!(
        matches!(
            exhausted,
            Err(DispatchError::Store(EventStoreError::Concurrency { .. }))
        ),
        "bounded: {exhausted:?}"
    );
}

/// Counts the loads that reach the store.
struct CountingStore {
    inner: InMemoryEventStore,
    loads: std::sync::atomic::AtomicUsize,
}

impl EventStore for CountingStore {
    async fn append(
        &self,
        events: Vec<UncommittedEvent>,
        expected: ExpectedVersion,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        self.inner.append(events, expected).await
    }
    async fn load_stream_from(
        &self,
        t: TenantId,
        a: AggregateId,
        from: u64,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.load_stream_from(t, a, from).await
    }
    async fn stream_version(&self, t: TenantId, a: AggregateId) -> Result<u64, EventStoreError> {
        self.inner.stream_version(t, a).await
    }
    async fn read_all(
        &self,
        after: FeedPosition,
        max: usize,
        t: Option<TenantId>,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        self.inner.read_all(after, max, t).await
    }
}

fn loads(store: &CountingStore) -> usize {
    store.loads.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn a_current_cached_state_is_decided_on_without_loading() {
    let store = CountingStore {
        inner: InMemoryEventStore::new(),
        loads: 0.into(),
    };
    let dispatcher = CommandDispatcher::new(&store);
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    dispatcher
        .dispatch::<InventoryItem>(tenant, item, &create())
        .await
        .unwrap();
    for _ in 0..5 {
        dispatcher
            .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 2 })
            .await
            .unwrap();
    }
    assert_eq!(loads(&store), 1, "only the first command loads");

    let uncached = CommandDispatcher::new(&store).with_cache_capacity(0);
    uncached
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 2 })
        .await
        .unwrap();
    uncached
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 2 })
        .await
        .unwrap();
    assert_eq!(loads(&store), 3, "without a cache every command loads");
}

#[tokio::test]
async fn a_stale_cached_state_catches_up_before_appending_or_refusing() {
    let store = CountingStore {
        inner: InMemoryEventStore::new(),
        loads: 0.into(),
    };
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let ours = CommandDispatcher::new(&store);
    let theirs = CommandDispatcher::new(&store);
    ours.dispatch::<InventoryItem>(tenant, item, &create())
        .await
        .unwrap();

    // Another writer receives stock; our cache still says 0 on hand.
    theirs
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 10 })
        .await
        .unwrap();
    let shipped = ours
        .dispatch::<InventoryItem>(tenant, item, &C::ShipStock { quantity: 5 })
        .await
        .unwrap();
    assert_eq!(
        shipped.state.on_hand, 5,
        "the refusal on the stale state was re-checked on the current one"
    );
    assert_eq!(shipped.events[0].sequence_number, 3);

    // Another writer ships; our cached state (version 3) is stale again.
    theirs
        .dispatch::<InventoryItem>(tenant, item, &C::ShipStock { quantity: 1 })
        .await
        .unwrap();
    let received = ours
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 1 })
        .await
        .unwrap();
    assert_eq!(
        (received.state.on_hand, received.attempts),
        (5, 1),
        "a stale cache is not a lost race"
    );
    let (truth, version) = CommandDispatcher::new(&store)
        .load::<InventoryItem>(tenant, item)
        .await
        .unwrap();
    assert_eq!((truth, version), (received.state, 5));
}

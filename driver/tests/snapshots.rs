//! Snapshots on both snapshot stores (in memory, and Postgres with the
//! Postgres event store): loads replay only the events after a snapshot, a
//! snapshot the code cannot read is ignored, deleting every snapshot changes
//! no result, and a failing snapshot store never fails a command.

mod common;

use forgeerp_infra::inventory::{InventoryCommand as C, InventoryItem};
use forgeerp_infra::snapshots::SnapshotError;
use forgeerp_infra::{
    AggregateId, CommandDispatcher, EventStore, EventStoreError, ExpectedVersion,
    InMemoryEventStore, InMemorySnapshotStore, PgSnapshotStore, Snapshot, SnapshotPolicy,
    SnapshotStore, StoredEvent, TenantId, UncommittedEvent,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A store that counts the events its loads return.
struct Counting<S> {
    inner: S,
    loaded: AtomicU64,
}

impl<S: EventStore> EventStore for Counting<S> {
    async fn append(
        &self,
        events: Vec<UncommittedEvent>,
        expected: ExpectedVersion,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        self.inner.append(events, expected).await
    }

    async fn load_stream_from(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        from_sequence: u64,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let events = self
            .inner
            .load_stream_from(tenant_id, aggregate_id, from_sequence)
            .await?;
        self.loaded.fetch_add(events.len() as u64, Ordering::SeqCst);
        Ok(events)
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
        after: forgeerp_infra::FeedPosition,
        max: usize,
        tenant_id: Option<TenantId>,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        self.inner.read_all(after, max, tenant_id).await
    }
}

/// A snapshot store that fails everything.
#[derive(Clone)]
struct Broken;

impl SnapshotStore for Broken {
    async fn load(
        &self,
        _: TenantId,
        _: &str,
        _: AggregateId,
        _: u32,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        Err(SnapshotError("down".into()))
    }
    async fn save(&self, _: Snapshot) -> Result<(), SnapshotError> {
        Err(SnapshotError("down".into()))
    }
}

/// An item with `n` receipts of 1 (a stream of n + 1 events).
async fn item_with<S: EventStore, N: SnapshotStore>(
    dispatcher: &CommandDispatcher<S, N>,
    n: usize,
) -> (TenantId, AggregateId) {
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
    for _ in 0..n {
        dispatcher
            .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 1 })
            .await
            .unwrap();
    }
    (tenant, item)
}

/// Waits until the snapshot of `item` is at `version` (they are written by a task of their own).
async fn snapshot_at<N: SnapshotStore>(
    snapshots: &N,
    tenant: TenantId,
    item: AggregateId,
    version: u64,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let kept = snapshots
            .load(tenant, "inventory.item", item, 1)
            .await
            .unwrap();
        if kept.as_ref().is_some_and(|s| s.stream_version == version) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no snapshot at {version}: {kept:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn loads_replay_only_what_follows_the_snapshot<S: EventStore, N: SnapshotStore>(
    store: S,
    snapshots: N,
    clear: impl Fn(),
) {
    let store = Arc::new(Counting {
        inner: store,
        loaded: AtomicU64::new(0),
    });
    let writer = CommandDispatcher::new(store.clone())
        .with_cache_capacity(0)
        .with_snapshots(snapshots.clone(), SnapshotPolicy::every(10));
    let (tenant, item) = item_with(&writer, 24).await; // 25 events
    snapshot_at(&snapshots, tenant, item, 20).await;

    let reader = CommandDispatcher::new(store.clone())
        .with_cache_capacity(0)
        .with_snapshots(snapshots.clone(), SnapshotPolicy::every(10));
    // What the load replays: the events after the snapshot, read with it
    // when the snapshot store can (the Postgres one), else from the store.
    let (kept, tail) = snapshots
        .load_with_tail(tenant, "inventory.item", item, 1)
        .await
        .unwrap();
    assert_eq!(kept.unwrap().stream_version, 20);
    let read_with_it = tail.map(|events| {
        let numbers: Vec<u64> = events.iter().map(|e| e.sequence_number).collect();
        assert_eq!(
            numbers,
            [21, 22, 23, 24, 25],
            "only the events after the snapshot"
        );
        0
    });
    store.loaded.store(0, Ordering::SeqCst);
    let (with_snapshot, version) = reader.load::<InventoryItem>(tenant, item).await.unwrap();
    assert_eq!(version, 25);
    assert_eq!(
        store.loaded.load(Ordering::SeqCst),
        read_with_it.unwrap_or(5),
        "only the events after the snapshot"
    );

    // Deleting every snapshot changes no result, only how much is replayed.
    clear();
    store.loaded.store(0, Ordering::SeqCst);
    let (replayed, version) = reader.load::<InventoryItem>(tenant, item).await.unwrap();
    assert_eq!(version, 25);
    assert_eq!(
        store.loaded.load(Ordering::SeqCst),
        read_with_it.unwrap_or(25)
    );
    let (none, tail) = snapshots
        .load_with_tail(tenant, "inventory.item", item, 1)
        .await
        .unwrap();
    assert!(none.is_none());
    if let Some(tail) = tail {
        assert_eq!(tail.len(), 25, "without a snapshot, the whole stream");
        let stored = store.load_stream(tenant, item).await.unwrap();
        assert_eq!(
            tail, stored,
            "read with the snapshot: the same events as the store's"
        );
    }
    assert_eq!(replayed, with_snapshot);
    assert_eq!(replayed.on_hand, 24);
    // And neither does a dispatcher without snapshots at all.
    let plain = CommandDispatcher::new(store.clone()).with_cache_capacity(0);
    assert_eq!(
        plain.load::<InventoryItem>(tenant, item).await.unwrap().0,
        with_snapshot
    );
}

#[tokio::test]
async fn loads_replay_only_what_follows_the_snapshot_in_memory() {
    let snapshots = InMemorySnapshotStore::new();
    let cleared = snapshots.clone();
    loads_replay_only_what_follows_the_snapshot(InMemoryEventStore::new(), snapshots, move || {
        cleared.clear()
    })
    .await;
}

#[tokio::test]
async fn loads_replay_only_what_follows_the_snapshot_postgres() {
    let (url, store) = common::migrated_database("_snapshots", 4).await;
    let snapshots = PgSnapshotStore::new(store.pool().clone());
    let url_for_clear = url.clone();
    loads_replay_only_what_follows_the_snapshot(store, snapshots, move || {
        // As the superuser (row-level security does not hold it back): every row.
        let url = url_for_clear.clone();
        std::thread::spawn(move || {
            let mut client = postgres_client(&url);
            client
                .batch_execute("DELETE FROM forgeerp_read.snapshots")
                .unwrap();
        })
        .join()
        .unwrap();
    })
    .await;
}

fn postgres_client(conninfo: &str) -> SyncClient {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = runtime.block_on(async {
        let settings = forgeerp_infra::ConnectionSettings::parse(conninfo).unwrap();
        let (client, connection) = settings.connect().await.unwrap();
        tokio::spawn(connection);
        client
    });
    SyncClient { runtime, client }
}

/// A tokio-postgres client on a runtime of its own, for closures that cannot await.
struct SyncClient {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl SyncClient {
    fn batch_execute(&mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.runtime.block_on(self.client.batch_execute(sql))
    }
}

#[tokio::test]
async fn a_snapshot_the_code_cannot_read_is_ignored_and_the_stream_replayed() {
    let snapshots = InMemorySnapshotStore::new();
    let dispatcher = CommandDispatcher::new(InMemoryEventStore::new())
        .with_cache_capacity(0)
        .with_snapshots(snapshots.clone(), SnapshotPolicy::every(1000));
    let (tenant, item) = item_with(&dispatcher, 3).await;
    // Of another state version, in a shape that would deserialize: never read.
    snapshots
        .save(Snapshot {
            tenant_id: tenant,
            aggregate_type: "inventory.item".into(),
            aggregate_id: item,
            state_version: 2,
            stream_version: 4,
            state: serde_json::json!({"sku": "S", "name": "N", "on_hand": 999, "reserved": 0, "discontinued": false}),
        })
        .await
        .unwrap();
    let (state, _) = dispatcher
        .load::<InventoryItem>(tenant, item)
        .await
        .unwrap();
    assert_eq!(state.on_hand, 3);
    // Of the current state version but unreadable: ignored with a warning.
    snapshots
        .save(Snapshot {
            tenant_id: tenant,
            aggregate_type: "inventory.item".into(),
            aggregate_id: item,
            state_version: 1,
            stream_version: 4,
            state: serde_json::json!({"on_hand": "lots"}),
        })
        .await
        .unwrap();
    let (state, version) = dispatcher
        .load::<InventoryItem>(tenant, item)
        .await
        .unwrap();
    assert_eq!((state.on_hand, version), (3, 4));
}

#[tokio::test]
async fn a_failing_snapshot_store_never_fails_a_command() {
    let dispatcher = CommandDispatcher::new(InMemoryEventStore::new())
        .with_cache_capacity(0)
        .with_snapshots(Broken, SnapshotPolicy::every(1));
    let (tenant, item) = item_with(&dispatcher, 5).await;
    let (state, version) = dispatcher
        .load::<InventoryItem>(tenant, item)
        .await
        .unwrap();
    assert_eq!((state.on_hand, version), (5, 6));
}

#[tokio::test]
async fn a_long_replay_is_snapshotted_when_the_policy_says_so() {
    let snapshots = InMemorySnapshotStore::new();
    let store = Arc::new(InMemoryEventStore::new());
    let (tenant, item) = item_with(&CommandDispatcher::new(store.clone()), 30).await;
    assert!(snapshots.is_empty());
    let dispatcher = CommandDispatcher::new(store)
        .with_cache_capacity(0)
        .with_snapshots(
            snapshots.clone(),
            SnapshotPolicy::when_replayed_more_than(20),
        );
    dispatcher
        .load::<InventoryItem>(tenant, item)
        .await
        .unwrap();
    snapshot_at(&snapshots, tenant, item, 31).await;
}

#[tokio::test]
async fn an_application_role_reads_only_the_bound_tenants_snapshots() {
    let (url, store) = common::migrated_database("_snapshots_rls", 4).await;
    let snapshots = PgSnapshotStore::new(store.pool().clone());
    let (a, b) = (TenantId::random(), TenantId::random());
    for tenant in [a, b] {
        snapshots
            .save(Snapshot {
                tenant_id: tenant,
                aggregate_type: "inventory.item".into(),
                aggregate_id: AggregateId::random(),
                state_version: 1,
                stream_version: 3,
                state: serde_json::json!({"tenant": tenant.to_string()}),
            })
            .await
            .unwrap();
    }
    let settings = forgeerp_infra::ConnectionSettings::parse(&url).unwrap();
    let (admin, connection) = settings.connect().await.unwrap();
    tokio::spawn(connection);
    let role = format!(
        "forgeerp_test_role_snapshots_{}",
        uuid::Uuid::new_v4().simple()
    );
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role}; SELECT forgeerp.grant_usage('{role}');
             GRANT USAGE ON SCHEMA forgeerp_read TO {role};
             GRANT SELECT, INSERT ON forgeerp_read.snapshots TO {role};"
        ))
        .await
        .unwrap();
    let count = |sql: String| {
        let admin = &admin;
        async move {
            let messages = admin.simple_query(&sql).await.unwrap();
            messages
                .into_iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) if r.columns()[0].name() == "n" => {
                        r.get(0).map(str::to_string)
                    }
                    _ => None,
                })
                .unwrap()
        }
    };
    // Unbound: nothing; bound to a: only a's.
    assert_eq!(
        count(format!("BEGIN; SET LOCAL ROLE {role}; SELECT count(*) AS n FROM forgeerp_read.snapshots; COMMIT")).await,
        "0"
    );
    assert_eq!(
        count(format!(
            "BEGIN; SET LOCAL ROLE {role}; SELECT forgeerp.bind_tenant('{a}'); SELECT count(*) AS n, min(state->>'tenant') FROM forgeerp_read.snapshots; COMMIT"
        ))
        .await,
        "1"
    );
    // Writing another tenant's snapshot while bound to a is refused.
    let refused = admin
        .batch_execute(&format!(
            "BEGIN; SET LOCAL ROLE {role}; SELECT forgeerp.bind_tenant('{a}');
             INSERT INTO forgeerp_read.snapshots (tenant_id, aggregate_type, aggregate_id, state_version, stream_version, state)
             VALUES ('{b}', 't', '{}', 1, 1, '{{}}'); COMMIT",
            AggregateId::random()
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code().map(|c| c.code()), Some("42501"), "{refused}");
    let _ = admin.batch_execute("ROLLBACK").await;
    admin
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
}

//! A command on a long stream with and without snapshots, against a command
//! on a short stream, the state cache off (every command loads). Run
//! against the private cluster:
//!
//! ```sh
//! bash scripts/setup.sh && cargo bench -p forgeerp-infra --bench snapshots
//! ```
//!
//! Prints a Markdown table; `bench/README.md` keeps the figures.

use forgeerp_infra::inventory::{InventoryCommand, InventoryEvent, InventoryItem};
use forgeerp_infra::{
    Aggregate, AggregateId, CommandDispatcher, EventStore, ExpectedVersion, NoSnapshots,
    PgEventStore, PgSnapshotStore, SnapshotPolicy, SnapshotStore, TenantId, UncommittedEvent,
};
use forgeerp_test_fixtures::{fresh_database, Install};
use std::time::{Duration, Instant};

const LONG: usize = 10_000;
const SHORT: usize = 10;
const ROUNDS: usize = 3;
const COMMANDS: usize = 200;

/// A stream of `events` events (one ItemCreated, then receipts), appended in
/// batches of 1,000.
async fn stream(store: &PgEventStore, tenant: TenantId, events: usize) -> AggregateId {
    let item = AggregateId::random();
    let event = |e: InventoryEvent| {
        UncommittedEvent::from_domain(tenant, InventoryItem::AGGREGATE_TYPE, item, &e).unwrap()
    };
    let mut all = vec![event(InventoryEvent::ItemCreated {
        sku: "S".into(),
        name: "N".into(),
    })];
    all.extend((1..events).map(|_| {
        event(InventoryEvent::StockReceived {
            quantity: 1,
            lot: None,
        })
    }));
    for chunk in all.chunks(1000) {
        store
            .append(chunk.to_vec(), ExpectedVersion::Any)
            .await
            .unwrap();
    }
    item
}

/// The mean time of one command on each of `items` (streams of `SHORT`
/// events, so each command loads a short stream), one after the other.
async fn per_short_command<N: SnapshotStore>(
    dispatcher: &CommandDispatcher<PgEventStore, N>,
    tenant: TenantId,
    items: &[AggregateId],
) -> Duration {
    let started = Instant::now();
    for item in items {
        dispatcher
            .dispatch::<InventoryItem>(
                tenant,
                *item,
                &InventoryCommand::ReceiveStock { quantity: 1 },
            )
            .await
            .unwrap();
    }
    started.elapsed() / items.len() as u32
}

/// The mean time of `n` commands on `item`, one after the other.
async fn per_command<N: SnapshotStore>(
    dispatcher: &CommandDispatcher<PgEventStore, N>,
    tenant: TenantId,
    item: AggregateId,
    n: usize,
) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        dispatcher
            .dispatch::<InventoryItem>(
                tenant,
                item,
                &InventoryCommand::ReceiveStock { quantity: 1 },
            )
            .await
            .unwrap();
    }
    started.elapsed() / n as u32
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = fresh_database("forgeerp_bench_snapshots", Install::Current).await;
    let store = PgEventStore::connect(&url, 8).unwrap();
    forgeerp_infra::migrate(store.pool()).await.unwrap();
    let tenant = TenantId::random();
    let long = stream(&store, tenant, LONG).await;
    let long_plain = stream(&store, tenant, LONG).await;
    // Short streams stay short: each gets one command per run.
    let mut short = Vec::new();
    for _ in 0..(ROUNDS * 3 + 1) * COMMANDS {
        short.push(stream(&store, tenant, SHORT).await);
    }
    let mut short = short.chunks(COMMANDS);

    let plain = CommandDispatcher::new(store.clone()).with_cache_capacity(0);
    let snapshots = PgSnapshotStore::new(store.pool().clone());
    // Every 100 events, and at once after a long replay (the first load).
    let policy = SnapshotPolicy {
        every: Some(100),
        replayed_more_than: Some(100),
    };
    let snapshotting = CommandDispatcher::new(store.clone())
        .with_cache_capacity(0)
        .with_snapshots(snapshots.clone(), policy);
    let every_command = CommandDispatcher::new(store.clone())
        .with_cache_capacity(0)
        .with_snapshots(snapshots.clone(), SnapshotPolicy::every(1));
    // Reads snapshots, never takes one: what a snapshot write adds is the
    // difference between this and `every_command`.
    let never = CommandDispatcher::new(store.clone())
        .with_cache_capacity(0)
        .with_snapshots(
            snapshots.clone(),
            SnapshotPolicy {
                every: None,
                replayed_more_than: None,
            },
        );

    // Warm up: connections, prepared statements, and the long stream's first snapshot.
    per_short_command(&plain, tenant, short.next().unwrap()).await;
    per_command(&snapshotting, tenant, long, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = NoSnapshots;

    let mut rows = Vec::new();
    for round in 0..ROUNDS {
        let short_cost = per_short_command(&plain, tenant, short.next().unwrap()).await;
        let long_with = per_command(&snapshotting, tenant, long, COMMANDS).await;
        let long_without = per_command(&plain, tenant, long_plain, 10).await;
        let short_snapshot_each =
            per_short_command(&every_command, tenant, short.next().unwrap()).await;
        let short_reading = per_short_command(&never, tenant, short.next().unwrap()).await;
        rows.push((
            round,
            short_cost,
            long_with,
            long_without,
            short_snapshot_each,
            short_reading,
        ));
    }
    println!("| run | command, {SHORT}-event stream | {LONG}-event stream, snapshots every 100 (× the first column; × the fifth) | {LONG}-event stream, no snapshots | {SHORT}-event stream, snapshots read, none taken | the same, a snapshot taken after every command |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (round, short, with, without, each, reading) in rows {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "| {} | {:.0} µs | {:.0} µs (**{:.2}×**; **{:.2}×**) | {:.0} µs ({:.1}×) | {:.0} µs ({:.2}×) | {:.0} µs ({:.2}× the reading alone) |",
            round + 1,
            us(short),
            us(with),
            us(with) / us(short),
            us(with) / us(reading),
            us(without),
            us(without) / us(short),
            us(reading),
            us(reading) / us(short),
            us(each),
            us(each) / us(reading),
        );
    }
}

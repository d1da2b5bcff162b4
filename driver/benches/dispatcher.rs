//! Dispatched commands against the raw appends they issue, and the cost of
//! rehydration as streams grow. Run against the private cluster:
//!
//! ```sh
//! bash scripts/setup.sh && cargo bench -p forgeerp-infra --bench dispatcher
//! ```
//!
//! Prints a Markdown table; `bench/README.md` keeps the figures.

use forgeerp_infra::inventory::{InventoryCommand, InventoryEvent, InventoryItem};
use forgeerp_infra::{
    Aggregate, AggregateId, CommandDispatcher, DomainEvent, EventStore, ExpectedVersion,
    PgEventStore, TenantId, UncommittedEvent,
};
use forgeerp_test_fixtures::{fresh_database, Install};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 4;
const REPEATS: usize = 5;

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn receive(tenant: TenantId, item: AggregateId) -> UncommittedEvent {
    let event = InventoryEvent::StockReceived {
        quantity: 1,
        lot: None,
    };
    UncommittedEvent::from_domain(tenant, InventoryItem::AGGREGATE_TYPE, item, &event).unwrap()
}

/// `streams` streams of `per_stream` commands each, `CLIENTS` tasks; per second.
/// `cache`: how many aggregate states the dispatcher keeps (0: load every time).
async fn dispatched(
    store: &Arc<PgEventStore>,
    streams: usize,
    per_stream: usize,
    cache: usize,
) -> f64 {
    let dispatcher = Arc::new(CommandDispatcher::new(store.clone()).with_cache_capacity(cache));
    let tenant = TenantId::random();
    let items: Vec<AggregateId> = (0..streams).map(|_| AggregateId::random()).collect();
    for item in &items {
        let create = InventoryCommand::CreateItem {
            sku: "S".into(),
            name: "N".into(),
        };
        dispatcher
            .dispatch::<InventoryItem>(tenant, *item, &create)
            .await
            .unwrap();
    }
    let started = Instant::now();
    let tasks: Vec<_> = items
        .chunks(streams.div_ceil(CLIENTS))
        .map(|chunk| {
            let (dispatcher, chunk) = (dispatcher.clone(), chunk.to_vec());
            tokio::spawn(async move {
                for _ in 0..per_stream {
                    for item in &chunk {
                        let command = InventoryCommand::ReceiveStock { quantity: 1 };
                        dispatcher
                            .dispatch::<InventoryItem>(tenant, *item, &command)
                            .await
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (streams * per_stream) as f64 / started.elapsed().as_secs_f64()
}

/// The same appends (one event, exact expected version) without load and decide.
async fn raw(store: &Arc<PgEventStore>, streams: usize, per_stream: usize) -> f64 {
    let tenant = TenantId::random();
    let items: Vec<AggregateId> = (0..streams).map(|_| AggregateId::random()).collect();
    for item in &items {
        store
            .append(vec![receive(tenant, *item)], ExpectedVersion::NoStream)
            .await
            .unwrap();
    }
    let started = Instant::now();
    let tasks: Vec<_> = items
        .chunks(streams.div_ceil(CLIENTS))
        .map(|chunk| {
            let (store, chunk) = (store.clone(), chunk.to_vec());
            tokio::spawn(async move {
                for round in 0..per_stream {
                    for item in &chunk {
                        let expected = ExpectedVersion::Exact(1 + round as u64);
                        store
                            .append(vec![receive(tenant, *item)], expected)
                            .await
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (streams * per_stream) as f64 / started.elapsed().as_secs_f64()
}

/// Mean time to load and rehydrate a stream of `length` events.
async fn rehydration(store: &Arc<PgEventStore>, length: usize) -> (Duration, Duration) {
    let tenant = TenantId::random();
    let item = AggregateId::random();
    let create = InventoryEvent::ItemCreated {
        sku: "S".into(),
        name: "N".into(),
    };
    let mut batch =
        vec![
            UncommittedEvent::from_domain(tenant, InventoryItem::AGGREGATE_TYPE, item, &create)
                .unwrap(),
        ];
    batch.extend((1..length).map(|_| receive(tenant, item)));
    store
        .append(batch, ExpectedVersion::NoStream)
        .await
        .unwrap();
    let dispatcher = CommandDispatcher::new(store.clone());
    let rounds = (20_000 / length).clamp(20, 500);
    let started = Instant::now();
    for _ in 0..rounds {
        let (state, version) = dispatcher
            .load::<InventoryItem>(tenant, item)
            .await
            .unwrap();
        assert_eq!(version as usize, length);
        assert_eq!(state.on_hand as usize, length - 1);
    }
    let load = started.elapsed() / rounds as u32;
    let events = store.load_stream(tenant, item).await.unwrap();
    let started = Instant::now();
    for _ in 0..rounds {
        let decoded: Vec<InventoryEvent> = events
            .iter()
            .map(|e| InventoryEvent::from_payload(&e.event_type, &e.payload).unwrap())
            .collect();
        std::hint::black_box(InventoryItem::rehydrate(&decoded));
    }
    (load, started.elapsed() / rounds as u32)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = fresh_database("forgeerp_bench_driver", Install::Current).await;
    let store = Arc::new(PgEventStore::connect(&url, CLIENTS).unwrap());

    println!("| workload | raw appends/s | dispatched/s (as shipped) | overhead | dispatched/s, no state cache | overhead |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, streams, per_stream) in [
        ("one hot aggregate, stream grows to 100", 1, 100),
        ("4 aggregates, streams grow to 100", 4, 100),
        ("400 aggregates, streams grow to 10", 400, 10),
    ] {
        // Interleaved repeats, median of each: the machine's noise is larger
        // than some of the differences.
        let (mut raws, mut cached, mut uncached) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..REPEATS {
            raws.push(raw(&store, streams, per_stream).await);
            cached.push(dispatched(&store, streams, per_stream, 4096).await);
            uncached.push(dispatched(&store, streams, per_stream, 0).await);
        }
        let (raw_rate, cached_rate, uncached_rate) =
            (median(raws), median(cached), median(uncached));
        let overhead = |rate: f64| format!("{:+.0}%", (raw_rate / rate - 1.0) * 100.0);
        println!(
            "| {label} | {raw_rate:.0} | {cached_rate:.0} | {} | {uncached_rate:.0} | {} |",
            overhead(cached_rate),
            overhead(uncached_rate)
        );
    }

    println!();
    println!("| stream length | load + check + rehydrate (round trip included) | decode + rehydrate in memory |");
    println!("|---:|---:|---:|");
    for length in [10, 100, 1000] {
        let (load, rehydrate) = rehydration(&store, length).await;
        println!(
            "| {length} | {:.0} µs | {:.0} µs |",
            load.as_secs_f64() * 1e6,
            rehydrate.as_secs_f64() * 1e6
        );
    }
}

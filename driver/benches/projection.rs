//! Projection catch-up against the raw feed scan, with one worker and with
//! two partitions, and end-to-end latency from append commit to projection
//! applied at a steady append rate. Each catch-up also reports how busy the
//! machine's cores were (every process) and how much of that was this
//! process (the driver).
//!
//! ```sh
//! bash scripts/setup.sh && cargo bench -p forgeerp-infra --bench projection
//! ```

use forgeerp_infra::inventory::{InventoryEvent, InventoryItem};
use forgeerp_infra::{
    Aggregate, AggregateId, DomainEvent, EventStore, ExpectedVersion, FeedPosition,
    InventoryStockProjection, Partition, PgEventStore, PgNotifyEventBus, ProjectionWorker,
    TenantId, UncommittedEvent, WorkerConfig,
};
use forgeerp_test_fixtures::{fresh_database, Install};
use std::time::{Duration, Instant};

/// Streams of the backlog: `FORGEERP_BENCH_STREAMS`, default 1,000 (100,000 events).
fn backlog_streams() -> usize {
    std::env::var("FORGEERP_BENCH_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}
const EVENTS_PER_STREAM: usize = 100;
const RATE: u64 = 200;
const LATENCY_SECONDS: u64 = 10;

/// An event at its type's current version, as the dispatcher writes it
/// (version-1 `StockReceived` events would be upcast on every read).
fn event(tenant: TenantId, item: AggregateId, event: InventoryEvent) -> UncommittedEvent {
    static UPCASTERS: std::sync::OnceLock<forgeerp_infra::Upcasters> = std::sync::OnceLock::new();
    let version = UPCASTERS
        .get_or_init(forgeerp_infra::inventory::upcasters)
        .current_version(event.event_type());
    UncommittedEvent::from_domain(tenant, InventoryItem::AGGREGATE_TYPE, item, &event)
        .unwrap()
        .with_event_version(version)
}

async fn checkpoint(store: &PgEventStore) -> FeedPosition {
    ProjectionWorker::checkpoint(store.pool(), "inventory_stock", None)
        .await
        .unwrap()
}

/// CPU time the whole machine has spent busy so far (every process: this
/// one and the PostgreSQL backends), from /proc/stat, in seconds.
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().unwrap())
        .collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7];
    busy as f64 / 100.0 // USER_HZ
}

/// CPU time this process (the driver: subscriptions and workers) has used
/// so far, from /proc/self/stat, in seconds.
fn driver_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); after the name, 12 and 13 (from 1).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0 // USER_HZ
}

/// CPU use since a start: every core of the machine, and this process.
struct Cpu {
    machine: f64,
    driver: f64,
    at: Instant,
}

impl Cpu {
    fn start() -> Self {
        Cpu {
            machine: machine_busy(),
            driver: driver_busy(),
            at: Instant::now(),
        }
    }

    /// "cores busy: M (driver D)", on average since the start.
    fn report(&self) -> String {
        let seconds = self.at.elapsed().as_secs_f64();
        format!(
            "cores busy: {:.2}, of them the driver {:.2}",
            (machine_busy() - self.machine) / seconds,
            (driver_busy() - self.driver) / seconds
        )
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = fresh_database("forgeerp_bench_projection", Install::Current).await;
    let store = PgEventStore::connect(&url, 6).unwrap();
    forgeerp_infra::migrate(store.pool()).await.unwrap();
    let tenant = TenantId::random();

    // The backlog.
    for _ in 0..backlog_streams() {
        let item = AggregateId::random();
        let mut batch = vec![event(
            tenant,
            item,
            InventoryEvent::ItemCreated {
                sku: "S".into(),
                name: "N".into(),
            },
        )];
        batch.extend((1..EVENTS_PER_STREAM).map(|_| {
            event(
                tenant,
                item,
                InventoryEvent::StockReceived {
                    quantity: 1,
                    lot: None,
                },
            )
        }));
        store
            .append(batch, ExpectedVersion::NoStream)
            .await
            .unwrap();
    }
    let total = backlog_streams() * EVENTS_PER_STREAM;

    // Raw scan of the same backlog, in pages of 2,000 like the subscription.
    let (cpu, started) = (Cpu::start(), Instant::now());
    let (mut after, mut scanned) = (FeedPosition::default(), 0);
    loop {
        let page = store.read_all(after, 2000, None).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap().position();
        scanned += page.len();
    }
    let scan_rate = scanned as f64 / started.elapsed().as_secs_f64();
    let scan_cores = cpu.report();
    assert_eq!(scanned, total);

    // Catch-up of a new worker over the same backlog.
    let bus = PgNotifyEventBus::new(url.clone());
    let (cpu, started) = (Cpu::start(), Instant::now());
    let worker = ProjectionWorker::spawn(
        store.pool().clone(),
        bus.clone(),
        InventoryStockProjection,
        None,
        WorkerConfig::default(),
    );
    while checkpoint(&store).await < after {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let catch_up_rate = total as f64 / started.elapsed().as_secs_f64();
    let catch_up_cores = cpu.report();

    // Latency at a steady rate: commit of the append to checkpoint past it.
    let items: Vec<AggregateId> = (0..20).map(|_| AggregateId::random()).collect();
    for item in &items {
        store
            .append(
                vec![event(
                    tenant,
                    *item,
                    InventoryEvent::ItemCreated {
                        sku: "S".into(),
                        name: "N".into(),
                    },
                )],
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
    }
    let mut pending: Vec<(FeedPosition, Instant)> = Vec::new();
    let mut latencies: Vec<Duration> = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let end = Instant::now() + Duration::from_secs(LATENCY_SECONDS);
    let mut n = 0;
    while Instant::now() < end || !pending.is_empty() {
        if Instant::now() < end {
            ticker.tick().await;
            let item = items[n % items.len()];
            n += 1;
            let stored = store
                .append(
                    vec![event(
                        tenant,
                        item,
                        InventoryEvent::StockReceived {
                            quantity: 1,
                            lot: None,
                        },
                    )],
                    ExpectedVersion::Any,
                )
                .await
                .unwrap();
            pending.push((stored[0].position(), Instant::now()));
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let at = checkpoint(&store).await;
        let now = Instant::now();
        pending.retain(|(position, committed)| {
            if *position <= at {
                latencies.push(now - *committed);
                false
            } else {
                true
            }
        });
    }
    worker.shutdown().await.unwrap();
    latencies.sort();

    // Catch-up again, over the whole feed, by two partitions at once.
    store
        .pool()
        .get()
        .await
        .unwrap()
        .batch_execute(
            "DELETE FROM forgeerp_read.entries WHERE model = 'inventory_stock';
             DELETE FROM forgeerp_inventory.stock_history_runs;
             DELETE FROM forgeerp_read.checkpoints WHERE projection = 'inventory_stock';",
        )
        .await
        .unwrap();
    // The same start as the first catch-up's: no dead rows of the first
    // read model left for the second to step over.
    for table in [
        "forgeerp_read.entries",
        "forgeerp_inventory.stock_history_runs",
        "forgeerp_read.checkpoints",
    ] {
        store
            .pool()
            .get()
            .await
            .unwrap()
            .batch_execute(&format!("VACUUM {table}"))
            .await
            .unwrap();
    }
    let head = store
        .read_all(FeedPosition::default(), usize::MAX >> 1, None)
        .await
        .unwrap()
        .last()
        .unwrap()
        .position();
    let all_events = store
        .read_all(FeedPosition::default(), usize::MAX >> 1, None)
        .await
        .unwrap()
        .len();
    let (cpu, started) = (Cpu::start(), Instant::now());
    let partitions: Vec<_> = Partition::all(2)
        .map(|partition| {
            ProjectionWorker::spawn(
                store.pool().clone(),
                bus.clone(),
                InventoryStockProjection,
                None,
                WorkerConfig {
                    partition,
                    ..WorkerConfig::default()
                },
            )
        })
        .collect();
    for partition in Partition::all(2) {
        while ProjectionWorker::partition_checkpoint(
            store.pool(),
            "inventory_stock",
            None,
            partition,
        )
        .await
        .unwrap()
            < head
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let two_rate = all_events as f64 / started.elapsed().as_secs_f64();
    let two_cores = cpu.report();
    for worker in partitions {
        worker.shutdown().await.unwrap();
    }
    let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];

    println!("| measurement | figure |");
    println!("|---|---:|");
    println!("| raw `read_all` scan of {total} events | {scan_rate:.0} events/s ({scan_cores}) |");
    println!("| projection catch-up over the same backlog | {catch_up_rate:.0} events/s ({:.2}x the scan; {catch_up_cores}) |", catch_up_rate / scan_rate);
    println!("| the same catch-up by 2 partitions at once ({all_events} events) | {two_rate:.0} events/s ({:.2}x one; {two_cores}) |", two_rate / catch_up_rate);
    println!(
        "| append → projection applied, {RATE} appends/s for {LATENCY_SECONDS} s, p50 | {:.1} ms |",
        quantile(0.5).as_secs_f64() * 1e3
    );
    println!(
        "| same, p99 | {:.1} ms |",
        quantile(0.99).as_secs_f64() * 1e3
    );
    println!(
        "| same, max | {:.1} ms |",
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
}

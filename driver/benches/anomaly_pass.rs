//! One anomaly-runner pass over a tenant of 1,000 items with 180 days of
//! realistic history each (`anomaly::realistic`, seed 1), as the runner
//! does it: read the tenant's snapshot, detect, write the insights; and the
//! detector alone on the same snapshot. Run against the private cluster:
//!
//! ```sh
//! bash scripts/setup.sh && cargo bench -p forgeerp-infra --bench anomaly_pass
//! ```
//!
//! Prints a Markdown table; `bench/README.md` keeps the figures.

use forgeerp_infra::anomaly::{realistic, AnomalyDetector};
use forgeerp_infra::inventory::{InventoryEvent, InventoryItem};
use forgeerp_infra::{
    Aggregate, AiInsight, AiInsightSink, EventStore, ExpectedVersion, InventoryStockProjection,
    InventoryStockReader, PgEventStore, PgInsightSink, ReadModelReader, TenantId, UncommittedEvent,
};
use forgeerp_test_fixtures::{fresh_database, Install};
use std::time::{Duration, Instant};

const ITEMS: usize = 1000;
const ROUNDS: usize = 5;

/// The events that give `series`' trend: receipts, pre-order reservations
/// and their release, shipments (which consume reservations) and losses
/// (adjustments, which do not).
fn events(tenant: TenantId, series: &realistic::Series) -> Vec<UncommittedEvent> {
    let item = series.item;
    let event = |e: InventoryEvent, at| {
        UncommittedEvent::from_domain(tenant, InventoryItem::AGGREGATE_TYPE, item, &e)
            .unwrap()
            .occurred_at(at)
    };
    let mut all = vec![event(
        InventoryEvent::ItemCreated {
            sku: format!("SKU-{}", item.as_uuid().simple()),
            name: "an item".into(),
        },
        series.trend[0].at,
    )];
    for pair in series.trend.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let (moved, held) = (b.on_hand - a.on_hand, b.reserved - a.reserved);
        let e = if moved > 0 {
            InventoryEvent::StockReceived {
                quantity: moved,
                lot: None,
            }
        } else if moved < 0 && held < 0 {
            InventoryEvent::StockShipped { quantity: -moved }
        } else if moved < 0 {
            InventoryEvent::StockAdjusted {
                delta: moved,
                reason: "cycle count".into(),
            }
        } else if held > 0 {
            InventoryEvent::StockReserved { quantity: held }
        } else if held < 0 {
            InventoryEvent::ReservationReleased { quantity: -held }
        } else {
            continue;
        };
        all.push(event(e, b.at));
    }
    all
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = fresh_database("forgeerp_bench_anomaly_pass", Install::Current).await;
    let store = PgEventStore::connect(&url, 4).unwrap();
    forgeerp_infra::migrate(store.pool()).await.unwrap();
    let tenant = TenantId::random();
    let items = realistic::generate(1, ITEMS, 180);
    let mut appended = 0;
    for series in &items {
        let batch = events(tenant, series);
        appended += batch.len();
        store
            .append(batch, ExpectedVersion::NoStream)
            .await
            .unwrap();
    }
    InventoryStockProjection::rebuild_tenant(store.pool(), tenant)
        .await
        .unwrap();
    let reader = InventoryStockReader::new(store.pool().clone());
    let sink = PgInsightSink::new(store.pool().clone());
    let detector = AnomalyDetector::default();
    let (mut read, mut detect, mut write, mut pass) = (vec![], vec![], vec![], vec![]);
    let mut found = 0;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let snapshot = reader.snapshot(tenant).await.unwrap();
        let after_read = Instant::now();
        let insights = AiInsight::detect(&detector, tenant, &snapshot);
        let after_detect = Instant::now();
        sink.emit(tenant, &insights).await.unwrap();
        let done = Instant::now();
        assert_eq!(snapshot.items.len(), ITEMS);
        found = insights.len();
        read.push(after_read - started);
        detect.push(after_detect - after_read);
        write.push(done - after_detect);
        pass.push(done - started);
    }
    println!("{ITEMS} items, {appended} events, {found} findings; median of {ROUNDS} passes:\n");
    println!("| step | ms | share of the pass |");
    println!("|---|---:|---:|");
    let whole = median(pass);
    for (name, times) in [
        ("read the snapshot", read),
        ("detect", detect),
        ("write the insights", write),
    ] {
        let t = median(times);
        println!(
            "| {name} | {:.1} | {:.2} |",
            millis(t),
            t.as_secs_f64() / whole.as_secs_f64()
        );
    }
    println!("| one pass | {:.1} | 1.00 |", millis(whole));
}

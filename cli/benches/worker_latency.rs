//! Append-to-applied latency with the read side running as the service: a
//! `forgeerp worker` process (the real binary) against a fresh database,
//! 200 single-event appends per second for 10 s, each timed from its commit
//! until the worker's checkpoint passes it.
//!
//! ```sh
//! bash scripts/setup.sh && cargo bench -p forgeerp-cli --bench worker_latency
//! ```

use forgeerp_test_fixtures::{fresh_database, url, Install};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RATE: u64 = 200;
const SECONDS: u64 = 10;
const TENANT: &str = "9b0c6a36-2d2a-4a57-8d2c-1f0e9a7b3c11";

async fn checkpoint(client: &tokio_postgres::Client) -> (i64, i64) {
    client
        .query_opt(
            "SELECT transaction_id, global_position FROM forgeerp_read.checkpoints WHERE projection = 'inventory_stock'",
            &[],
        )
        .await
        .unwrap()
        .map_or((0, 0), |r| (r.get(0), r.get(1)))
}

async fn append(client: &tokio_postgres::Client, item: &str, event: &str) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT transaction_id, global_position FROM forgeerp.append($1::text::uuid, 'inventory.item', $2::text::uuid, NULL, $3::text::jsonb)",
            &[&TENANT, &item, &event],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let name = "forgeerp_bench_worker_latency";
    let conninfo = fresh_database(name, Install::Current).await;
    let connect = || async {
        let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    };
    // The driver's tables first: the checkpoint is read from them.
    let migrated = Command::new(env!("CARGO_BIN_EXE_forgeerp"))
        .arg("migrate")
        .env("DATABASE_URL", url(name))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(migrated.success(), "forgeerp migrate");
    let (writer, watcher) = (connect().await, connect().await);
    let items: Vec<String> = (1..=20)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    let mut last = (0, 0);
    for item in &items {
        last = append(
            &writer,
            item,
            r#"[{"event_type": "ItemCreated", "payload": {"sku": "S", "name": "N"}}]"#,
        )
        .await;
    }
    let mut worker = Command::new(env!("CARGO_BIN_EXE_forgeerp"))
        .arg("worker")
        .env("DATABASE_URL", url(name))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while checkpoint(&watcher).await < last {
        assert!(Instant::now() < deadline, "the worker never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut pending: Vec<((i64, i64), Instant)> = Vec::new();
    let mut latencies: Vec<Duration> = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let end = Instant::now() + Duration::from_secs(SECONDS);
    let mut n = 0;
    while Instant::now() < end || !pending.is_empty() {
        if Instant::now() < end {
            ticker.tick().await;
            let position = append(
                &writer,
                &items[n % items.len()],
                r#"[{"event_type": "StockReceived", "payload": {"quantity": 1}}]"#,
            )
            .await;
            n += 1;
            pending.push((position, Instant::now()));
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let at = checkpoint(&watcher).await;
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
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    let status = worker.wait().unwrap();
    assert!(status.success(), "the worker stopped with {status}");
    latencies.sort();
    let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "| `forgeerp worker` process, {RATE} appends/s for {SECONDS} s ({} appends) | figure |",
        latencies.len()
    );
    println!("|---|---:|");
    println!(
        "| append → applied, p50 | {:.1} ms |",
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

//! PostgreSQL restarts under a running projection worker: it reconnects,
//! catches up from its checkpoint, loses nothing and counts nothing twice.
//!
//! Restarts the private cluster of `scripts/setup.sh` (as the `postgres` OS
//! user, with `pg_ctl`): the only test in its binary, so no other test runs
//! meanwhile. Needs `FORGEERP_PGDATA` (exported by `scripts/env.sh`).

mod common;

use forgeerp_infra::event_bus::pg_notify::SubscriptionConfig;
use forgeerp_infra::inventory::{InventoryCommand as C, InventoryItem};
use forgeerp_infra::{
    AggregateId, CommandDispatcher, DispatchError, EventStore, EventStoreError, FeedPosition,
    InventoryStockProjection, PgNotifyEventBus, ProjectionWorker, RetryPolicy, TenantId,
    WorkerConfig,
};
use std::time::{Duration, Instant};

fn restart_cluster() {
    let pgdata = std::env::var("FORGEERP_PGDATA").expect(
        "FORGEERP_PGDATA must name the private cluster's data directory (source scripts/env.sh)",
    );
    let status = std::process::Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            "/usr/lib/postgresql/15/bin/pg_ctl",
            "-D",
            &pgdata,
            "-w",
            "-m",
            "fast",
            "restart",
        ])
        .args(["-l", &format!("{pgdata}/server.log")])
        .current_dir("/")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run pg_ctl");
    assert!(status.success(), "pg_ctl restart failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_survives_a_postgres_restart_without_loss_or_double_count() {
    let (url, store) = common::migrated_database("_restart", 4).await;
    let bus = PgNotifyEventBus::new(url.clone()).with_config(SubscriptionConfig {
        poll_interval: Duration::from_millis(200),
        max_backoff: Duration::from_millis(500),
        ..SubscriptionConfig::default()
    });
    let config = WorkerConfig {
        max_attempts: 50,
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
        ..WorkerConfig::default()
    };
    let worker = ProjectionWorker::spawn(
        store.pool().clone(),
        bus,
        InventoryStockProjection,
        None,
        config,
    );
    let dispatcher = CommandDispatcher::new(store.clone()).with_retry(RetryPolicy::attempts(3));
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

    // Receipts before, during and after the restart; count those that committed.
    let mut received = 0;
    for round in 0..60 {
        if round == 20 {
            restart_cluster();
        }
        match dispatcher
            .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 1 })
            .await
        {
            Ok(_) => received += 1,
            // A pooled connection broken by the restart: the command did not happen.
            Err(DispatchError::Store(
                EventStoreError::Connection(_) | EventStoreError::Database { .. },
            )) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert!(
        received >= 30,
        "most commands after the restart went through: {received}"
    );

    let last = store
        .read_all(FeedPosition::default(), 10_000, Some(tenant))
        .await
        .unwrap()
        .last()
        .unwrap()
        .position();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ProjectionWorker::checkpoint(store.pool(), "inventory_stock", None)
        .await
        .map(|at| at < last)
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "the worker never caught up after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The truth is the stream (a commit whose reply was lost in the restart
    // counts there, not in `received`).
    let stored_receipts = store.stream_version(tenant, item).await.unwrap() as i64 - 1;
    assert!(stored_receipts >= received);
    let stock = InventoryStockProjection::stock(store.pool(), tenant)
        .await
        .unwrap();
    assert_eq!(
        stock[0].1.on_hand, stored_receipts,
        "no loss, no double count"
    );
    let history = InventoryStockProjection::history(store.pool(), tenant, item)
        .await
        .unwrap();
    assert_eq!(history.len() as i64, stored_receipts + 1);
    worker.shutdown().await.unwrap();
}

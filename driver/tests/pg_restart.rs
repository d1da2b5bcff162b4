//! PostgreSQL restarts under a running projection worker, while commands
//! are being dispatched: the worker reconnects, catches up from its
//! checkpoint, loses nothing and counts nothing twice; the commands fail
//! only with the errors a restart causes.
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

    // Receipts before, during and after the restart (pg_ctl runs on a thread
    // of its own meanwhile); count those that committed.
    let mut received = 0;
    let (mut failed, mut during) = (0, 0);
    let mut restart: Option<tokio::task::JoinHandle<()>> = None;
    let mut after_restart = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while after_restart < 40 {
        assert!(Instant::now() < deadline, "the commands never came back");
        if received == 20 && restart.is_none() {
            restart = Some(tokio::task::spawn_blocking(restart_cluster));
        }
        let restarting = restart.as_ref().is_some_and(|r| !r.is_finished());
        match dispatcher
            .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 1 })
            .await
        {
            Ok(_) => received += 1,
            // The restart as a client sees it: a connection that broke or
            // could not be had (08…), ended by the shutdown (57P01) or
            // refused while the server starts or stops (57P03). Any other
            // error fails the test.
            Err(DispatchError::Store(EventStoreError::Connection(_))) => failed += 1,
            Err(DispatchError::Store(EventStoreError::Database { sqlstate, .. }))
                if sqlstate.starts_with("08") || sqlstate == "57P01" || sqlstate == "57P03" =>
            {
                failed += 1
            }
            Err(other) => panic!("not an error of a restart: {other}"),
        }
        if restarting {
            during += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if restart.as_ref().is_some_and(|r| r.is_finished()) {
            after_restart += 1;
        }
    }
    restart.expect("the cluster was restarted").await.unwrap();
    assert!(during >= 1, "commands ran while the server restarted");
    assert!(failed >= 1, "the restart was felt: no command failed");
    assert!(
        received >= 50,
        "the commands before and after the restart went through: {received}"
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

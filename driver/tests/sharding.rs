//! The driver over a sharded deployment on the clusters of
//! `scripts/setup_shards.sh` (a PL/Proxy proxy and two shards, each its own
//! cluster), in databases of this test process's own: the dispatcher
//! over a `ShardedEventStore`, projection workers over both shards (one
//! checkpoint per shard) into read models on the proxy database equal to a
//! rebuild, and a shard lost while writers and the workers run.
//!
//! Run by `scripts/test.sh` in tier 5, after `scripts/setup_shards.sh`
//! (`test = false` in Cargo.toml: not part of the single-cluster tier).

use forgeerp_infra::inventory::{InventoryCommand as C, InventoryItem};
use forgeerp_infra::{
    AggregateId, CommandDispatcher, ConnectionSettings, EventStore, EventStoreError, FeedPosition,
    InventoryStockProjection, PgEventStore, ProjectionWorker, ShardedEventBus, ShardedEventStore,
    ShardedWorkers, TenantId, WorkerConfig,
};
use std::time::{Duration, Instant};

fn port(var: &str, default: u16) -> u16 {
    std::env::var(var)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

fn url(port: u16, database: &str) -> String {
    format!("postgresql://postgres@127.0.0.1:{port}/{database}")
}

/// This test process's own sharded deployment on the clusters of
/// `scripts/setup_shards.sh`: a fresh database on each shard (the extension,
/// its range of positions) and a fresh proxy database routing to them, with
/// the driver's tables (the read models). Other tiers' events are not in its
/// feeds. Left-over databases of earlier runs are dropped first.
struct Deployment {
    shards: [String; 2],
    proxy: String,
}

async fn deployment() -> &'static Deployment {
    static DEPLOYMENT: tokio::sync::OnceCell<Deployment> = tokio::sync::OnceCell::const_new();
    DEPLOYMENT
        .get_or_init(|| async {
            let name = format!("forgeerp_driver_sharding_{}", std::process::id());
            let ports = [
                port("FORGEERP_SHARD0_PORT", 28818),
                port("FORGEERP_SHARD1_PORT", 28819),
                port("FORGEERP_PROXY_PORT", 28817),
            ];
            for port in ports {
                let admin = connect(&url(port, "postgres")).await;
                let old: Vec<String> = admin
                    .query("SELECT datname FROM pg_database WHERE datname LIKE 'forgeerp\\_driver\\_sharding\\_%'", &[])
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                for database in old {
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).await.unwrap();
                }
                admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
            }
            for (shard, port) in ports[..2].iter().enumerate() {
                let db = connect(&url(*port, &name)).await;
                let (lo, hi) = (((shard as i64) << 48) + 1, (shard as i64 + 1) << 48);
                db.batch_execute(&format!(
                    "CREATE EXTENSION forgeerp;
                     ALTER SEQUENCE forgeerp.events_global_position_seq MINVALUE {lo} MAXVALUE {hi} START WITH {lo} RESTART WITH {lo}"
                ))
                .await
                .unwrap();
            }
            let proxy = connect(&url(ports[2], &name)).await;
            proxy
                .batch_execute(&format!(
                    "CREATE EXTENSION plproxy; CREATE EXTENSION forgeerp_proxy;
                     CREATE SERVER forgeerp_shards FOREIGN DATA WRAPPER plproxy
                         OPTIONS (p0 'host=127.0.0.1 port={} dbname={name}', p1 'host=127.0.0.1 port={} dbname={name}');
                     CREATE USER MAPPING FOR PUBLIC SERVER forgeerp_shards;",
                    ports[0], ports[1]
                ))
                .await
                .unwrap();
            let read = PgEventStore::connect(&url(ports[2], &name), 2).unwrap();
            forgeerp_infra::migrate(read.pool()).await.unwrap();
            Deployment {
                shards: [url(ports[0], &name), url(ports[1], &name)],
                proxy: url(ports[2], &name),
            }
        })
        .await
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn sharded() -> (ShardedEventStore, ShardedEventBus) {
    let urls = &deployment().await.shards;
    let store = ShardedEventStore::connect(&[&urls[0], &urls[1]], 4).unwrap();
    let bus = ShardedEventBus::new(
        urls.iter()
            .map(|u| ConnectionSettings::parse(u).unwrap())
            .collect(),
    );
    (store, bus)
}

/// The read-model database: this deployment's proxy database.
async fn read_models() -> PgEventStore {
    PgEventStore::connect(&deployment().await.proxy, 4).unwrap()
}

/// A random tenant on `shard` (of two).
fn tenant_on(shard: usize) -> TenantId {
    loop {
        let tenant = TenantId::random();
        if forgeerp_infra::sharding::shard_of(tenant, 2) == shard {
            return tenant;
        }
    }
}

/// Each shard's head: the last position of its feed.
async fn heads(store: &ShardedEventStore) -> Vec<FeedPosition> {
    let mut heads = Vec::new();
    for shard in 0..store.len() {
        let events = store
            .shard(shard)
            .read_all(FeedPosition::default(), 1_000_000, None)
            .await
            .unwrap();
        heads.push(events.last().map(|e| e.position()).unwrap_or_default());
    }
    heads
}

async fn wait_for_shard(read: &PgEventStore, shard: u32, head: FeedPosition, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let at = ProjectionWorker::shard_checkpoint(read.pool(), "inventory_stock", None, shard)
            .await
            .unwrap();
        if at >= head {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "shard {shard}'s worker is at {at}, not {head}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn stock(read: &PgEventStore, tenant: TenantId) -> Vec<(AggregateId, i64, u64)> {
    let mut levels: Vec<_> = InventoryStockProjection::stock(read.pool(), tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|(item, level)| (item, level.on_hand, level.last_sequence))
        .collect();
    levels.sort_by_key(|(item, _, _)| item.as_uuid());
    levels
}

#[tokio::test]
async fn the_dispatcher_and_the_workers_run_over_both_shards_as_over_one_store() {
    let (store, bus) = sharded().await;
    let read = read_models().await;
    let dispatcher = CommandDispatcher::new(store.clone());
    let tenants = [tenant_on(0), tenant_on(1), tenant_on(0), tenant_on(1)];
    for tenant in tenants {
        for _ in 0..3 {
            let item = AggregateId::random();
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
            dispatcher
                .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 7 })
                .await
                .unwrap();
        }
    }
    // Each tenant's events are on its shard only.
    for tenant in tenants {
        let other = 1 - store.shard_of(tenant);
        let there = store
            .shard(other)
            .read_all(FeedPosition::default(), 1_000_000, Some(tenant))
            .await
            .unwrap();
        assert!(there.is_empty());
    }
    // The global feed is per shard.
    assert!(matches!(
        store.read_all(FeedPosition::default(), 10, None).await,
        Err(EventStoreError::InvalidAppend(_))
    ));

    let workers = ShardedWorkers::spawn(
        read.pool().clone(),
        &bus,
        InventoryStockProjection,
        None,
        WorkerConfig::default(),
    );
    let heads = heads(&store).await;
    for (shard, head) in heads.iter().enumerate() {
        wait_for_shard(&read, shard as u32, *head, Duration::from_secs(30)).await;
    }
    for worker in workers {
        worker.shutdown().await.unwrap();
    }
    for tenant in tenants {
        let live = stock(&read, tenant).await;
        assert_eq!(live.len(), 3);
        assert!(
            live.iter()
                .all(|(_, on_hand, version)| (*on_hand, *version) == (7, 2)),
            "{live:?}"
        );
        InventoryStockProjection::rebuild_tenant(read.pool(), tenant)
            .await
            .unwrap();
        assert_eq!(
            stock(&read, tenant).await,
            live,
            "the workers' read model equals a rebuild"
        );
    }
}

fn pg_ctl(shard: u32, args: &[&str]) {
    let state = std::env::var("FORGEERP_STATE")
        .unwrap_or_else(|_| format!("{}/../target/cluster", env!("CARGO_MANIFEST_DIR")));
    let data = format!("{state}/shards/shard{shard}");
    let log = format!("{data}/server.log");
    let mut command = std::process::Command::new("runuser");
    command
        .args([
            "-u",
            "postgres",
            "--",
            "/usr/lib/postgresql/15/bin/pg_ctl",
            "-D",
            &data,
            "-w",
            "-s",
            "-l",
            &log,
        ])
        .args(args)
        .current_dir("/");
    assert!(
        command.status().unwrap().success(),
        "pg_ctl {args:?} on shard {shard}"
    );
}

#[tokio::test]
async fn losing_a_shard_stops_only_its_tenants_and_after_it_nothing_is_lost_or_applied_twice() {
    let (store, bus) = sharded().await;
    let read = read_models().await;
    let (steady, lost) = (tenant_on(0), tenant_on(1));
    let items = [AggregateId::random(), AggregateId::random()];
    let dispatcher = CommandDispatcher::new(store.clone());
    for (tenant, item) in [(steady, items[0]), (lost, items[1])] {
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
    }
    let workers = ShardedWorkers::spawn(
        read.pool().clone(),
        &bus,
        InventoryStockProjection,
        None,
        WorkerConfig::default(),
    );
    // A writer per tenant: one unit received at a time, counting what the
    // store acknowledged and what failed.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writers: Vec<_> = [(steady, items[0]), (lost, items[1])]
        .into_iter()
        .map(|(tenant, item)| {
            let dispatcher = CommandDispatcher::new(store.clone()).with_cache_capacity(0);
            let stopped = stopped.clone();
            tokio::spawn(async move {
                let (mut acknowledged, mut failed) = (0i64, 0u32);
                while !*stopped.borrow() {
                    match dispatcher
                        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 1 })
                        .await
                    {
                        Ok(_) => acknowledged += 1,
                        Err(_) => {
                            failed += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                (acknowledged, failed)
            })
        })
        .collect();
    // The workers first catch up with whatever the shards hold (earlier
    // tiers leave events there), then shard 1 goes.
    let caught_up = heads(&store).await;
    for (shard, head) in caught_up.iter().enumerate() {
        wait_for_shard(&read, shard as u32, *head, Duration::from_secs(120)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg_ctl(1, &["-m", "immediate", "stop"]);
    // Checked in a task of its own, so that shard 1 is started again
    // whatever the checks find.
    let (store_, read_) = (store.clone(), read.clone());
    let outcome = tokio::spawn(async move {
        let (store, read) = (store_, read_);
        // While shard 1 is down, shard 0's tenant appends and its read model keeps up.
        let before = stock(&read, steady).await[0].1;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let error = store.stream_version(lost, items[1]).await.unwrap_err();
        assert!(matches!(error, EventStoreError::Connection(_)), "{error}");
        let head = heads_of(&store, 0).await;
        wait_for_shard(&read, 0, head, Duration::from_secs(10)).await;
        let after = stock(&read, steady).await[0].1;
        assert!(
            after > before,
            "shard 0's read model kept up: {before} -> {after}"
        );
    });
    let checked = tokio::time::timeout(Duration::from_secs(60), outcome).await;
    pg_ctl(1, &["start"]);
    checked
        .expect("shard 0 went on while shard 1 was down")
        .expect("the checks while shard 1 was down");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop.send(true);
    let mut counts = Vec::new();
    for writer in writers {
        counts.push(writer.await.unwrap());
    }
    assert!(
        counts[1].1 > 0,
        "the lost shard's writer saw failures: {counts:?}"
    );
    // After shard 1 is back, its worker catches up: every acknowledged
    // receipt is in the read model once.
    let heads = heads(&store).await;
    for (shard, head) in heads.iter().enumerate() {
        wait_for_shard(&read, shard as u32, *head, Duration::from_secs(60)).await;
    }
    for worker in workers {
        worker.shutdown().await.unwrap();
    }
    for ((tenant, item), (acknowledged, _)) in [(steady, items[0]), (lost, items[1])]
        .into_iter()
        .zip(&counts)
    {
        let stored = store.stream_version(tenant, item).await.unwrap() as i64;
        // An append whose acknowledgement was lost with the shard is stored
        // but not counted: at most one per failure, never fewer than counted.
        assert!(
            stored - 1 >= *acknowledged,
            "{tenant}: {stored} events, {acknowledged} acknowledged"
        );
        let level = stock(&read, tenant).await;
        assert_eq!(
            level,
            [(item, stored - 1, stored as u64)],
            "every stored receipt applied once"
        );
    }
}

async fn heads_of(store: &ShardedEventStore, shard: usize) -> FeedPosition {
    let events = store
        .shard(shard)
        .read_all(FeedPosition::default(), 1_000_000, None)
        .await
        .unwrap();
    events.last().map(|e| e.position()).unwrap_or_default()
}

#[tokio::test]
async fn a_sharded_subscription_delivers_every_shards_events_once_with_one_cursor_per_shard() {
    let (store, bus) = sharded().await;
    let start = heads(&store).await;
    let tenants = [tenant_on(0), tenant_on(1)];
    let mut appended = std::collections::HashSet::new();
    for round in 0..5 {
        for tenant in tenants {
            let event = forgeerp_infra::UncommittedEvent::new(
                tenant,
                "t",
                AggregateId::random(),
                "E",
                serde_json::json!({ "round": round }),
            );
            appended.insert(event.event_id);
            store
                .append(vec![event], forgeerp_infra::ExpectedVersion::NoStream)
                .await
                .unwrap();
        }
    }
    let mut subscription = bus.follow(&start, None);
    let mut seen = std::collections::HashSet::new();
    let mut cursor = start.clone();
    while seen.len() < appended.len() {
        let (shard, event) = tokio::time::timeout(Duration::from_secs(10), subscription.recv())
            .await
            .expect("every event arrives")
            .unwrap();
        assert_eq!(
            shard,
            store.shard_of(event.tenant_id),
            "each event with its own shard"
        );
        assert!(event.position() > cursor[shard], "per shard in feed order");
        cursor[shard] = event.position();
        if appended.contains(&event.event_id) {
            assert!(seen.insert(event.event_id), "delivered once");
        }
    }
    subscription.close().await;
    // From the cursor reached, nothing is delivered again.
    let mut again = bus.follow(&cursor, None);
    let extra = tokio::time::timeout(Duration::from_millis(500), again.recv()).await;
    if let Ok(Some((_, event))) = &extra {
        assert!(
            !appended.contains(&event.event_id),
            "an event delivered again after its cursor"
        );
    }
    again.close().await;
}

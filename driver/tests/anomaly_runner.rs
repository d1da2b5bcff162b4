//! The inventory anomaly runner: cadence, backoff and coalescing on tokio's
//! paused clock (with a scripted reader: the real one is tested end to end
//! below), isolation from the write path, and end to end on the real cluster.

mod common;

use chrono::{Duration as Days, TimeZone, Utc};
use forgeerp_infra::anomaly::{AnomalyKind, InventorySnapshot, ItemSnapshot, TrendPoint};
use forgeerp_infra::event_bus::pg_notify::SubscriptionConfig;
use forgeerp_infra::inventory::{InventoryCommand as C, InventoryItem};
use forgeerp_infra::read_model::ReadModelError;
use forgeerp_infra::{
    AggregateId, AiInsight, AiInsightSink, AnomalyDetector, CommandDispatcher, InMemoryInsightSink,
    InventoryAnomalyRunner, InventoryStockProjection, InventoryStockReader, PgEventStore,
    PgInsightSink, PgNotifyEventBus, ProjectionWorker, ReadModelReader, RunnerConfig, TenantId,
    TriggeringProjection, WorkerConfig,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A reader with a fixed snapshot (a theft-like drop in a steady series)
/// that fails its first `failures` calls and records when it was called.
#[derive(Clone)]
struct ScriptedReader {
    failures: Arc<AtomicU32>,
    calls: Arc<Mutex<Vec<tokio::time::Instant>>>,
    item: AggregateId,
}

impl ScriptedReader {
    fn new(failures: u32) -> Self {
        ScriptedReader {
            failures: Arc::new(AtomicU32::new(failures)),
            calls: Arc::default(),
            item: AggregateId::random(),
        }
    }

    fn calls(&self) -> Vec<tokio::time::Instant> {
        self.calls.lock().unwrap().clone()
    }
}

impl ReadModelReader<InventorySnapshot> for ScriptedReader {
    async fn snapshot(&self, tenant_id: TenantId) -> Result<InventorySnapshot, ReadModelError> {
        self.calls.lock().unwrap().push(tokio::time::Instant::now());
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
            .is_ok()
        {
            return Err(ReadModelError::Connection("scripted failure".into()));
        }
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap();
        let mut level = 1000;
        let mut trend = vec![TrendPoint {
            at: start,
            on_hand: level,
            reserved: 0,
        }];
        for day in 1..30 {
            level -= if day == 20 { 400 } else { 9 + day % 4 };
            trend.push(TrendPoint {
                at: start + Days::days(day),
                on_hand: level,
                reserved: 0,
            });
        }
        Ok(InventorySnapshot {
            tenant_id,
            taken_at: Utc::now(),
            items: vec![ItemSnapshot {
                item: self.item,
                sku: Some("S".into()),
                name: "N".into(),
                on_hand: level,
                reserved: 0,
                available: level,
                historical_trend: trend,
            }],
        })
    }
}

/// A sink that always fails, counting its calls.
#[derive(Clone, Default)]
struct FailingSink {
    calls: Arc<AtomicU32>,
}

impl AiInsightSink for FailingSink {
    async fn emit(&self, _: TenantId, _: &[AiInsight]) -> Result<(), ReadModelError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(ReadModelError::Connection("sink down".into()))
    }
}

fn config(tenant: TenantId) -> RunnerConfig {
    RunnerConfig {
        interval: Duration::from_secs(60),
        tenants: vec![tenant],
        coalesce: Duration::from_millis(500),
        queue_capacity: 16,
        max_attempts: 4,
        min_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(3),
    }
}

#[tokio::test(start_paused = true)]
async fn runs_on_its_interval() {
    let tenant = TenantId::random();
    let (reader, sink) = (ScriptedReader::new(0), InMemoryInsightSink::new());
    let runner = InventoryAnomalyRunner::spawn(
        reader.clone(),
        sink.clone(),
        AnomalyDetector::default(),
        config(tenant),
    );
    let start = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(runner.stats().runs, 0, "nothing before the first interval");
    tokio::time::sleep(Duration::from_secs(122)).await;
    let stats = runner.shutdown().await;
    assert_eq!((stats.runs, stats.finished), (3, 3));
    let offsets: Vec<u64> = reader
        .calls()
        .iter()
        .map(|t| (*t - start).as_secs())
        .collect();
    assert_eq!(offsets, vec![60, 120, 180]);
    let insights = sink.insights(tenant);
    assert_eq!(
        insights.len(),
        1,
        "the same finding each run, stored once: {insights:?}"
    );
    assert_eq!(insights[0].kind, AnomalyKind::UnusualOutflow);
    assert_eq!(insights[0].observed, 400.0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_run_is_retried_with_exponential_backoff_then_given_up() {
    let tenant = TenantId::random();
    let reader = ScriptedReader::new(2);
    let sink = InMemoryInsightSink::new();
    let runner = InventoryAnomalyRunner::spawn(
        reader.clone(),
        sink.clone(),
        AnomalyDetector::default(),
        config(tenant),
    );
    tokio::time::sleep(Duration::from_secs(70)).await;
    let calls = reader.calls();
    let gaps: Vec<u64> = calls.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(gaps, vec![1, 2], "backoff 1 s, then 2 s");
    assert_eq!(
        sink.insights(tenant).len(),
        1,
        "the third attempt got through"
    );
    let stats = runner.stats();
    assert_eq!(
        (stats.runs, stats.failed_attempts, stats.abandoned_runs),
        (1, 2, 0)
    );

    // A sink that never works: 4 attempts (backoff 1, 2, 3 s: capped), given up, no panic.
    let runner2 = InventoryAnomalyRunner::spawn(
        ScriptedReader::new(0),
        FailingSink::default(),
        AnomalyDetector::default(),
        config(tenant),
    );
    tokio::time::sleep(Duration::from_secs(60 + 1 + 2 + 3 + 1)).await;
    let stats = runner2.shutdown().await;
    assert_eq!(
        (stats.runs, stats.failed_attempts, stats.abandoned_runs),
        (1, 4, 1)
    );
    runner.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_ten_thousand_triggers_makes_at_most_two_runs() {
    let tenant = TenantId::random();
    let reader = ScriptedReader::new(0);
    let mut config = config(tenant);
    config.interval = Duration::from_secs(3600);
    let runner = InventoryAnomalyRunner::spawn(
        reader.clone(),
        InMemoryInsightSink::new(),
        AnomalyDetector::default(),
        config,
    );
    let trigger = runner.trigger_handle();
    for _ in 0..10_000 {
        trigger.trigger(tenant); // 16 queued, the rest dropped: never blocks
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let runs = runner.stats().runs;
    assert!((1..=2).contains(&runs), "{runs} runs");
    assert_eq!(
        reader.calls().len() as u64,
        runs,
        "one snapshot per run for one tenant"
    );

    // A later trigger is a new run.
    runner.trigger(tenant);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(runner.stats().runs, runs + 1);
    runner.shutdown().await;
}

async fn setup(suffix: &str) -> (String, PgEventStore, PgNotifyEventBus) {
    let (url, store) = common::migrated_database(suffix, 6).await;
    let bus = PgNotifyEventBus::new(url.clone()).with_config(SubscriptionConfig {
        poll_interval: Duration::from_millis(200),
        ..SubscriptionConfig::default()
    });
    (url, store, bus)
}

async fn create(dispatcher: &CommandDispatcher<PgEventStore>, tenant: TenantId, item: AggregateId) {
    dispatcher
        .dispatch::<InventoryItem>(
            tenant,
            item,
            &C::CreateItem {
                sku: "BOLT".into(),
                name: "M8 bolt".into(),
            },
        )
        .await
        .unwrap();
    dispatcher
        .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 5000 })
        .await
        .unwrap();
}

/// Every event in the store (the tests connect as a superuser).
async fn count_events(store: &PgEventStore) -> i64 {
    let client = store.pool().get().await.unwrap();
    client
        .query_one("SELECT count(*) FROM forgeerp.events", &[])
        .await
        .unwrap()
        .get(0)
}

/// Each fault on its own: a reader that always fails (the sink is never
/// reached), then a reader that works and a sink that always fails (the
/// sink is called, and fails, again and again). Neither disturbs appends
/// or the projection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_sink_and_a_failing_reader_do_not_disturb_appends_or_projections() {
    let (stats, sink_calls) = busy_failing_runner("_anomaly_failing_reader", u32::MAX).await;
    assert!(
        stats.runs >= 2 && stats.failed_attempts >= 2,
        "the runner was busy failing meanwhile: {stats:?}"
    );
    assert_eq!(sink_calls, 0, "a failing reader leaves nothing to emit");

    let (stats, sink_calls) = busy_failing_runner("_anomaly_failing_sink", 0).await;
    assert!(
        stats.runs >= 2 && stats.failed_attempts >= 2,
        "the runner was busy failing meanwhile: {stats:?}"
    );
    assert!(
        sink_calls >= 2,
        "the failing sink was really called: {sink_calls}"
    );
}

/// Appends and a projection under load while a runner, triggered by the
/// projection and retrying fast, fails: its reader fails `reader_failures`
/// times (then works), its sink always. Returns the runner's stats and how
/// often the sink was called.
async fn busy_failing_runner(
    suffix: &str,
    reader_failures: u32,
) -> (forgeerp_infra::RunnerStats, u32) {
    let (_, store, bus) = setup(suffix).await;
    let tenant = TenantId::random();
    let sink = FailingSink::default();
    let runner = InventoryAnomalyRunner::spawn(
        ScriptedReader::new(reader_failures),
        sink.clone(),
        AnomalyDetector::default(),
        RunnerConfig {
            interval: Duration::from_millis(50),
            coalesce: Duration::from_millis(1),
            min_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            queue_capacity: 1,
            ..RunnerConfig::default()
        },
    );
    let worker = ProjectionWorker::spawn(
        store.pool().clone(),
        bus,
        TriggeringProjection::new(InventoryStockProjection, runner.trigger_handle()),
        None,
        WorkerConfig::default(),
    );
    let dispatcher = Arc::new(CommandDispatcher::new(store.clone()));
    let items: Vec<AggregateId> = (0..4).map(|_| AggregateId::random()).collect();
    for item in &items {
        create(&dispatcher, tenant, *item).await;
    }
    let writers: Vec<_> = items
        .iter()
        .map(|item| {
            let (dispatcher, item) = (dispatcher.clone(), *item);
            tokio::spawn(async move {
                for _ in 0..50 {
                    dispatcher
                        .dispatch::<InventoryItem>(tenant, item, &C::ShipStock { quantity: 7 })
                        .await
                        .expect("every command goes through");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    // The projection reaches the exact stock (read_all alone could lag
    // behind the worker's own open transaction).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stock = InventoryStockProjection::stock(store.pool(), tenant)
            .await
            .unwrap();
        if stock.len() == 4
            && stock
                .iter()
                .all(|(_, level)| level.on_hand == 5000 - 50 * 7)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the projection never caught up: {stock:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = runner.shutdown().await;
    worker.shutdown().await.unwrap();
    (stats, sink.calls.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_theft_like_drop_appended_through_the_dispatcher_becomes_an_insight_of_that_tenant_only()
{
    let (db_url, store, bus) = setup("_anomaly_e2e").await;
    let (victim, neighbour) = (TenantId::random(), TenantId::random());
    let runner = InventoryAnomalyRunner::spawn(
        InventoryStockReader::new(store.pool().clone()),
        PgInsightSink::new(store.pool().clone()),
        AnomalyDetector::default(),
        RunnerConfig {
            coalesce: Duration::from_millis(50),
            min_backoff: Duration::from_millis(20),
            ..RunnerConfig::default()
        },
    );
    let worker = ProjectionWorker::spawn(
        store.pool().clone(),
        bus,
        TriggeringProjection::new(InventoryStockProjection, runner.trigger_handle()),
        None,
        WorkerConfig::default(),
    );
    let dispatcher = CommandDispatcher::new(store.clone());
    let (stolen, ordinary) = (AggregateId::random(), AggregateId::random());
    for tenant in [victim, neighbour] {
        for item in [stolen, ordinary] {
            create(&dispatcher, tenant, item).await;
            for i in 0..30 {
                dispatcher
                    .dispatch::<InventoryItem>(
                        tenant,
                        item,
                        &C::ShipStock {
                            quantity: 8 + i % 5,
                        },
                    )
                    .await
                    .unwrap();
            }
        }
    }
    let events_before = count_events(&store).await;
    dispatcher
        .dispatch::<InventoryItem>(
            victim,
            stolen,
            &C::AdjustStock {
                delta: -600,
                reason: "stock count".into(),
            },
        )
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let insights = PgInsightSink::insights(store.pool(), victim).await.unwrap();
        if let Some(found) = insights
            .iter()
            .find(|i| i.item == stolen && i.kind == AnomalyKind::UnusualOutflow)
        {
            break found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no insight for the drop: {insights:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(found.observed, 600.0);
    assert_eq!(found.tenant_id, victim);
    assert_eq!(found.sku.as_deref(), Some("BOLT"));
    assert!(
        found.explanation.contains("600 units left"),
        "{}",
        found.explanation
    );
    let victim_insights = PgInsightSink::insights(store.pool(), victim).await.unwrap();
    assert!(
        victim_insights.iter().all(|i| i.item == stolen),
        "the ordinary item is quiet: {victim_insights:?}"
    );
    assert!(
        PgInsightSink::insights(store.pool(), neighbour)
            .await
            .unwrap()
            .is_empty(),
        "the other tenant has no insight"
    );
    // The snapshot the runner read: that tenant's two items, one point per event.
    let snapshot = InventoryStockReader::new(store.pool().clone())
        .snapshot(victim)
        .await
        .unwrap();
    assert_eq!(snapshot.items.len(), 2);
    let trend_of = |item| {
        snapshot
            .items
            .iter()
            .find(|i| i.item == item)
            .unwrap()
            .historical_trend
            .len()
    };
    assert_eq!((trend_of(stolen), trend_of(ordinary)), (33, 32));

    // An application role bound to the neighbour cannot see the victim's insight.
    let role = format!(
        "forgeerp_test_role_analyst_{}",
        uuid::Uuid::new_v4().simple()
    );
    let (owner, connection) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    owner
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; SELECT forgeerp.grant_usage('{role}');
             GRANT USAGE ON SCHEMA forgeerp_inventory TO {role};
             GRANT SELECT ON forgeerp_inventory.ai_insights TO {role};"
        ))
        .await
        .unwrap();
    let (app, connection) =
        tokio_postgres::connect(&format!("{db_url} user={role}"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    app.batch_execute(&format!(
        "BEGIN; SELECT forgeerp.bind_tenant('{neighbour}')"
    ))
    .await
    .unwrap();
    let leaked = app
        .query("SELECT * FROM forgeerp_inventory.ai_insights", &[])
        .await
        .unwrap();
    assert!(leaked.is_empty(), "another tenant's insights are invisible");
    app.batch_execute(&format!(
        "ROLLBACK; BEGIN; SELECT forgeerp.bind_tenant('{victim}')"
    ))
    .await
    .unwrap();
    let own = app
        .query("SELECT * FROM forgeerp_inventory.ai_insights", &[])
        .await
        .unwrap();
    assert_eq!(own.len(), victim_insights.len(), "its own are visible");

    // Insights are not events.
    let events_after = count_events(&store).await;
    assert_eq!(events_after, events_before + 1);
    runner.shutdown().await;
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_sink_keeps_one_row_per_finding_and_is_idempotent() {
    let (_, store, _) = setup("_anomaly_sink").await;
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let sink = PgInsightSink::new(store.pool().clone());
    let at = Utc.with_ymd_and_hms(2026, 5, 4, 9, 0, 0).unwrap();
    let insight = |minutes: i64, score: f64| AiInsight {
        tenant_id: tenant,
        item,
        sku: Some("S".into()),
        name: "N".into(),
        kind: AnomalyKind::UnusualOutflow,
        severity: forgeerp_infra::anomaly::Severity::Low,
        score,
        observed: 50.0,
        expected: 10.0,
        occurred_at: at + Days::minutes(minutes),
        explanation: format!("score {score}"),
    };
    // Two findings on one day, and the same finding twice in one batch.
    let batch = [insight(0, 5.0), insight(30, 6.0), insight(30, 7.0)];
    sink.emit(tenant, &batch).await.unwrap();
    sink.emit(tenant, &batch).await.unwrap();
    let stored = PgInsightSink::insights(store.pool(), tenant).await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(
        stored[0].explanation, "score 7",
        "the stronger duplicate is kept"
    );
    // Another tenant's insight handed to this tenant's emit is not written.
    let mut foreign = insight(60, 9.0);
    foreign.tenant_id = TenantId::random();
    sink.emit(tenant, &[foreign]).await.unwrap();
    assert_eq!(
        PgInsightSink::insights(store.pool(), tenant)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn a_zero_interval_runs_often_instead_of_panicking() {
    let tenant = TenantId::random();
    let mut config = config(tenant);
    config.interval = Duration::ZERO;
    let runner = InventoryAnomalyRunner::spawn(
        ScriptedReader::new(0),
        InMemoryInsightSink::new(),
        AnomalyDetector::default(),
        config,
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stats = runner.shutdown().await;
    assert!(stats.runs >= 5, "{stats:?}");
}

/// Panics on its first call, then answers like a `ScriptedReader`.
#[derive(Clone)]
struct PanickingOnceReader {
    panicked: Arc<AtomicU32>,
    inner: ScriptedReader,
}

impl ReadModelReader<InventorySnapshot> for PanickingOnceReader {
    async fn snapshot(&self, tenant_id: TenantId) -> Result<InventorySnapshot, ReadModelError> {
        if self.panicked.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("a reader bug");
        }
        self.inner.snapshot(tenant_id).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_reader_fails_an_attempt_not_the_runner() {
    let tenant = TenantId::random();
    let sink = InMemoryInsightSink::new();
    let runner = InventoryAnomalyRunner::spawn(
        PanickingOnceReader {
            panicked: Arc::default(),
            inner: ScriptedReader::new(0),
        },
        sink.clone(),
        AnomalyDetector::default(),
        config(tenant),
    );
    tokio::time::sleep(Duration::from_secs(65)).await;
    let stats = runner.shutdown().await;
    assert_eq!(
        (stats.runs, stats.failed_attempts, stats.abandoned_runs),
        (1, 1, 0)
    );
    assert_eq!(sink.insights(tenant).len(), 1, "the retry got through");
}

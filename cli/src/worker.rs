//! `forgeerp worker`: the read side as a service. It runs the inventory
//! stock projection (which wakes the anomaly runner) against one database
//! until SIGTERM or SIGINT, with a leader per projection (other instances
//! stand by), Prometheus metrics and a health check.

use crate::connect::{connect, Database};
use crate::error::CliError;
use forgeerp_infra::{
    AnomalyDetector, InventoryAnomalyRunner, InventoryStockProjection, InventoryStockReader,
    Partition, PgInsightSink, ProjectionWorker, RunnerConfig, TenantId, TriggeringProjection,
    WorkerConfig, WorkerHandle,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The worker's configuration file (TOML). Every key is optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerFile {
    /// The database; `--database-url` or `DATABASE_URL` win over it.
    pub database_url: Option<String>,
    /// Connections to the database (one more is held per projection led).
    pub pool_size: usize,
    /// Serve `/metrics` and `/health` here; `--metrics` wins over it.
    pub metrics: Option<SocketAddr>,
    /// The inventory stock projection.
    pub stock_projection: StockSection,
    /// The inventory anomaly runner, woken by the stock projection.
    pub anomaly_runner: AnomalySection,
}

/// `[stock_projection]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StockSection {
    /// Only this tenant's events (default: every tenant).
    pub tenant: Option<TenantId>,
    /// Most events applied in one transaction.
    pub batch_size: usize,
    /// `/health` fails while this instance leads and lags more than this.
    pub max_lag_seconds: u64,
    /// How often a standby instance tries to take over, in milliseconds.
    pub standby_poll_millis: u64,
    /// Split the projection in this many partitions, each with its own
    /// leader and checkpoint (change it with `forgeerp resplit`, drained).
    pub partitions: u32,
}

/// `[anomaly_runner]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalySection {
    /// Whether the runner runs at all.
    pub enabled: bool,
    /// Seconds between scheduled runs per tenant.
    pub interval_seconds: u64,
    /// Milliseconds during which triggers for one tenant are merged.
    pub coalesce_millis: u64,
}

impl Default for WorkerFile {
    fn default() -> Self {
        WorkerFile {
            database_url: None,
            pool_size: 8,
            metrics: None,
            stock_projection: StockSection::default(),
            anomaly_runner: AnomalySection::default(),
        }
    }
}

impl Default for StockSection {
    fn default() -> Self {
        StockSection {
            tenant: None,
            batch_size: WorkerConfig::default().batch_size,
            max_lag_seconds: 60,
            standby_poll_millis: 500,
            partitions: 1,
        }
    }
}

impl Default for AnomalySection {
    fn default() -> Self {
        let defaults = RunnerConfig::default();
        AnomalySection {
            enabled: true,
            interval_seconds: defaults.interval.as_secs(),
            coalesce_millis: defaults.coalesce.as_millis() as u64,
        }
    }
}

/// Reads the configuration file; a bad key or value is one line naming it
/// (exit code 2).
pub fn read_config(path: Option<&Path>) -> Result<WorkerFile, CliError> {
    let Some(path) = path else {
        return Ok(WorkerFile::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        let what = e
            .message()
            .lines()
            .next()
            .unwrap_or("invalid configuration");
        let line = e
            .span()
            .map(|span| format!(" (line {})", text[..span.start].matches('\n').count() + 1))
            .unwrap_or_default();
        CliError::usage(format!("{}: {what}{line}", path.display()))
    })
}

/// Runs the worker until SIGTERM or SIGINT.
pub async fn run(db: &Database, config: WorkerFile) -> Result<(), CliError> {
    let store = connect(db, config.pool_size.max(2)).await?;
    forgeerp_infra::migrate(store.pool()).await?;
    let metrics = config.metrics.map(serve_metrics).transpose()?;

    let runner = config.anomaly_runner.enabled.then(|| {
        InventoryAnomalyRunner::spawn(
            InventoryStockReader::new(store.pool().clone()),
            PgInsightSink::new(store.pool().clone()),
            AnomalyDetector::default(),
            RunnerConfig {
                interval: Duration::from_secs(config.anomaly_runner.interval_seconds.max(1)),
                coalesce: Duration::from_millis(config.anomaly_runner.coalesce_millis),
                ..RunnerConfig::default()
            },
        )
    });
    let worker_config = WorkerConfig {
        batch_size: config.stock_projection.batch_size.max(1),
        standby_poll: Duration::from_millis(config.stock_projection.standby_poll_millis.max(10)),
        upcasters: forgeerp_infra::inventory::upcasters(),
        personal_data: crate::personal::from_env(&store)?,
        ..WorkerConfig::default()
    };
    let tenant = config.stock_projection.tenant;
    let partitions: Vec<Partition> = Partition::all(config.stock_projection.partitions).collect();
    let workers: Vec<WorkerHandle> = partitions
        .iter()
        .map(|&partition| {
            let bus = db.bus();
            let config = WorkerConfig {
                partition,
                ..worker_config.clone()
            };
            match &runner {
                Some(runner) => ProjectionWorker::spawn(
                    store.pool().clone(),
                    bus,
                    TriggeringProjection::new(InventoryStockProjection, runner.trigger_handle()),
                    tenant,
                    config,
                ),
                None => ProjectionWorker::spawn(
                    store.pool().clone(),
                    bus,
                    InventoryStockProjection,
                    tenant,
                    config,
                ),
            }
        })
        .collect();
    tracing::info!(projection = "inventory_stock", tenant = ?tenant, partitions = partitions.len(), "worker started");

    let healthy = metrics.as_ref().map(|(_, healthy)| healthy.clone());
    let leading: Arc<Vec<AtomicBool>> =
        Arc::new(partitions.iter().map(|_| AtomicBool::new(false)).collect());
    let watch = tokio::spawn(watch_lag(
        store.clone(),
        tenant,
        partitions.clone(),
        config.stock_projection.max_lag_seconds,
        leading.clone(),
        healthy,
    ));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::failed(format!("cannot listen for SIGTERM: {e}")))?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                for (worker, leads) in workers.iter().zip(leading.iter()) {
                    leads.store(worker.is_leader(), Ordering::SeqCst);
                }
                if let Some(runner) = &runner {
                    let stats = runner.stats();
                    metrics::gauge!("forgeerp_anomaly_runs").set(stats.runs as f64);
                    metrics::gauge!("forgeerp_anomaly_failed_attempts").set(stats.failed_attempts as f64);
                }
            }
        }
    }
    tracing::info!("stopping: finishing the batch in hand");
    watch.abort();
    let stopped = async {
        let mut checkpoints = Vec::new();
        for worker in workers {
            checkpoints.push(worker.shutdown().await?);
        }
        if let Some(runner) = runner {
            runner.shutdown().await;
        }
        Ok::<_, forgeerp_infra::ProjectionError>(checkpoints)
    };
    match tokio::time::timeout(Duration::from_secs(9), stopped).await {
        Ok(Ok(at)) => {
            let at: Vec<String> = at.iter().map(ToString::to_string).collect();
            tracing::info!(checkpoints = %at.join(", "), "stopped");
            Ok(())
        }
        Ok(Err(error)) => Err(CliError::from(error)),
        Err(_) => Err(CliError::failed("did not stop within 9 s")),
    }
}

/// Every few seconds: the projection's lag (from the checkpoint and the
/// feed's first event after it: no scan of the events), the feed's
/// hold-back, and whether the database answers. `healthy`: the database
/// answers and, while this instance leads, the lag is within bounds.
async fn watch_lag(
    store: forgeerp_infra::PgEventStore,
    tenant: Option<TenantId>,
    partitions: Vec<Partition>,
    max_lag_seconds: u64,
    leading: Arc<Vec<AtomicBool>>,
    healthy: Option<Arc<AtomicBool>>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        let mut ok = true;
        for (partition, leads) in partitions.iter().zip(leading.iter()) {
            match lag(&store, tenant, *partition).await {
                Ok((events, seconds)) => {
                    let labels = [
                        ("projection", "inventory_stock".to_string()),
                        ("partition", partition.label()),
                    ];
                    metrics::gauge!("forgeerp_projection_lag_events", &labels).set(events as f64);
                    metrics::gauge!("forgeerp_projection_lag_seconds", &labels).set(seconds);
                    ok &= !leads.load(Ordering::SeqCst) || seconds <= max_lag_seconds as f64;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot measure the lag");
                    ok = false;
                }
            }
        }
        if let Ok(holdback) = holdback_seconds(&store).await {
            metrics::gauge!("forgeerp_feed_holdback_seconds").set(holdback);
        }
        if let Some(healthy) = &healthy {
            healthy.store(ok, Ordering::SeqCst);
        }
    }
}

/// (events, seconds) behind: the sequence's last position less the
/// checkpoint's (an estimate: rolled-back appends leave gaps), and the age of
/// the first event after the checkpoint (0 when there is none).
async fn lag(
    store: &forgeerp_infra::PgEventStore,
    tenant: Option<TenantId>,
    partition: Partition,
) -> Result<(i64, f64), CliError> {
    let at =
        ProjectionWorker::partition_checkpoint(store.pool(), "inventory_stock", tenant, partition)
            .await?;
    let client = store.pool().get().await?;
    let row = client
        .query_one(
            include_str!("../sql/projection_lag.sql"),
            &[
                &at.transaction_id,
                &at.global_position,
                &tenant.map(|t| t.as_uuid()),
            ],
        )
        .await?;
    Ok((row.get::<_, i64>(0), row.get::<_, f64>(1)))
}

async fn holdback_seconds(store: &forgeerp_infra::PgEventStore) -> Result<f64, CliError> {
    let client = store.pool().get().await?;
    Ok(client
        .query_one(
            "SELECT coalesce(extract(epoch FROM max(age)), 0)::float8 FROM forgeerp.feed_holdback",
            &[],
        )
        .await?
        .get(0))
}

/// Serves `/metrics` (Prometheus text, from the `metrics` recorder) and
/// `/health` on a thread of its own.
fn serve_metrics(addr: SocketAddr) -> Result<(PrometheusHandle, Arc<AtomicBool>), CliError> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| CliError::failed(format!("cannot install the metrics recorder: {e}")))?;
    let server = tiny_http::Server::http(addr)
        .map_err(|e| CliError::failed(format!("cannot serve metrics on {addr}: {e}")))?;
    let healthy = Arc::new(AtomicBool::new(false));
    let (render, health) = (handle.clone(), healthy.clone());
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let response = match request.url() {
                "/metrics" => tiny_http::Response::from_string(render.render()).with_header(
                    "Content-Type: text/plain; version=0.0.4"
                        .parse::<tiny_http::Header>()
                        .expect("a valid header"),
                ),
                "/health" if health.load(Ordering::SeqCst) => {
                    tiny_http::Response::from_string("ok\n")
                }
                "/health" => tiny_http::Response::from_string("lagging or unreachable\n")
                    .with_status_code(503),
                _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
            };
            let _ = request.respond(response);
        }
    });
    tracing::info!(%addr, "serving /metrics and /health");
    Ok((handle, healthy))
}

//! `InventoryAnomalyRunner`: runs the [`AnomalyDetector`] over tenants'
//! [`InventorySnapshot`]s on a schedule and when the stock projection says
//! something changed, and hands the findings to an [`AiInsightSink`].
//!
//! It never disturbs the write path: it runs in its own task, reads only
//! snapshots through a [`ReadModelReader`], and [`AnomalyTrigger::trigger`]
//! is a `try_send` on a bounded queue that never blocks and never fails.
//! Triggers arriving within [`RunnerConfig::coalesce`] of each other become
//! one run (a burst of 10,000 makes one or two). When the queue is full the
//! trigger is dropped and the next run covers every tenant the runner knows
//! instead. A failed run (reader or sink) is retried for the tenants that
//! failed, with exponential backoff up to [`RunnerConfig::max_attempts`],
//! then logged and left to the next trigger or tick; errors never reach the
//! caller. Each tenant runs in a task of its own, so a panic in a reader,
//! the detector or a sink counts as a failed attempt and the runner goes on.

use super::anomaly::{AnomalyDetector, InventorySnapshot};
use super::insight_sink::{AiInsight, AiInsightSink};
use crate::event::StoredEvent;
use crate::ids::TenantId;
use crate::read_model::ReadModelReader;
use crate::workers::projection_worker::{PgProjection, ProjectionError};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// When and how the runner runs.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// A scheduled run over every known tenant this often (the first one an
    /// interval after start).
    pub interval: Duration,
    /// Tenants the scheduled runs always cover (others join when triggered).
    pub tenants: Vec<TenantId>,
    /// How long to gather triggers before a triggered run.
    pub coalesce: Duration,
    /// Triggers queued before further ones are dropped (see the module docs).
    pub queue_capacity: usize,
    /// Attempts per run before it is given up.
    pub max_attempts: u32,
    /// First wait after a failed attempt; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            interval: Duration::from_secs(15 * 60),
            tenants: Vec::new(),
            coalesce: Duration::from_millis(500),
            queue_capacity: 1024,
            max_attempts: 5,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// What the runner has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunnerStats {
    /// Runs started (scheduled or triggered; retries not counted).
    pub runs: u64,
    /// Runs ended (done or given up). Runs are sequential: when `finished`
    /// reaches n, the n-th run started has ended.
    pub finished: u64,
    /// Attempts that failed for at least one tenant.
    pub failed_attempts: u64,
    /// Runs given up after `max_attempts`.
    pub abandoned_runs: u64,
    /// Insights handed to the sink.
    pub insights: u64,
}

#[derive(Default)]
struct Counters {
    runs: AtomicU64,
    finished: AtomicU64,
    failed_attempts: AtomicU64,
    abandoned_runs: AtomicU64,
    insights: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RunnerStats {
        RunnerStats {
            runs: self.runs.load(Ordering::Relaxed),
            finished: self.finished.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            abandoned_runs: self.abandoned_runs.load(Ordering::Relaxed),
            insights: self.insights.load(Ordering::Relaxed),
        }
    }
}

/// Asks the runner for a run for a tenant. Cheap to clone; never blocks.
#[derive(Clone)]
pub struct AnomalyTrigger {
    queue: mpsc::Sender<TenantId>,
    overflowed: Arc<AtomicBool>,
}

impl AnomalyTrigger {
    /// Asks for a run over `tenant_id` soon. Never blocks, never fails: when
    /// the queue is full the next run covers every known tenant.
    pub fn trigger(&self, tenant_id: TenantId) {
        if self.queue.try_send(tenant_id).is_err() {
            self.overflowed.store(true, Ordering::Relaxed);
        }
    }
}

/// Controls a running [`InventoryAnomalyRunner`]. Dropping it stops the
/// runner too (without waiting); triggers sent afterwards are ignored.
pub struct InventoryAnomalyRunnerHandle {
    trigger: AnomalyTrigger,
    stop: watch::Sender<bool>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl InventoryAnomalyRunnerHandle {
    /// Asks for a run over `tenant_id` (see [`AnomalyTrigger::trigger`]).
    pub fn trigger(&self, tenant_id: TenantId) {
        self.trigger.trigger(tenant_id);
    }

    /// A trigger to hand to the projection (see [`TriggeringProjection`]).
    pub fn trigger_handle(&self) -> AnomalyTrigger {
        self.trigger.clone()
    }

    /// What the runner has done so far.
    pub fn stats(&self) -> RunnerStats {
        self.counters.snapshot()
    }

    /// Lets the tenant in hand finish, then stops.
    pub async fn shutdown(self) -> RunnerStats {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.counters.snapshot()
    }
}

/// Starts anomaly runners.
pub struct InventoryAnomalyRunner;

impl InventoryAnomalyRunner {
    /// Runs `detector` over snapshots from `reader`, writing to `sink`.
    pub fn spawn<R, S>(
        reader: R,
        sink: S,
        detector: AnomalyDetector,
        config: RunnerConfig,
    ) -> InventoryAnomalyRunnerHandle
    where
        R: ReadModelReader<InventorySnapshot>,
        S: AiInsightSink,
    {
        let (queue, triggers) = mpsc::channel(config.queue_capacity.max(1));
        let overflowed = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let runner = Runner {
            reader: Arc::new(reader),
            sink: Arc::new(sink),
            detector: Arc::new(detector),
            known: config.tenants.iter().copied().collect(),
            config,
            overflowed: overflowed.clone(),
            counters: counters.clone(),
            stopped,
        };
        InventoryAnomalyRunnerHandle {
            trigger: AnomalyTrigger { queue, overflowed },
            stop,
            counters,
            task: tokio::spawn(runner.run(triggers)),
        }
    }
}

struct Runner<R, S> {
    reader: Arc<R>,
    sink: Arc<S>,
    detector: Arc<AnomalyDetector>,
    config: RunnerConfig,
    known: BTreeSet<TenantId>,
    overflowed: Arc<AtomicBool>,
    counters: Arc<Counters>,
    stopped: watch::Receiver<bool>,
}

impl<R, S> Runner<R, S>
where
    R: ReadModelReader<InventorySnapshot>,
    S: AiInsightSink,
{
    async fn run(mut self, mut triggers: mpsc::Receiver<TenantId>) {
        // tokio's interval refuses a zero period: a run at most every millisecond.
        let period = self.config.interval.max(Duration::from_millis(1));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let tenants: BTreeSet<TenantId> = tokio::select! {
                _ = self.stopped.changed() => return,
                _ = ticks.tick() => self.known.clone(),
                first = triggers.recv() => {
                    let Some(first) = first else { return };
                    // Gather the rest of the burst.
                    tokio::select! {
                        _ = self.stopped.changed() => return,
                        _ = tokio::time::sleep(self.config.coalesce) => {}
                    }
                    let mut tenants = BTreeSet::from([first]);
                    while let Ok(tenant) = triggers.try_recv() {
                        tenants.insert(tenant);
                    }
                    tenants
                }
            };
            let mut tenants = tenants;
            if self.overflowed.swap(false, Ordering::Relaxed) {
                tenants.extend(self.known.iter().copied());
                while let Ok(tenant) = triggers.try_recv() {
                    tenants.insert(tenant);
                }
            }
            self.known.extend(tenants.iter().copied());
            if tenants.is_empty() {
                continue;
            }
            self.counters.runs.fetch_add(1, Ordering::Relaxed);
            let carry_on = self.run_with_retries(tenants).await;
            self.counters.finished.fetch_add(1, Ordering::Relaxed);
            if !carry_on {
                return; // stopped while waiting to retry
            }
        }
    }

    /// One run, retried for the tenants that failed. False when stopped.
    async fn run_with_retries(&mut self, mut tenants: BTreeSet<TenantId>) -> bool {
        let mut backoff = self.config.min_backoff;
        for attempt in 1..=self.config.max_attempts.max(1) {
            let mut failed = BTreeSet::new();
            for tenant in tenants {
                if *self.stopped.borrow() {
                    return false;
                }
                if let Err(error) = self.run_tenant(tenant).await {
                    tracing::warn!(%tenant, attempt, %error, "inventory anomaly run failed");
                    failed.insert(tenant);
                }
            }
            if failed.is_empty() {
                return true;
            }
            self.counters
                .failed_attempts
                .fetch_add(1, Ordering::Relaxed);
            if attempt == self.config.max_attempts.max(1) {
                tracing::error!(
                    tenants = failed.len(),
                    attempts = attempt,
                    "inventory anomaly run given up until the next trigger or tick"
                );
                self.counters.abandoned_runs.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            tokio::select! {
                _ = self.stopped.changed() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.config.max_backoff);
            tenants = failed;
        }
        true
    }

    /// One tenant, in a task of its own: a panic in the reader, the
    /// detector or the sink fails this attempt, not the runner.
    async fn run_tenant(&self, tenant: TenantId) -> Result<(), String> {
        let (reader, sink, detector) = (
            self.reader.clone(),
            self.sink.clone(),
            self.detector.clone(),
        );
        let run = tokio::spawn(async move {
            let snapshot = reader.snapshot(tenant).await.map_err(|e| e.to_string())?;
            let insights = AiInsight::detect(&detector, tenant, &snapshot);
            sink.emit(tenant, &insights)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<usize, String>(insights.len())
        });
        let found = match run.await {
            Ok(result) => result?,
            Err(join) => return Err(format!("the run panicked: {join}")),
        };
        self.counters
            .insights
            .fetch_add(found as u64, Ordering::Relaxed);
        tracing::debug!(%tenant, insights = found, "inventory anomaly run");
        Ok(())
    }
}

/// A projection that triggers the anomaly runner for the tenants of every
/// batch it committed: wrap the stock projection in it.
pub struct TriggeringProjection<P> {
    inner: P,
    trigger: AnomalyTrigger,
}

impl<P> TriggeringProjection<P> {
    /// `inner`, triggering `trigger` after each commit.
    pub fn new(inner: P, trigger: AnomalyTrigger) -> Self {
        TriggeringProjection { inner, trigger }
    }
}

impl<P: PgProjection> PgProjection for TriggeringProjection<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn apply(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        self.inner.apply(tx, event).await
    }

    async fn apply_batch(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        self.inner.apply_batch(tx, events).await
    }

    fn committed(&self, events: &[StoredEvent]) {
        self.inner.committed(events);
        let tenants: BTreeSet<TenantId> = events.iter().map(|e| e.tenant_id).collect();
        for tenant in tenants {
            self.trigger.trigger(tenant);
        }
    }
}

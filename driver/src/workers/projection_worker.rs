//! `ProjectionWorker`: follows the feed through the bus and applies each event
//! to a Postgres read model, the change and the checkpoint in one transaction.
//!
//! - At most once per event in the read model: a crash before the commit
//!   leaves neither the change nor the checkpoint; the next start resumes
//!   from the checkpoint.
//! - A failing event is retried with exponential backoff; after
//!   `max_attempts` it is *parked* in `forgeerp_read.parked_events` (with the
//!   error, for an operator) and the worker goes on.
//! - `WorkerHandle::shutdown` lets the event in hand finish, and returns the
//!   saved checkpoint.

use crate::event::{FeedPosition, StoredEvent};
use crate::event_bus::{EventBus, Subscription};
use crate::ids::TenantId;
use crate::tenant_binding::{begin_bound, switch_tenant, Access};
use deadpool_postgres::Pool;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Why a projection could not apply an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// No connection could be had, or it broke.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The database refused.
    #[error("database error {sqlstate}: {message}")]
    Database {
        /// The five-character SQLSTATE.
        sqlstate: String,
        /// What it said.
        message: String,
    },
    /// The worker's task ended without saying why: it panicked or was cancelled.
    #[error("the projection worker's task failed: {0}")]
    WorkerFailed(String),
    /// The checkpoint is not where this worker read it: another instance
    /// moved it. The worker rolls back and starts again from the checkpoint.
    #[error("the checkpoint of projection {0} was moved by another instance")]
    CheckpointMoved(String),
    /// The event's payload is not what the projection understands.
    #[error("cannot decode event: {0}")]
    Decode(String),
}

crate::db_error::from_db_failure!(ProjectionError);

/// A read model kept in Postgres, updated one event at a time.
pub trait PgProjection: Send + Sync + 'static {
    /// The projection's name: the key of its checkpoints.
    fn name(&self) -> &str;

    /// Applies `event` inside `tx`, which is bound to the event's tenant.
    /// Must be idempotent: an event may be delivered again.
    fn apply(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        event: &StoredEvent,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;

    /// Called after `events` were committed to the read model (or parked):
    /// the place to wake whatever reads it. Must not block; the default
    /// does nothing.
    fn committed(&self, events: &[StoredEvent]) {
        let _ = events;
    }

    /// Applies events of one tenant, in feed order, inside `tx` (bound to
    /// that tenant). The default applies them one by one; a projection can
    /// do better. An error makes the worker retry the events one by one.
    fn apply_batch(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        events: &[StoredEvent],
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        async move {
            for event in events {
                self.apply(tx, event).await?;
            }
            Ok(())
        }
    }
}

/// How a worker retries.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Attempts per event before it is parked.
    pub max_attempts: u32,
    /// First wait after a failed attempt; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Most events applied in one transaction when they are already waiting.
    pub batch_size: usize,
    /// How often a standby instance (another one leads the projection) tries
    /// to take over.
    pub standby_poll: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            max_attempts: 5,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            batch_size: 2000,
            standby_poll: Duration::from_millis(500),
        }
    }
}

/// Controls a running worker.
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<FeedPosition, ProjectionError>>,
    leading: Arc<AtomicBool>,
}

impl WorkerHandle {
    /// Whether this instance leads its projection now (applies events), as
    /// opposed to standing by while another instance does.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Finishes the event in hand, stops, and returns the saved checkpoint.
    pub async fn shutdown(self) -> Result<FeedPosition, ProjectionError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .unwrap_or_else(|e| Err(ProjectionError::WorkerFailed(e.to_string())))
    }
}

/// Starts and runs projection workers.
pub struct ProjectionWorker;

impl ProjectionWorker {
    /// Runs `projection` over the feed (of `tenant_id` only, when given),
    /// from its saved checkpoint, until shut down.
    pub fn spawn<P: PgProjection, B: EventBus + 'static>(
        pool: Pool,
        bus: B,
        projection: P,
        tenant_id: Option<TenantId>,
        config: WorkerConfig,
    ) -> WorkerHandle {
        let (stop, stopped) = watch::channel(false);
        let leading = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(
            pool,
            bus,
            projection,
            tenant_id,
            config,
            stopped,
            leading.clone(),
        ));
        WorkerHandle {
            stop,
            task,
            leading,
        }
    }

    /// The checkpoint of `projection` for `tenant_id` (None: all tenants).
    pub async fn checkpoint(
        pool: &Pool,
        projection: &str,
        tenant_id: Option<TenantId>,
    ) -> Result<FeedPosition, ProjectionError> {
        let client = pool.get().await?;
        let row = client
            .query_opt(
                "SELECT transaction_id, global_position FROM forgeerp_read.checkpoints WHERE projection = $1 AND tenant_key = $2",
                &[&projection, &tenant_key(tenant_id)],
            )
            .await?;
        Ok(row.map_or(FeedPosition::default(), |r| FeedPosition {
            transaction_id: r.get(0),
            global_position: r.get(1),
        }))
    }
}

fn tenant_key(tenant_id: Option<TenantId>) -> String {
    tenant_id.map_or_else(|| "*".to_string(), |t| t.to_string())
}

/// The leadership of one projection (and tenant key): a connection of its
/// own, taken out of the pool, whose session holds the advisory lock.
/// Dropping it closes the connection, which lets go of the lock.
struct Leadership {
    client: deadpool_postgres::ClientWrapper,
}

impl Leadership {
    /// Waits until this instance leads, trying every `standby_poll`; None
    /// when told to stop first.
    async fn acquire(
        pool: &Pool,
        name: &str,
        tenant_id: Option<TenantId>,
        config: &WorkerConfig,
        stopped: &mut watch::Receiver<bool>,
    ) -> Option<Leadership> {
        let mut standing_by = false;
        loop {
            match Leadership::try_lead(pool, name, tenant_id).await {
                Ok(Some(leadership)) => {
                    tracing::info!(projection = name, "leading the projection");
                    return Some(leadership);
                }
                Ok(None) if !standing_by => {
                    tracing::info!(
                        projection = name,
                        "another instance leads the projection; standing by"
                    );
                    standing_by = true;
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, projection = name, "cannot try to lead; retrying")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(config.standby_poll) => {}
                _ = stopped.changed() => return None,
            }
        }
    }

    async fn try_lead(
        pool: &Pool,
        name: &str,
        tenant_id: Option<TenantId>,
    ) -> Result<Option<Leadership>, ProjectionError> {
        let client = deadpool_postgres::Object::take(pool.get().await?);
        let leads: bool = client
            .query_one(
                include_str!("../../sql/worker/try_lead.sql"),
                &[&name, &tenant_key(tenant_id)],
            )
            .await?
            .get(0);
        Ok(leads.then_some(Leadership { client }))
    }

    /// Whether the lock is still held: false once its connection broke.
    fn holds(&self) -> bool {
        !self.client.is_closed()
    }
}

async fn run<P: PgProjection, B: EventBus>(
    pool: Pool,
    bus: B,
    projection: P,
    tenant_id: Option<TenantId>,
    config: WorkerConfig,
    mut stopped: watch::Receiver<bool>,
    leading: Arc<AtomicBool>,
) -> Result<FeedPosition, ProjectionError> {
    let name = projection.name().to_string();
    let mut position = FeedPosition::default();
    loop {
        let Some(leadership) =
            Leadership::acquire(&pool, &name, tenant_id, &config, &mut stopped).await
        else {
            return Ok(position);
        };
        leading.store(true, Ordering::SeqCst);
        metrics::gauge!("forgeerp_projection_leader", "projection" => name.clone()).set(1.0);
        let led = lead(
            &pool,
            &bus,
            &projection,
            tenant_id,
            &config,
            &mut stopped,
            &leadership,
        )
        .await;
        leading.store(false, Ordering::SeqCst);
        metrics::gauge!("forgeerp_projection_leader", "projection" => name.clone()).set(0.0);
        drop(leadership);
        match led {
            Ok(Led::Stopped(at)) => return Ok(at),
            Ok(Led::LostLeadership(at)) => {
                tracing::warn!(projection = %name, "lost the leadership (its connection broke); standing by");
                position = at;
            }
            Err(error) => return Err(error),
        }
    }
}

/// How a spell of leadership ended.
enum Led {
    /// Told to stop; the checkpoint is saved.
    Stopped(FeedPosition),
    /// The leadership's connection broke: another instance may lead now.
    LostLeadership(FeedPosition),
}

/// Applies the feed while this instance leads: from the saved checkpoint,
/// again from the checkpoint whenever another instance turns out to have
/// moved it.
async fn lead<P: PgProjection, B: EventBus>(
    pool: &Pool,
    bus: &B,
    projection: &P,
    tenant_id: Option<TenantId>,
    config: &WorkerConfig,
    stopped: &mut watch::Receiver<bool>,
    leadership: &Leadership,
) -> Result<Led, ProjectionError> {
    'from_checkpoint: loop {
        let mut position = ProjectionWorker::checkpoint(pool, projection.name(), tenant_id).await?;
        let mut subscription = loop {
            match bus.subscribe(position, tenant_id).await {
                Ok(subscription) => break subscription,
                Err(error) => {
                    tracing::warn!(%error, "cannot subscribe; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(config.max_backoff) => {}
                        _ = stopped.changed() => return Ok(Led::Stopped(position)),
                    }
                }
            }
        };
        loop {
            let first = tokio::select! {
                event = subscription.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
                _ = stopped.changed() => break,
            };
            if !leadership.holds() {
                subscription.close().await;
                return Ok(Led::LostLeadership(position));
            }
            // Whatever is already waiting goes into the same transaction.
            let mut batch = vec![first];
            while batch.len() < config.batch_size.max(1) {
                match subscription.try_recv() {
                    Some(event) => batch.push(event),
                    None => break,
                }
            }
            batch.retain(|event| event.position() > position); // delivered again: already applied
            let Some(last) = batch.last().map(StoredEvent::position) else {
                continue;
            };
            let outcome = apply_in_order(
                pool, projection, tenant_id, config, stopped, position, batch,
            )
            .await;
            match outcome {
                Ok(()) => position = last,
                Err(ProjectionError::CheckpointMoved(_)) => {
                    tracing::warn!(
                        "the checkpoint was moved by another instance; starting again from it"
                    );
                    subscription.close().await;
                    continue 'from_checkpoint;
                }
                Err(error) => {
                    subscription.close().await;
                    return Err(error);
                }
            }
        }
        subscription.close().await;
        return Ok(Led::Stopped(position));
    }
}

/// Applies `batch` (events after `from`, in feed order): in one transaction
/// when it has several events, else (or when that fails) one by one, each
/// with its retries. Stops at the first error that is not the event's own.
async fn apply_in_order<P: PgProjection>(
    pool: &Pool,
    projection: &P,
    tenant_id: Option<TenantId>,
    config: &WorkerConfig,
    stopped: &watch::Receiver<bool>,
    from: FeedPosition,
    batch: Vec<StoredEvent>,
) -> Result<(), ProjectionError> {
    if batch.len() > 1 {
        match apply_batch_once(pool, projection, tenant_id, from, &batch).await {
            Ok(()) => {
                applied(projection, &batch);
                return Ok(());
            }
            Err(moved @ ProjectionError::CheckpointMoved(_)) => return Err(moved),
            Err(error) => {
                tracing::warn!(%error, events = batch.len(), "batch failed; applying its events one by one")
            }
        }
    }
    let mut position = from;
    for event in batch {
        apply_one(
            pool, projection, tenant_id, config, stopped, position, &event,
        )
        .await?;
        position = event.position();
        applied(projection, std::slice::from_ref(&event));
    }
    Ok(())
}

/// After a commit: the projection's hook and the counters.
fn applied<P: PgProjection>(projection: &P, events: &[StoredEvent]) {
    projection.committed(events);
    let name = projection.name().to_string();
    metrics::counter!("forgeerp_projection_applied_total", "projection" => name.clone())
        .increment(events.len() as u64);
    metrics::counter!("forgeerp_projection_batches_total", "projection" => name).increment(1);
}

/// One event, with retries, parked when it keeps failing.
async fn apply_one<P: PgProjection>(
    pool: &Pool,
    projection: &P,
    tenant_id: Option<TenantId>,
    config: &WorkerConfig,
    stopped: &watch::Receiver<bool>,
    from: FeedPosition,
    event: &StoredEvent,
) -> Result<(), ProjectionError> {
    {
        let span = tracing::debug_span!("projection", name = projection.name(), tenant = %event.tenant_id, aggregate = %event.aggregate_id);
        async {
            let mut backoff = config.min_backoff;
            let mut attempt = 1;
            loop {
                match apply_once(pool, projection, tenant_id, from, event).await {
                    Ok(()) => return Ok(()),
                    Err(moved @ ProjectionError::CheckpointMoved(_)) => return Err(moved),
                    Err(error) if attempt < config.max_attempts => {
                        tracing::warn!(%error, attempt, "projection failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(config.max_backoff);
                        attempt += 1;
                    }
                    Err(error) => {
                        tracing::error!(%error, event_id = %event.event_id, "projection keeps failing; parking the event");
                        // Parking must not be lost either: retry until it lands or we are told to stop.
                        loop {
                            match park(pool, projection, tenant_id, from, event, &error, attempt).await {
                                Ok(()) => {
                                    metrics::counter!("forgeerp_projection_parked_total", "projection" => projection.name().to_string()).increment(1);
                                    return Ok(());
                                }
                                Err(moved @ ProjectionError::CheckpointMoved(_)) => return Err(moved),
                                Err(park_error) if *stopped.borrow() => return Err(park_error),
                                Err(park_error) => {
                                    tracing::error!(%park_error, "cannot park the event; retrying");
                                    tokio::time::sleep(config.max_backoff).await;
                                }
                            }
                        }
                    }
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// A batch in one transaction: per run of one tenant, point the binding at
/// that tenant and apply the run; then save the checkpoint once.
async fn apply_batch_once<P: PgProjection>(
    pool: &Pool,
    projection: &P,
    tenant_id: Option<TenantId>,
    from: FeedPosition,
    batch: &[StoredEvent],
) -> Result<(), ProjectionError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // The checkpoint goes out with the first run: it is independent of the
    // projection's statements and commits (or not) with them.
    let mut checkpoint = Some(save_checkpoint(
        &tx,
        projection.name(),
        tenant_id,
        from,
        &batch[batch.len() - 1],
    ));
    for run in batch.chunk_by(|a, b| a.tenant_id == b.tenant_id) {
        // The worker is trusted code moving between tenants on purpose, which
        // `bind_tenant` (one tenant per transaction) would refuse.
        // Pipelined ahead of the run's first statement: requests run in the
        // order they are first polled, `try_join!` polls `bind` first, and
        // `switch_tenant` is one request.
        let bind = async {
            switch_tenant(&tx, run[0].tenant_id)
                .await
                .map_err(ProjectionError::from)
        };
        let saved = async {
            match checkpoint.take() {
                Some(save) => save.await,
                None => Ok(()),
            }
        };
        tokio::try_join!(bind, projection.apply_batch(&tx, run), saved)?;
    }
    drop(checkpoint);
    tx.commit().await?;
    Ok(())
}

/// Moves the checkpoint from `from` (where this worker read it) to `event`,
/// inside the caller's transaction; [`ProjectionError::CheckpointMoved`]
/// when it is no longer at `from`.
async fn save_checkpoint(
    tx: &tokio_postgres::Transaction<'_>,
    projection: &str,
    tenant_id: Option<TenantId>,
    from: FeedPosition,
    event: &StoredEvent,
) -> Result<(), ProjectionError> {
    let moved = tx
        .execute(
            include_str!("../../sql/worker/save_checkpoint.sql"),
            &[
                &projection,
                &tenant_key(tenant_id),
                &from.transaction_id,
                &from.global_position,
                &event.transaction_id,
                &event.global_position,
            ],
        )
        .await?;
    if moved == 0 {
        return Err(ProjectionError::CheckpointMoved(projection.to_string()));
    }
    Ok(())
}

/// One attempt: bind, apply, save the checkpoint, commit.
async fn apply_once<P: PgProjection>(
    pool: &Pool,
    projection: &P,
    tenant_id: Option<TenantId>,
    from: FeedPosition,
    event: &StoredEvent,
) -> Result<(), ProjectionError> {
    let mut client = pool.get().await?;
    let tx = begin_bound(&mut client, event.tenant_id, Access::ReadWrite).await?;
    projection.apply(&tx, event).await?;
    save_checkpoint(&tx, projection.name(), tenant_id, from, event).await?;
    tx.commit().await?;
    Ok(())
}

/// Records the event as parked and moves the checkpoint past it.
async fn park<P: PgProjection>(
    pool: &Pool,
    projection: &P,
    tenant_id: Option<TenantId>,
    from: FeedPosition,
    event: &StoredEvent,
    error: &ProjectionError,
    attempts: u32,
) -> Result<(), ProjectionError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO forgeerp_read.parked_events
            (projection, tenant_id, event_id, aggregate_id, sequence_number, transaction_id, global_position, error, attempts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (projection, event_id) DO UPDATE SET error = excluded.error, attempts = excluded.attempts, parked_at = now()",
        &[
            &projection.name(),
            &event.tenant_id.as_uuid(),
            &event.event_id.0,
            &event.aggregate_id.as_uuid(),
            &(event.sequence_number as i64),
            &event.transaction_id,
            &event.global_position,
            &error.to_string(),
            &(attempts as i32),
        ],
    )
    .await?;
    save_checkpoint(&tx, projection.name(), tenant_id, from, event).await?;
    tx.commit().await?;
    Ok(())
}

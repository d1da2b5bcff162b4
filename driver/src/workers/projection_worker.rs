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
use crate::personal_data::{PersonalData, PersonalDataError};
use crate::tenant_binding::{begin_bound, switch_tenant, Access};
use crate::upcasting::{UpcastError, Upcasters};
use deadpool_postgres::Pool;
use std::collections::HashMap;
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
    /// A projection's partitions cannot be changed now: a worker still leads
    /// one, or they are not all at the same position (not drained).
    #[error("cannot re-split projection: {0}")]
    CannotResplit(String),
    /// The event's payload is not what the projection understands.
    #[error("cannot decode event: {0}")]
    Decode(String),
    /// An event could not be brought to its current version (it is parked).
    #[error(transparent)]
    Upcast(#[from] UpcastError),
    /// The events' sealed fields could not be opened (a wrong master key,
    /// the key store unreachable): nothing of the batch was applied.
    #[error(transparent)]
    PersonalData(#[from] PersonalDataError),
    /// One event could not be applied (by a rebuild): which, and why.
    #[error("cannot apply event {sequence_number} of stream {aggregate_id} of tenant {tenant_id}: {reason}")]
    CannotApply {
        /// The event's tenant.
        tenant_id: TenantId,
        /// Its stream.
        aggregate_id: crate::ids::AggregateId,
        /// Its sequence number in the stream.
        sequence_number: u64,
        /// What went wrong.
        reason: String,
    },
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
    /// The part of the feed this worker applies ([`Partition::WHOLE`]: all).
    pub partition: Partition,
    /// Brings each event to its current version before the projection
    /// sees it; an event it cannot read is parked. Default: none (events
    /// as stored).
    pub upcasters: Upcasters,
    /// Opens the sealed personal fields of each event (before upcasting);
    /// a forgotten subject's read as [`crate::personal_data::FORGOTTEN`].
    /// Default: none (sealed fields reach the projection as stored).
    pub personal_data: Option<PersonalData>,
    /// In a sharded deployment, the shard whose feed this worker follows
    /// (its bus is that shard's): the checkpoint is the shard's own,
    /// `<tenant key>@shard<n>`, as feed positions are per shard. Default:
    /// None (one store, one feed).
    pub shard: Option<u32>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            max_attempts: 5,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            batch_size: 2000,
            standby_poll: Duration::from_millis(500),
            partition: Partition::WHOLE,
            upcasters: Upcasters::none(),
            personal_data: None,
            shard: None,
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
        let slice = Slice {
            tenant_id,
            partition: config.partition,
            shard: config.shard,
        };
        let task = tokio::spawn(run(
            pool,
            bus,
            projection,
            slice,
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

    /// The checkpoint of `projection` for `tenant_id` (None: all tenants),
    /// unpartitioned.
    pub async fn checkpoint(
        pool: &Pool,
        projection: &str,
        tenant_id: Option<TenantId>,
    ) -> Result<FeedPosition, ProjectionError> {
        Self::partition_checkpoint(pool, projection, tenant_id, Partition::WHOLE).await
    }

    /// The checkpoint of one partition of `projection` for `tenant_id`.
    pub async fn partition_checkpoint(
        pool: &Pool,
        projection: &str,
        tenant_id: Option<TenantId>,
        partition: Partition,
    ) -> Result<FeedPosition, ProjectionError> {
        let key = Slice {
            tenant_id,
            partition,
            shard: None,
        }
        .key();
        checkpoint_at(pool, projection, &key).await
    }

    /// The checkpoint of `projection` for `tenant_id` on one shard of a
    /// sharded deployment (a worker with [`WorkerConfig::shard`]): a
    /// position in that shard's feed.
    pub async fn shard_checkpoint(
        pool: &Pool,
        projection: &str,
        tenant_id: Option<TenantId>,
        shard: u32,
    ) -> Result<FeedPosition, ProjectionError> {
        let key = Slice {
            tenant_id,
            partition: Partition::WHOLE,
            shard: Some(shard),
        }
        .key();
        checkpoint_at(pool, projection, &key).await
    }
}

impl ProjectionWorker {
    /// Moves every checkpoint of `projection` for `tenant_id` (None: the
    /// workers of every tenant), its partitions' included, to `at`, inside
    /// `tx`: what a rebuild does once the read model is complete up to `at`.
    pub async fn reset_checkpoints(
        tx: &tokio_postgres::Transaction<'_>,
        projection: &str,
        tenant_id: Option<TenantId>,
        at: FeedPosition,
    ) -> Result<(), ProjectionError> {
        let key = tenant_id.map_or_else(|| "*".to_string(), |t| t.to_string());
        tx.execute(
            include_str!("../../sql/worker/reset_checkpoints.sql"),
            &[&projection, &key, &at.transaction_id, &at.global_position],
        )
        .await?;
        Ok(())
    }

    /// Changes how many partitions `projection` (for `tenant_id`) is split
    /// into, from `from` to `to`. Safe only when drained: no worker of the
    /// projection runs (each partition's leadership is free) and every old
    /// partition's checkpoint is at the same position. The new partitions
    /// then all start there, in one transaction; returns that position.
    /// Otherwise [`ProjectionError::CannotResplit`], and nothing changes.
    pub async fn resplit(
        pool: &Pool,
        projection: &str,
        tenant_id: Option<TenantId>,
        from: u32,
        to: u32,
    ) -> Result<FeedPosition, ProjectionError> {
        let keys = |count: u32| -> Vec<String> {
            Partition::all(count)
                .map(|partition| {
                    Slice {
                        tenant_id,
                        partition,
                        shard: None,
                    }
                    .key()
                })
                .collect()
        };
        let (old, new) = (keys(from), keys(to));
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        for key in &old {
            let free: bool = tx
                .query_one(
                    include_str!("../../sql/worker/claim_leadership.sql"),
                    &[&projection, key, &true],
                )
                .await?
                .get(0);
            if !free {
                return Err(ProjectionError::CannotResplit(format!(
                    "a worker of {projection} [{key}] is running: stop every worker of the projection first"
                )));
            }
        }
        let rows = tx
            .query(
                "SELECT tenant_key, transaction_id, global_position FROM forgeerp_read.checkpoints
                  WHERE projection = $1 AND tenant_key = ANY($2) FOR UPDATE",
                &[&projection, &old],
            )
            .await?;
        let positions: std::collections::BTreeSet<(i64, i64)> =
            rows.iter().map(|r| (r.get(1), r.get(2))).collect();
        if positions.len() > 1 || (!rows.is_empty() && rows.len() < old.len()) {
            return Err(ProjectionError::CannotResplit(format!(
                "the {from} partition(s) of {projection} are at different positions: let every one catch up (drain) first"
            )));
        }
        let (transaction_id, global_position) = positions.into_iter().next().unwrap_or((0, 0));
        tx.execute(
            "DELETE FROM forgeerp_read.checkpoints WHERE projection = $1 AND tenant_key = ANY($2)",
            &[&projection, &old],
        )
        .await?;
        for key in &new {
            tx.execute(
                "INSERT INTO forgeerp_read.checkpoints (projection, tenant_key, transaction_id, global_position) VALUES ($1, $2, $3, $4)",
                &[&projection, key, &transaction_id, &global_position],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(FeedPosition {
            transaction_id,
            global_position,
        })
    }
}

async fn checkpoint_at(
    pool: &Pool,
    projection: &str,
    key: &str,
) -> Result<FeedPosition, ProjectionError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT transaction_id, global_position FROM forgeerp_read.checkpoints WHERE projection = $1 AND tenant_key = $2",
            &[&projection, &key],
        )
        .await?;
    Ok(row.map_or(FeedPosition::default(), |r| FeedPosition {
        transaction_id: r.get(0),
        global_position: r.get(1),
    }))
}

/// One of `count` parts of a projection's feed, by a stable hash of each
/// event's (tenant, aggregate): a stream is always in one partition, so its
/// order is kept. Each partition has its own checkpoint and leader, so
/// partitions apply in parallel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Partition {
    /// Which part, from 0.
    pub index: u32,
    /// How many parts (1: the whole feed).
    pub count: u32,
}

impl Partition {
    /// The whole feed, one part.
    pub const WHOLE: Partition = Partition { index: 0, count: 1 };

    /// Every partition of a feed split in `count`.
    pub fn all(count: u32) -> impl Iterator<Item = Partition> {
        let count = count.max(1);
        (0..count).map(move |index| Partition { index, count })
    }

    /// The partition of `count` that stream `(tenant, aggregate)` is in: the
    /// contract's stable stream hash (`forgeerp_contract::append::stream_hash`)
    /// modulo `count`.
    pub fn of(tenant: TenantId, aggregate: crate::ids::AggregateId, count: u32) -> u32 {
        let hash = forgeerp_contract::append::stream_hash(
            tenant.as_uuid().as_bytes(),
            aggregate.as_uuid().as_bytes(),
        );
        (hash % u64::from(count.max(1))) as u32
    }

    /// `index/count`, as metrics label it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.index, self.count.max(1))
    }

    /// Whether `event` is in this partition.
    pub fn contains(&self, event: &StoredEvent) -> bool {
        self.count <= 1 || Self::of(event.tenant_id, event.aggregate_id, self.count) == self.index
    }
}

/// What one worker applies: one tenant's events or every tenant's, and one
/// partition of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slice {
    tenant_id: Option<TenantId>,
    partition: Partition,
    shard: Option<u32>,
}

impl Slice {
    /// Its key in `forgeerp_read.checkpoints.tenant_key` (and in its
    /// leadership lock): the tenant or `*`, then `#index/count` when split,
    /// then `@shard<n>` when it follows one shard of a sharded deployment.
    fn key(&self) -> String {
        let tenant = self
            .tenant_id
            .map_or_else(|| "*".to_string(), |t| t.to_string());
        let key = match self.partition.count {
            0 | 1 => tenant,
            count => format!("{tenant}#{}/{count}", self.partition.index),
        };
        match self.shard {
            None => key,
            Some(shard) => format!("{key}@shard{shard}"),
        }
    }
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
        slice: Slice,
        config: &WorkerConfig,
        stopped: &mut watch::Receiver<bool>,
    ) -> Option<Leadership> {
        let mut standing_by = false;
        loop {
            match Leadership::try_lead(pool, name, slice).await {
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
        slice: Slice,
    ) -> Result<Option<Leadership>, ProjectionError> {
        let client = deadpool_postgres::Object::take(pool.get().await?);
        let leads: bool = client
            .query_one(
                include_str!("../../sql/worker/claim_leadership.sql"),
                &[&name, &slice.key(), &false],
            )
            .await?
            .get(0);
        Ok(leads.then_some(Leadership { client }))
    }

    /// Whether the lock is still held: false once its connection broke.
    fn holds(&self) -> bool {
        !self.client.is_closed()
    }

    /// Lets go of the lock before the connection closes (which would let go
    /// of it too, but only once the server notices), so that whoever waits
    /// for it (a standby, `resplit`) need not.
    async fn release(self) {
        let _ = self
            .client
            .batch_execute("SELECT pg_catalog.pg_advisory_unlock_all()")
            .await;
    }
}

async fn run<P: PgProjection, B: EventBus>(
    pool: Pool,
    bus: B,
    projection: P,
    slice: Slice,
    config: WorkerConfig,
    mut stopped: watch::Receiver<bool>,
    leading: Arc<AtomicBool>,
) -> Result<FeedPosition, ProjectionError> {
    let name = projection.name().to_string();
    let mut position = FeedPosition::default();
    loop {
        let Some(leadership) =
            Leadership::acquire(&pool, &name, slice, &config, &mut stopped).await
        else {
            return Ok(position);
        };
        leading.store(true, Ordering::SeqCst);
        metrics::gauge!("forgeerp_projection_leader", "projection" => name.clone(), "partition" => slice.partition.label()).set(1.0);
        let led = lead(
            &pool,
            &bus,
            &projection,
            slice,
            &config,
            &mut stopped,
            &leadership,
        )
        .await;
        leading.store(false, Ordering::SeqCst);
        metrics::gauge!("forgeerp_projection_leader", "projection" => name.clone(), "partition" => slice.partition.label()).set(0.0);
        leadership.release().await;
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
    slice: Slice,
    config: &WorkerConfig,
    stopped: &mut watch::Receiver<bool>,
    leadership: &Leadership,
) -> Result<Led, ProjectionError> {
    'from_checkpoint: loop {
        let mut position = checkpoint_at(pool, projection.name(), &slice.key()).await?;
        let mut subscription = loop {
            match bus.subscribe(position, slice.tenant_id).await {
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
            // Another partition's events are passed over: the checkpoint
            // moves past them with this partition's next commit.
            batch.retain(|event| slice.partition.contains(event));
            let applier = Applier {
                pool,
                projection,
                slice,
                config,
                stopped,
            };
            let outcome = applier.in_order(position, batch, last).await;
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

/// What every step of applying needs: the pool, the projection and its
/// slice of the feed, the retry settings and the stop signal.
struct Applier<'a, P> {
    pool: &'a Pool,
    projection: &'a P,
    slice: Slice,
    config: &'a WorkerConfig,
    stopped: &'a watch::Receiver<bool>,
}

impl<P: PgProjection> Applier<'_, P> {
    /// Applies `batch` (events after `from`, in feed order) and moves the
    /// checkpoint to `through`: in one transaction when it has several
    /// events, else (or when that fails) one by one, each with its retries.
    /// Stops at the first error that is not the event's own.
    async fn in_order(
        &self,
        from: FeedPosition,
        batch: Vec<StoredEvent>,
        through: FeedPosition,
    ) -> Result<(), ProjectionError> {
        let (pool, projection, slice) = (self.pool, self.projection, self.slice);
        if batch.is_empty() {
            return pass_over(pool, projection.name(), slice, from, through).await;
        }
        let batch = match &self.config.personal_data {
            Some(personal) => personal.open(batch).await?,
            None => batch,
        };
        // Every event at its current version; one that cannot be brought
        // there is parked, like an event the projection keeps failing on.
        // (the event, at its current version when it has no error)
        let upcast: Vec<(StoredEvent, Option<UpcastError>)> = batch
            .into_iter()
            .map(|event| match self.config.upcasters.current(&event) {
                Ok(std::borrow::Cow::Borrowed(_)) => (event, None),
                Ok(std::borrow::Cow::Owned(current)) => (current, None),
                Err(error) => (event, Some(error)),
            })
            .collect();
        if upcast.iter().any(|(_, error)| error.is_some()) {
            let mut position = from;
            for (event, error) in upcast {
                match error {
                    None => {
                        self.one(position, &event).await?;
                        applied(projection, slice, std::slice::from_ref(&event));
                    }
                    Some(error) => {
                        tracing::error!(%error, "an event this application cannot read; parking it");
                        self.park(position, &event, &ProjectionError::Upcast(error), 1)
                            .await?;
                    }
                }
                position = event.position();
            }
            if position < through {
                pass_over(pool, projection.name(), slice, position, through).await?;
            }
            return Ok(());
        }
        let mut batch: Vec<StoredEvent> = upcast.into_iter().map(|(event, _)| event).collect();
        if batch.len() > 1 {
            let mut outcome =
                apply_batch_once(pool, projection, slice, from, &batch, through).await;
            if let Ok(Applied::Purged(heads)) = &outcome {
                // A tenant purged while this batch was on its way: its
                // events go, the others apply.
                batch.retain(|event| !is_purged(event, heads));
                outcome = match batch.is_empty() {
                    true => pass_over(pool, projection.name(), slice, from, through)
                        .await
                        .map(|()| Applied::Done),
                    false => apply_batch_once(pool, projection, slice, from, &batch, through).await,
                };
            }
            match outcome {
                Ok(Applied::Done) => {
                    applied(projection, slice, &batch);
                    return Ok(());
                }
                Ok(Applied::Purged(_)) => {
                    tracing::warn!(
                        events = batch.len(),
                        "tenants purged again during the batch; applying its events one by one"
                    )
                }
                Err(moved @ ProjectionError::CheckpointMoved(_)) => return Err(moved),
                Err(error) => {
                    tracing::warn!(%error, events = batch.len(), "batch failed; applying its events one by one")
                }
            }
        }
        let mut position = from;
        for event in batch {
            self.one(position, &event).await?;
            position = event.position();
            applied(projection, slice, std::slice::from_ref(&event));
        }
        if position < through {
            pass_over(pool, projection.name(), slice, position, through).await?;
        }
        Ok(())
    }

    /// One event, with retries, parked when it keeps failing.
    async fn one(&self, from: FeedPosition, event: &StoredEvent) -> Result<(), ProjectionError> {
        let (pool, projection, slice, config) =
            (self.pool, self.projection, self.slice, self.config);
        let span = tracing::debug_span!("projection", name = projection.name(), tenant = %event.tenant_id, aggregate = %event.aggregate_id);
        async {
            let mut backoff = config.min_backoff;
            let mut attempt = 1;
            loop {
                match apply_once(pool, projection, slice, from, event).await {
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
                        return self.park(from, event, &error, attempt).await;
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Parks `event` (applied after `from`) for `error`. Parking must not be
    /// lost either: retried until it lands or the worker is told to stop.
    async fn park(
        &self,
        from: FeedPosition,
        event: &StoredEvent,
        error: &ProjectionError,
        attempts: u32,
    ) -> Result<(), ProjectionError> {
        let (pool, projection, slice) = (self.pool, self.projection, self.slice);
        loop {
            match park(pool, projection, slice, from, event, error, attempts).await {
                Ok(()) => {
                    metrics::counter!("forgeerp_projection_parked_total", "projection" => projection.name().to_string(), "partition" => slice.partition.label()).increment(1);
                    return Ok(());
                }
                Err(moved @ ProjectionError::CheckpointMoved(_)) => return Err(moved),
                Err(park_error) if *self.stopped.borrow() => return Err(park_error),
                Err(park_error) => {
                    tracing::error!(%park_error, "cannot park the event; retrying");
                    tokio::time::sleep(self.config.max_backoff).await;
                }
            }
        }
    }
}

/// Moves the checkpoint from `from` to `through` over events of other
/// partitions only: a transaction with nothing but the checkpoint.
async fn pass_over(
    pool: &Pool,
    projection: &str,
    slice: Slice,
    from: FeedPosition,
    through: FeedPosition,
) -> Result<(), ProjectionError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    save_checkpoint(&tx, projection, slice, from, through).await?;
    tx.commit().await?;
    Ok(())
}

/// After a commit: the projection's hook and the counters.
fn applied<P: PgProjection>(projection: &P, slice: Slice, events: &[StoredEvent]) {
    projection.committed(events);
    let (name, partition) = (projection.name().to_string(), slice.partition.label());
    metrics::counter!("forgeerp_projection_applied_total", "projection" => name.clone(), "partition" => partition.clone())
        .increment(events.len() as u64);
    metrics::counter!("forgeerp_projection_batches_total", "projection" => name, "partition" => partition).increment(1);
}

/// Whether a transaction applied its events, or found that some of their
/// tenants were purged meanwhile (then it rolled back).
enum Applied {
    Done,
    /// The purged tenants and the feed's head at their purge.
    Purged(HashMap<uuid::Uuid, FeedPosition>),
}

/// The feed heads of the purges of `batch`'s tenants, read after the
/// checkpoint's lock (the driver's purge takes it too), so every purge
/// committed before this transaction could move the checkpoint is seen.
async fn purge_heads(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &[StoredEvent],
) -> Result<HashMap<uuid::Uuid, FeedPosition>, ProjectionError> {
    let mut tenants: Vec<uuid::Uuid> = batch.iter().map(|e| e.tenant_id.as_uuid()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let statement = tx
        .prepare_cached(
            "SELECT tenant_id, transaction_id, global_position FROM forgeerp_read.purged_tenants WHERE tenant_id = ANY($1)",
        )
        .await?;
    let rows = tx.query(&statement, &[&tenants]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get(0),
                FeedPosition {
                    transaction_id: row.get(1),
                    global_position: row.get(2),
                },
            )
        })
        .collect())
}

/// Whether `event` was removed by a purge of its tenant (at or before its head).
fn is_purged(event: &StoredEvent, heads: &HashMap<uuid::Uuid, FeedPosition>) -> bool {
    heads
        .get(&event.tenant_id.as_uuid())
        .is_some_and(|head| event.position() <= *head)
}

/// A batch in one transaction: per run of one tenant, point the binding at
/// that tenant and apply the run; then save the checkpoint once. Rolled
/// back, as [`Applied::Purged`], when a tenant of the batch was purged.
async fn apply_batch_once<P: PgProjection>(
    pool: &Pool,
    projection: &P,
    slice: Slice,
    from: FeedPosition,
    batch: &[StoredEvent],
    through: FeedPosition,
) -> Result<Applied, ProjectionError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // The checkpoint goes out with the first run: it is independent of the
    // projection's statements and commits (or not) with them. The purges
    // are read once it has its lock (a purge holds it until it commits).
    let mut checkpoint = Some(async {
        save_checkpoint(&tx, projection.name(), slice, from, through).await?;
        purge_heads(&tx, batch).await
    });
    let mut heads = HashMap::new();
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
                Some(save) => save.await.map(Some),
                None => Ok(None),
            }
        };
        let ((), (), found) = tokio::try_join!(bind, projection.apply_batch(&tx, run), saved)?;
        if let Some(found) = found {
            heads = found;
        }
    }
    drop(checkpoint);
    if batch.iter().any(|event| is_purged(event, &heads)) {
        return Ok(Applied::Purged(heads));
    }
    tx.commit().await?;
    Ok(Applied::Done)
}

/// Moves the checkpoint from `from` (where this worker read it) to `to`,
/// inside the caller's transaction; [`ProjectionError::CheckpointMoved`]
/// when it is no longer at `from`.
async fn save_checkpoint(
    tx: &deadpool_postgres::Transaction<'_>,
    projection: &str,
    slice: Slice,
    from: FeedPosition,
    to: FeedPosition,
) -> Result<(), ProjectionError> {
    // Prepared once per connection: one round trip per batch, not two.
    let statement = tx
        .prepare_cached(include_str!("../../sql/worker/save_checkpoint.sql"))
        .await?;
    let moved = tx
        .execute(
            &statement,
            &[
                &projection,
                &slice.key(),
                &from.transaction_id,
                &from.global_position,
                &to.transaction_id,
                &to.global_position,
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
    slice: Slice,
    from: FeedPosition,
    event: &StoredEvent,
) -> Result<(), ProjectionError> {
    let mut client = pool.get().await?;
    let tx = begin_bound(&mut client, event.tenant_id, Access::ReadWrite).await?;
    // Purged before it came here (its stream's earlier events are gone, so
    // the projection could only fail on it): the checkpoint moves past it.
    if is_purged(event, &purge_heads(&tx, std::slice::from_ref(event)).await?) {
        drop(tx);
        drop(client);
        return pass_over(pool, projection.name(), slice, from, event.position()).await;
    }
    projection.apply(&tx, event).await?;
    save_checkpoint(&tx, projection.name(), slice, from, event.position()).await?;
    // Purged while on its way: undone, and only the checkpoint moves past it.
    if is_purged(event, &purge_heads(&tx, std::slice::from_ref(event)).await?) {
        drop(tx);
        drop(client);
        return pass_over(pool, projection.name(), slice, from, event.position()).await;
    }
    tx.commit().await?;
    Ok(())
}

/// Records the event as parked and moves the checkpoint past it.
async fn park<P: PgProjection>(
    pool: &Pool,
    projection: &P,
    slice: Slice,
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
    save_checkpoint(&tx, projection.name(), slice, from, event.position()).await?;
    if is_purged(event, &purge_heads(&tx, std::slice::from_ref(event)).await?) {
        drop(tx);
        drop(client);
        return pass_over(pool, projection.name(), slice, from, event.position()).await;
    }
    tx.commit().await?;
    Ok(())
}

//! Tenants sharded over several databases (`forgeerp_proxy`, README
//! "Sharding"): a store that writes and reads straight on each tenant's
//! shard, a subscription that follows every shard's feed with one cursor
//! per shard, and projection workers with one checkpoint per shard.
//!
//! A tenant's shard is [`forgeerp_contract::sharding::shard_of`] of its uuid
//! among the shards (a power of two), the function the proxy's
//! `forgeerp.shard_of` computes, so the driver routes without asking. Above
//! the store and the bus nothing changes: a [`ShardedEventStore`] is an
//! [`EventStore`] (the dispatcher takes it as it is), and
//! [`ShardedWorkers::spawn`] runs any [`PgProjection`] over every shard into
//! one read-model database.
//!
//! What is given up: an append is one tenant's stream, so nothing is lost
//! there; but there is no global feed order across shards (a cursor is one
//! position per shard) and no atomic appends across tenants of two shards.

use crate::connection::ConnectionSettings;
use crate::event::{FeedPosition, StoredEvent, UncommittedEvent};
use crate::event_bus::pg_notify::PgNotifyEventBus;
use crate::event_bus::Subscription;
use crate::event_store::postgres::PgEventStore;
use crate::event_store::{batch_target, EventStore, EventStoreError};
use crate::expected_version::ExpectedVersion;
use crate::ids::{AggregateId, TenantId};
use crate::workers::projection_worker::{
    PgProjection, ProjectionWorker, WorkerConfig, WorkerHandle,
};
use deadpool_postgres::Pool;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// The shard of `tenant_id` among `shards` (a power of two).
pub fn shard_of(tenant_id: TenantId, shards: usize) -> usize {
    forgeerp_contract::sharding::shard_of(tenant_id.as_uuid().as_bytes(), shards as u32)
        .expect("the shard count is a power of two (checked when the store was made)") as usize
}

/// An event store over the shards of a sharded deployment, in shard order:
/// every call goes straight to its tenant's shard.
#[derive(Clone)]
pub struct ShardedEventStore {
    shards: Arc<[PgEventStore]>,
}

impl ShardedEventStore {
    /// The store over `shards`, shard 0 first; their count must be a power
    /// of two (the proxy's `forgeerp.shards()` lists them).
    pub fn new(shards: Vec<PgEventStore>) -> Result<Self, EventStoreError> {
        if !shards.len().is_power_of_two() {
            return Err(EventStoreError::InvalidAppend(format!(
                "a sharded store needs a power of two of shards, got {}",
                shards.len()
            )));
        }
        Ok(ShardedEventStore {
            shards: shards.into(),
        })
    }

    /// A store with a pool of at most `max_connections` to each shard's
    /// connection string, shard 0 first.
    pub fn connect(urls: &[&str], max_connections: usize) -> Result<Self, EventStoreError> {
        let shards = urls
            .iter()
            .map(|url| PgEventStore::connect(url, max_connections))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(shards)
    }

    /// How many shards there are.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always false: a sharded store has at least one shard.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The shard of `tenant_id`.
    pub fn shard_of(&self, tenant_id: TenantId) -> usize {
        shard_of(tenant_id, self.shards.len())
    }

    /// The store of shard `shard`.
    pub fn shard(&self, shard: usize) -> &PgEventStore {
        &self.shards[shard]
    }

    /// The store of `tenant_id`'s shard.
    pub fn of(&self, tenant_id: TenantId) -> &PgEventStore {
        &self.shards[self.shard_of(tenant_id)]
    }
}

impl EventStore for ShardedEventStore {
    async fn append(
        &self,
        events: Vec<UncommittedEvent>,
        expected: ExpectedVersion,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let target = batch_target(&events)?;
        self.of(target.tenant_id).append(events, expected).await
    }

    async fn load_stream_from(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        from: u64,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        self.of(tenant_id)
            .load_stream_from(tenant_id, aggregate_id, from)
            .await
    }

    async fn stream_version(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
    ) -> Result<u64, EventStoreError> {
        self.of(tenant_id)
            .stream_version(tenant_id, aggregate_id)
            .await
    }

    /// One tenant's feed, from its shard. Without a tenant it is
    /// [`EventStoreError::InvalidAppend`] (ES003), as on the proxy: the feed is
    /// per shard ([`ShardedEventBus::follow`] follows them all).
    async fn read_all(
        &self,
        after: FeedPosition,
        max: usize,
        tenant_id: Option<TenantId>,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        match tenant_id {
            Some(tenant_id) => self.of(tenant_id).read_all(after, max, Some(tenant_id)).await,
            None => Err(EventStoreError::InvalidAppend(
                "a sharded store has no global feed: read one tenant's, or follow every shard's feed (ShardedEventBus)".into(),
            )),
        }
    }
}

/// The buses of every shard (LISTEN and the feed of each), shard 0 first.
#[derive(Clone)]
pub struct ShardedEventBus {
    shards: Arc<[PgNotifyEventBus]>,
}

/// A cursor over every shard's feed: one position per shard, shard 0 first.
pub type ShardCursor = Vec<FeedPosition>;

impl ShardedEventBus {
    /// The buses of `shards` (connection settings, shard 0 first).
    pub fn new(shards: Vec<ConnectionSettings>) -> Self {
        ShardedEventBus {
            shards: shards
                .into_iter()
                .map(PgNotifyEventBus::with_settings)
                .collect(),
        }
    }

    /// How many shards there are.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always false: there is at least one shard.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The bus of shard `shard`.
    pub fn shard(&self, shard: usize) -> &PgNotifyEventBus {
        &self.shards[shard]
    }

    /// Every shard's events after its position in `from` (of one tenant or
    /// all), each shard woken by its own LISTEN, merged as they come: per
    /// shard in feed order, with no order between shards. A shard that is
    /// down delays only its own events; its subscription reconnects.
    pub fn follow(
        &self,
        from: &[FeedPosition],
        tenant_id: Option<TenantId>,
    ) -> ShardedSubscription {
        let (sender, receiver) = mpsc::channel(1024);
        let (stop, stopped) = watch::channel(false);
        let tasks = self
            .shards
            .iter()
            .enumerate()
            .map(|(shard, bus)| {
                let mut subscription =
                    bus.follow(from.get(shard).copied().unwrap_or_default(), tenant_id);
                let sender = sender.clone();
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    loop {
                        let event = tokio::select! {
                            event = subscription.recv() => event,
                            _ = stopped.changed() => None,
                        };
                        let Some(event) = event else { break };
                        if sender.send((shard, event)).await.is_err() {
                            break;
                        }
                    }
                    subscription.close().await;
                })
            })
            .collect();
        ShardedSubscription {
            receiver,
            stop,
            tasks,
        }
    }
}

/// Events of every shard, each with its shard ([`ShardedEventBus::follow`]).
pub struct ShardedSubscription {
    receiver: mpsc::Receiver<(usize, StoredEvent)>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ShardedSubscription {
    /// The next event and its shard; None once every shard's subscription ended.
    pub async fn recv(&mut self) -> Option<(usize, StoredEvent)> {
        self.receiver.recv().await
    }

    /// Ends every shard's subscription and waits until they let go.
    pub async fn close(self) {
        let _ = self.stop.send(true);
        drop(self.receiver);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Projection workers over every shard of a sharded deployment.
pub struct ShardedWorkers;

impl ShardedWorkers {
    /// One worker per shard of `bus`, each applying its shard's feed to
    /// `projection` in the read-model database of `pool`, with a checkpoint
    /// of its own ([`WorkerConfig::shard`]): nothing else changes for the
    /// projection.
    pub fn spawn<P: PgProjection + Clone>(
        pool: Pool,
        bus: &ShardedEventBus,
        projection: P,
        tenant_id: Option<TenantId>,
        config: WorkerConfig,
    ) -> Vec<WorkerHandle> {
        (0..bus.len())
            .map(|shard| {
                ProjectionWorker::spawn(
                    pool.clone(),
                    bus.shard(shard).clone(),
                    projection.clone(),
                    tenant_id,
                    WorkerConfig {
                        shard: Some(shard as u32),
                        ..config.clone()
                    },
                )
            })
            .collect()
    }
}

//! Snapshots: an aggregate's state at a stream version, so that the
//! dispatcher replays only the events after it.
//!
//! Snapshots are derived data. The dispatcher takes one after a command has
//! been appended (never on the command's way: a task of its own, whose
//! failure is logged and ignored), reads the latest one of the aggregate's
//! current state version ([`Aggregate::STATE_VERSION`](crate::Aggregate))
//! before loading, and falls back to the events whenever a snapshot is
//! missing, of another state version, or unreadable. Deleting every snapshot
//! changes no result, only speed.

pub mod in_memory;
pub mod postgres;

use crate::event::StoredEvent;
use crate::ids::{AggregateId, TenantId};
use serde_json::Value;
use std::future::Future;

pub use in_memory::InMemorySnapshotStore;
pub use postgres::PgSnapshotStore;

/// One aggregate's state after `stream_version` events.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The stream's aggregate type.
    pub aggregate_type: String,
    /// The aggregate.
    pub aggregate_id: AggregateId,
    /// The state's own schema version ([`crate::Aggregate::STATE_VERSION`]).
    pub state_version: u32,
    /// How many events of the stream the state includes.
    pub stream_version: u64,
    /// The state, as the aggregate serialized it.
    pub state: Value,
}

/// Why a snapshot could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("snapshot store: {0}")]
pub struct SnapshotError(pub String);

impl From<tokio_postgres::Error> for SnapshotError {
    fn from(error: tokio_postgres::Error) -> Self {
        SnapshotError(error.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for SnapshotError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        SnapshotError(error.to_string())
    }
}

/// Where snapshots are kept. Cheap to clone: the dispatcher writes from a
/// task of its own.
pub trait SnapshotStore: Clone + Send + Sync + 'static {
    /// The snapshot of `(tenant, aggregate_type, aggregate)` at
    /// `state_version`, if there is one.
    fn load(
        &self,
        tenant_id: TenantId,
        aggregate_type: &str,
        aggregate_id: AggregateId,
        state_version: u32,
    ) -> impl Future<Output = Result<Option<Snapshot>, SnapshotError>> + Send;

    /// Keeps `snapshot`, unless one of a later stream version is kept already.
    fn save(&self, snapshot: Snapshot) -> impl Future<Output = Result<(), SnapshotError>> + Send;

    /// What [`SnapshotStore::load`] finds, with the stream's events after it
    /// (after 0 when there is no snapshot) when the store reads them in the
    /// same request: the Postgres store does, from its own database, which
    /// is the event store's. None: the caller loads them. By default, `load`.
    fn load_with_tail(
        &self,
        tenant_id: TenantId,
        aggregate_type: &str,
        aggregate_id: AggregateId,
        state_version: u32,
    ) -> impl Future<Output = Result<(Option<Snapshot>, Option<Vec<StoredEvent>>), SnapshotError>> + Send
    {
        async move {
            let snapshot = self
                .load(tenant_id, aggregate_type, aggregate_id, state_version)
                .await?;
            Ok((snapshot, None))
        }
    }
}

/// No snapshots: every load replays the whole stream (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSnapshots;

impl SnapshotStore for NoSnapshots {
    async fn load(
        &self,
        _tenant_id: TenantId,
        _aggregate_type: &str,
        _aggregate_id: AggregateId,
        _state_version: u32,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        Ok(None)
    }

    async fn save(&self, _snapshot: Snapshot) -> Result<(), SnapshotError> {
        Ok(())
    }
}

/// When the dispatcher takes a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// After an append that makes the stream cross a multiple of this many
    /// events (None: not by count).
    pub every: Option<u64>,
    /// After a load that replayed more than this many events (None: not by
    /// replay length).
    pub replayed_more_than: Option<u64>,
}

impl SnapshotPolicy {
    /// Every `n` events.
    pub fn every(n: u64) -> Self {
        SnapshotPolicy {
            every: Some(n.max(1)),
            replayed_more_than: None,
        }
    }

    /// Whenever a load replayed more than `n` events.
    pub fn when_replayed_more_than(n: u64) -> Self {
        SnapshotPolicy {
            every: None,
            replayed_more_than: Some(n),
        }
    }

    /// Whether to snapshot a stream at `version` reached by an append of
    /// `appended` events after a load that replayed `replayed`.
    pub fn wants(&self, version: u64, appended: u64, replayed: u64) -> bool {
        let crossed = self
            .every
            .is_some_and(|n| appended > 0 && version / n > (version - appended) / n);
        let long_replay = self.replayed_more_than.is_some_and(|n| replayed > n);
        crossed || long_replay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_n_snapshots_when_an_append_crosses_a_multiple() {
        let policy = SnapshotPolicy::every(100);
        assert!(policy.wants(100, 1, 0));
        assert!(policy.wants(101, 5, 0), "96..101 crosses 100");
        assert!(!policy.wants(99, 5, 0));
        assert!(!policy.wants(150, 10, 0));
        assert!(!policy.wants(100, 0, 0), "a load alone is not an append");
    }

    #[test]
    fn a_long_replay_snapshots() {
        let policy = SnapshotPolicy::when_replayed_more_than(500);
        assert!(policy.wants(1000, 1, 501));
        assert!(!policy.wants(1000, 1, 500));
    }
}

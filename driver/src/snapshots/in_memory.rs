//! Snapshots in memory, for tests and single-process tools.

use super::{Snapshot, SnapshotError, SnapshotStore};
use crate::ids::{AggregateId, TenantId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The snapshot of each (tenant, aggregate type, aggregate, state version).
type Snapshots = HashMap<(TenantId, String, AggregateId, u32), Snapshot>;

/// Snapshots in a shared map; clones share it.
#[derive(Clone, Debug, Default)]
pub struct InMemorySnapshotStore {
    snapshots: Arc<Mutex<Snapshots>>,
}

impl InMemorySnapshotStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshots> {
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many snapshots it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every snapshot.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

impl SnapshotStore for InMemorySnapshotStore {
    async fn load(
        &self,
        tenant_id: TenantId,
        aggregate_type: &str,
        aggregate_id: AggregateId,
        state_version: u32,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        let key = (
            tenant_id,
            aggregate_type.to_string(),
            aggregate_id,
            state_version,
        );
        Ok(self.lock().get(&key).cloned())
    }

    async fn save(&self, snapshot: Snapshot) -> Result<(), SnapshotError> {
        let key = (
            snapshot.tenant_id,
            snapshot.aggregate_type.clone(),
            snapshot.aggregate_id,
            snapshot.state_version,
        );
        let mut snapshots = self.lock();
        if snapshots
            .get(&key)
            .is_none_or(|kept| kept.stream_version < snapshot.stream_version)
        {
            snapshots.insert(key, snapshot);
        }
        Ok(())
    }
}

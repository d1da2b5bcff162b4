//! Publish after append: a store wrapper that hands committed events to a bus.
//!
//! Guarantee: an event is published only after its append succeeded (for the
//! Postgres store: committed), in append order. A failed publish is logged
//! and does not fail or undo the append, so delivery is at least once only
//! for consumers that also read the feed; consumers must be idempotent.
//!
//! With `PgEventStore` the database itself notifies listeners at commit
//! (channel `forgeerp_events`) and readers take events from the feed, so no
//! publishing wrapper is needed there: wrap the Postgres store only for a bus
//! the database does not feed (in-process or Redis), and nothing is done twice.

use super::{EventStore, EventStoreError};
use crate::event::{FeedPosition, StoredEvent, UncommittedEvent};
use crate::event_bus::EventBus;
use crate::expected_version::ExpectedVersion;
use crate::ids::{AggregateId, TenantId};

/// An `EventStore` that publishes what it appended to `B`.
pub struct PublishingEventStore<S, B> {
    store: S,
    bus: B,
}

impl<S: EventStore, B: EventBus> PublishingEventStore<S, B> {
    /// Wraps `store`; appended events go to `bus`.
    pub fn new(store: S, bus: B) -> Self {
        PublishingEventStore { store, bus }
    }

    /// The wrapped store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The bus.
    pub fn bus(&self) -> &B {
        &self.bus
    }
}

impl<S: EventStore, B: EventBus> EventStore for PublishingEventStore<S, B> {
    async fn append(
        &self,
        events: Vec<UncommittedEvent>,
        expected: ExpectedVersion,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let stored = self.store.append(events, expected).await?;
        for event in &stored {
            if let Err(error) = self.bus.publish(event).await {
                tracing::warn!(
                    %error,
                    tenant = %event.tenant_id,
                    aggregate = %event.aggregate_id,
                    sequence = event.sequence_number,
                    "publish after append failed; the event is stored and stays in the feed"
                );
            }
        }
        Ok(stored)
    }

    async fn load_stream_from(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        from: u64,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        self.store
            .load_stream_from(tenant_id, aggregate_id, from)
            .await
    }

    async fn stream_version(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
    ) -> Result<u64, EventStoreError> {
        self.store.stream_version(tenant_id, aggregate_id).await
    }

    async fn read_all(
        &self,
        after: FeedPosition,
        max: usize,
        tenant_id: Option<TenantId>,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        self.store.read_all(after, max, tenant_id).await
    }
}

//! The event bus: how committed events reach projections and other readers.
//!
//! A bus is for wake-ups and fan-out, never the source of truth: consumers
//! are idempotent and can always re-read the feed (`EventStore::read_all`).

pub mod in_memory;
pub mod pg_notify;
#[cfg(feature = "redis")]
pub mod redis_pubsub;

use crate::event::StoredEvent;
use std::future::Future;

/// Why a publish failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("publish failed: {0}")]
pub struct PublishError(pub String);

/// Something committed events can be published to.
pub trait EventBus: Send + Sync {
    /// Publishes one committed event (at least once; consumers are idempotent).
    fn publish(&self, event: &StoredEvent)
        -> impl Future<Output = Result<(), PublishError>> + Send;
}

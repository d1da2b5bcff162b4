//! The event bus: how committed events reach projections and other readers.
//!
//! A bus is for wake-ups and fan-out, never the source of truth: consumers
//! are idempotent and can always re-read the feed (`EventStore::read_all`).

pub mod in_memory;
pub mod pg_notify;
#[cfg(feature = "redis")]
pub mod redis_pubsub;

use crate::event::{FeedPosition, StoredEvent};
use crate::ids::TenantId;
use std::future::Future;

/// Why a publish or a subscribe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event bus: {0}")]
pub struct BusError(pub String);

/// Events coming from a bus, in the order the bus delivers them.
pub trait Subscription: Send {
    /// The next event; None once the subscription has ended.
    fn recv(&mut self) -> impl Future<Output = Option<StoredEvent>> + Send;
    /// The next event if one is already waiting.
    fn try_recv(&mut self) -> Option<StoredEvent>;

    /// Ends the subscription and waits until it has let go of its resources.
    fn close(self) -> impl Future<Output = ()> + Send
    where
        Self: Sized,
    {
        async move { drop(self) }
    }
}

/// Where committed events are published and subscribed to.
pub trait EventBus: Send + Sync {
    /// What `subscribe` returns.
    type Subscription: Subscription + 'static;

    /// Publishes one committed event (at least once; consumers are idempotent).
    fn publish(&self, event: &StoredEvent) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Events after `from`, of one tenant or all. A durable bus
    /// (`PgNotifyEventBus`) starts at `from`; a live-only bus (in-memory,
    /// Redis) delivers what is published from now on and ignores `from`.
    fn subscribe(
        &self,
        from: FeedPosition,
        tenant_id: Option<TenantId>,
    ) -> impl Future<Output = Result<Self::Subscription, BusError>> + Send;
}

//! An in-process bus over a tokio broadcast channel, for tests.

use super::{BusError, EventBus, Subscription};
use crate::event::{FeedPosition, StoredEvent};
use crate::ids::TenantId;
use tokio::sync::broadcast;

/// In-process fan-out: every subscriber gets every event published after it
/// subscribed; a subscriber that lags more than `capacity` events behind
/// loses the oldest (and is told so by the channel).
pub struct InMemoryEventBus {
    sender: broadcast::Sender<StoredEvent>,
}

impl InMemoryEventBus {
    /// A bus that buffers up to `capacity` events per subscriber.
    pub fn new(capacity: usize) -> Self {
        InMemoryEventBus {
            sender: broadcast::channel(capacity).0,
        }
    }

    /// A new receiver of everything published from now on.
    pub fn receiver(&self) -> broadcast::Receiver<StoredEvent> {
        self.sender.subscribe()
    }
}

impl Default for InMemoryEventBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl EventBus for InMemoryEventBus {
    type Subscription = InMemorySubscription;

    async fn publish(&self, event: &StoredEvent) -> Result<(), BusError> {
        // No subscriber is not an error: nobody is listening yet.
        let _ = self.sender.send(event.clone());
        Ok(())
    }

    async fn subscribe(
        &self,
        _from: FeedPosition,
        tenant_id: Option<TenantId>,
    ) -> Result<InMemorySubscription, BusError> {
        Ok(InMemorySubscription {
            receiver: self.sender.subscribe(),
            tenant_id,
        })
    }
}

/// A live subscription to an `InMemoryEventBus`, optionally of one tenant.
pub struct InMemorySubscription {
    receiver: broadcast::Receiver<StoredEvent>,
    tenant_id: Option<TenantId>,
}

impl InMemorySubscription {
    fn wanted(&self, event: &StoredEvent) -> bool {
        self.tenant_id.is_none_or(|t| t == event.tenant_id)
    }
}

impl Subscription for InMemorySubscription {
    async fn recv(&mut self) -> Option<StoredEvent> {
        loop {
            match self.receiver.recv().await {
                Ok(event) if self.wanted(&event) => return Some(event),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "in-memory subscriber lagged; events lost");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    fn try_recv(&mut self) -> Option<StoredEvent> {
        loop {
            match self.receiver.try_recv() {
                Ok(event) if self.wanted(&event) => return Some(event),
                Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => return None,
            }
        }
    }
}

//! An in-process bus over a tokio broadcast channel, for tests.

use super::{EventBus, PublishError};
use crate::event::StoredEvent;
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

    /// A new subscription.
    pub fn subscribe(&self) -> broadcast::Receiver<StoredEvent> {
        self.sender.subscribe()
    }
}

impl Default for InMemoryEventBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl EventBus for InMemoryEventBus {
    async fn publish(&self, event: &StoredEvent) -> Result<(), PublishError> {
        // No subscriber is not an error: nobody is listening yet.
        let _ = self.sender.send(event.clone());
        Ok(())
    }
}

//! A bus over Redis Pub/Sub (cargo feature `redis`).
//!
//! **Not durable.** Redis Pub/Sub delivers a message to the subscribers
//! connected at the moment it is published and keeps nothing: a subscriber
//! that is offline, or reconnecting, misses what was published meanwhile.
//! Use it for fan-out to other processes that can afford that (caches,
//! dashboards), and let anything that must see every event read the feed
//! (`PgNotifyEventBus`, `EventStore::read_all`).

use super::{EventBus, PublishError};
use crate::event::StoredEvent;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

/// The channel events are published on.
pub const CHANNEL: &str = "forgeerp_events";

/// Publishes envelopes as JSON on a Redis channel.
pub struct RedisPubSubEventBus {
    client: redis::Client,
    publisher: Mutex<Option<MultiplexedConnection>>,
}

impl RedisPubSubEventBus {
    /// A bus on the Redis server at `url` (`redis://host:port`).
    pub fn new(url: &str) -> Result<Self, PublishError> {
        let client =
            redis::Client::open(url).map_err(|e| PublishError(format!("bad Redis URL: {e}")))?;
        Ok(RedisPubSubEventBus {
            client,
            publisher: Mutex::new(None),
        })
    }

    /// Subscribes from now on; earlier and missed messages are not delivered.
    pub async fn subscribe(&self) -> Result<RedisSubscription, PublishError> {
        let mut pubsub = self
            .client
            .get_async_pubsub()
            .await
            .map_err(|e| PublishError(e.to_string()))?;
        pubsub
            .subscribe(CHANNEL)
            .await
            .map_err(|e| PublishError(e.to_string()))?;
        let (events, receiver) = mpsc::channel(1024);
        let task = tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                match serde_json::from_slice::<StoredEvent>(message.get_payload_bytes()) {
                    Ok(event) => {
                        if events.send(event).await.is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "ignoring a message that is not an event envelope")
                    }
                }
            }
        });
        Ok(RedisSubscription { receiver, task })
    }
}

impl EventBus for RedisPubSubEventBus {
    async fn publish(&self, event: &StoredEvent) -> Result<(), PublishError> {
        let payload = serde_json::to_string(event).map_err(|e| PublishError(e.to_string()))?;
        let mut publisher = self.publisher.lock().await;
        if publisher.is_none() {
            let connection = self
                .client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| PublishError(e.to_string()))?;
            *publisher = Some(connection);
        }
        let connection = publisher.as_mut().expect("connected just above");
        let result: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(payload)
            .query_async(connection)
            .await;
        if let Err(error) = result {
            *publisher = None; // reconnect next time
            return Err(PublishError(error.to_string()));
        }
        Ok(())
    }
}

/// A live Redis subscription.
pub struct RedisSubscription {
    receiver: mpsc::Receiver<StoredEvent>,
    task: JoinHandle<()>,
}

impl RedisSubscription {
    /// The next event; None once the connection is gone.
    pub async fn recv(&mut self) -> Option<StoredEvent> {
        self.receiver.recv().await
    }
}

impl Drop for RedisSubscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

//! A bus over Redis Pub/Sub (cargo feature `redis`).
//!
//! **Not durable.** Redis Pub/Sub delivers a message to the subscribers
//! connected at the moment it is published and keeps nothing: a subscriber
//! that is offline, or reconnecting, misses what was published meanwhile.
//! Use it for fan-out to other processes that can afford that (caches,
//! dashboards), and let anything that must see every event read the feed
//! (`PgNotifyEventBus`, `EventStore::read_all`).

use super::{BusError, EventBus, Subscription};
use crate::event::{FeedPosition, StoredEvent};
use crate::ids::TenantId;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

/// The channel events are published on.
pub use forgeerp_contract::names::CHANNEL;

/// Publishes envelopes as JSON on a Redis channel.
pub struct RedisPubSubEventBus {
    client: redis::Client,
    publisher: Mutex<Option<MultiplexedConnection>>,
}

impl RedisPubSubEventBus {
    /// A bus on the Redis server at `url` (`redis://host:port`).
    pub fn new(url: &str) -> Result<Self, BusError> {
        let client =
            redis::Client::open(url).map_err(|e| BusError(format!("bad Redis URL: {e}")))?;
        Ok(RedisPubSubEventBus {
            client,
            publisher: Mutex::new(None),
        })
    }

    /// Subscribes from now on; earlier and missed messages are not delivered.
    async fn subscribe_live(
        &self,
        tenant_id: Option<TenantId>,
    ) -> Result<RedisSubscription, BusError> {
        let mut pubsub = self
            .client
            .get_async_pubsub()
            .await
            .map_err(|e| BusError(e.to_string()))?;
        pubsub
            .subscribe(CHANNEL)
            .await
            .map_err(|e| BusError(e.to_string()))?;
        let (events, receiver) = mpsc::channel(1024);
        let task = tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                match serde_json::from_slice::<StoredEvent>(message.get_payload_bytes()) {
                    Ok(event) if tenant_id.is_some_and(|t| t != event.tenant_id) => {}
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
    type Subscription = RedisSubscription;

    /// Live only: `from` is ignored (Redis keeps nothing to replay).
    async fn subscribe(
        &self,
        _from: FeedPosition,
        tenant_id: Option<TenantId>,
    ) -> Result<RedisSubscription, BusError> {
        self.subscribe_live(tenant_id).await
    }

    async fn publish(&self, event: &StoredEvent) -> Result<(), BusError> {
        let payload = serde_json::to_string(event).map_err(|e| BusError(e.to_string()))?;
        let mut publisher = self.publisher.lock().await;
        if publisher.is_none() {
            let connection = self
                .client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| BusError(e.to_string()))?;
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
            return Err(BusError(error.to_string()));
        }
        Ok(())
    }
}

/// A live Redis subscription.
pub struct RedisSubscription {
    receiver: mpsc::Receiver<StoredEvent>,
    task: JoinHandle<()>,
}

impl Subscription for RedisSubscription {
    async fn recv(&mut self) -> Option<StoredEvent> {
        self.receiver.recv().await
    }

    fn try_recv(&mut self) -> Option<StoredEvent> {
        self.receiver.try_recv().ok()
    }
}

impl Drop for RedisSubscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

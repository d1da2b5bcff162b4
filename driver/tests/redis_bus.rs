//! The Redis Pub/Sub bus against a real Redis (the private one of
//! `scripts/setup.sh`, or `FORGEERP_REDIS_URL`): a round trip, and the loss
//! it is documented to have for a subscriber that was offline.

#![cfg(feature = "redis")]

use forgeerp_infra::event_bus::redis_pubsub::{RedisPubSubEventBus, RedisSubscription};
use forgeerp_infra::event_bus::Subscription;
use forgeerp_infra::{
    AggregateId, EventBus, EventStore, ExpectedVersion, FeedPosition, InMemoryEventStore,
    StoredEvent, TenantId, UncommittedEvent,
};
use serde_json::json;
use std::time::Duration;

fn url() -> String {
    std::env::var("FORGEERP_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:28816".into())
}

async fn stored(n: i64) -> Vec<StoredEvent> {
    let (tenant, item) = (TenantId::random(), AggregateId::random());
    let events = (1..=n)
        .map(|i| UncommittedEvent::new(tenant, "t", item, "Tick", json!({"n": i})))
        .collect();
    InMemoryEventStore::new()
        .append(events, ExpectedVersion::Any)
        .await
        .unwrap()
}

async fn next(subscription: &mut RedisSubscription) -> Option<StoredEvent> {
    tokio::time::timeout(Duration::from_millis(500), subscription.recv())
        .await
        .ok()
        .flatten()
}

/// Waits until `subscription` really receives (SUBSCRIBE is asynchronous):
/// publishes a probe event of its own until the probe arrives. A count of
/// the channel's subscribers would not do: another test's subscriber counts
/// too. Later copies of the probe are not among any test's events.
async fn until_subscribed(bus: &RedisPubSubEventBus, subscription: &mut RedisSubscription) {
    let probe = stored(1).await.remove(0);
    for _ in 0..200 {
        bus.publish(&probe).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, subscription.recv()).await {
            if event == probe {
                return;
            }
        }
    }
    panic!("the subscription never received its probe");
}

#[tokio::test]
async fn published_envelopes_reach_a_live_subscriber_intact() {
    let bus = RedisPubSubEventBus::new(&url()).unwrap();
    let mut subscription = bus
        .subscribe(FeedPosition::default(), None)
        .await
        .expect("a Redis at FORGEERP_REDIS_URL: run scripts/setup.sh");
    until_subscribed(&bus, &mut subscription).await;
    let events = stored(3).await;
    for event in &events {
        bus.publish(event).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        match next(&mut subscription).await {
            Some(event) if events.contains(&event) => got.push(event),
            Some(_) => {} // another test's event on the shared channel
            None => panic!("only {} of 3 arrived", got.len()),
        }
    }
    assert_eq!(got, events);
}

#[tokio::test]
async fn a_subscriber_that_was_offline_misses_what_was_published_meanwhile() {
    let bus = RedisPubSubEventBus::new(&url()).unwrap();
    let events = stored(2).await;
    bus.publish(&events[0]).await.unwrap(); // nobody of ours is listening: lost for us
    let mut subscription = bus.subscribe(FeedPosition::default(), None).await.unwrap();
    until_subscribed(&bus, &mut subscription).await;
    bus.publish(&events[1]).await.unwrap();
    let mut got = Vec::new();
    while let Some(event) = next(&mut subscription).await {
        if events.contains(&event) {
            got.push(event);
        }
    }
    assert_eq!(
        got,
        vec![events[1].clone()],
        "not durable: the first event is gone for this subscriber"
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_panic() {
    let bus = RedisPubSubEventBus::new("redis://127.0.0.1:1").unwrap();
    assert!(bus.publish(&stored(1).await[0]).await.is_err());
    assert!(bus.subscribe(FeedPosition::default(), None).await.is_err());
    assert!(RedisPubSubEventBus::new("not a url").is_err());
}

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

/// Waits until Redis counts `n` subscribers of the channel (SUBSCRIBE is asynchronous).
async fn subscribers(n: i64) {
    let client = redis::Client::open(url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    for _ in 0..100 {
        let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("forgeerp_events")
            .query_async(&mut connection)
            .await
            .unwrap();
        if counts[0].1 >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} subscribers");
}

#[tokio::test]
async fn published_envelopes_reach_a_live_subscriber_intact() {
    let bus = RedisPubSubEventBus::new(&url()).unwrap();
    let mut subscription = bus
        .subscribe(FeedPosition::default(), None)
        .await
        .expect("a Redis at FORGEERP_REDIS_URL: run scripts/setup.sh");
    subscribers(1).await;
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
    subscribers(1).await;
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

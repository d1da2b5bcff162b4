//! The Postgres bus: wake-ups by LISTEN/NOTIFY, events from the feed,
//! resumable from a checkpoint, surviving a lost connection.

mod common;

use forgeerp_infra::event_bus::pg_notify::SubscriptionConfig;
use forgeerp_infra::event_bus::Subscription;
use forgeerp_infra::{
    AggregateId, EventBus, EventStore, ExpectedVersion, FeedPosition, PgNotifyEventBus,
    PgNotifySubscription, StoredEvent, TenantId, UncommittedEvent,
};
use serde_json::json;
use std::time::Duration;

fn events(tenant: TenantId, item: AggregateId, n: i64) -> Vec<UncommittedEvent> {
    (1..=n)
        .map(|i| {
            UncommittedEvent::new(
                tenant,
                "inventory.item",
                item,
                "StockReceived",
                json!({"quantity": i}),
            )
        })
        .collect()
}

/// Receives `n` events, failing after `limit`.
async fn receive(
    subscription: &mut PgNotifySubscription,
    n: usize,
    limit: Duration,
) -> Vec<StoredEvent> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(limit, subscription.recv()).await {
            Ok(Some(event)) => got.push(event),
            Ok(None) => panic!("subscription ended after {} of {n} events", got.len()),
            Err(_) => panic!("only {} of {n} events within {limit:?}", got.len()),
        }
    }
    got
}

/// A bus whose fallback poll is too slow to pass the tests alone: wake-ups must do it.
async fn bus() -> PgNotifyEventBus {
    PgNotifyEventBus::new(common::database_url().await).with_config(SubscriptionConfig {
        poll_interval: Duration::from_secs(30),
        ..SubscriptionConfig::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_events_arrive_in_feed_order_woken_by_notify() {
    let store = common::pg_store().await;
    let tenant = TenantId::random();
    let mut subscription = bus().await.follow(FeedPosition::default(), Some(tenant));
    let mut written = Vec::new();
    for _ in 0..3 {
        written.extend(
            store
                .append(
                    events(tenant, AggregateId::random(), 2),
                    ExpectedVersion::Any,
                )
                .await
                .unwrap(),
        );
    }
    let got = receive(&mut subscription, 6, Duration::from_secs(2)).await;
    assert_eq!(got, written);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), subscription.recv())
            .await
            .is_err(),
        "nothing more"
    );
    subscription.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_subscription_sees_only_that_tenant() {
    let store = common::pg_store().await;
    let (mine, theirs) = (TenantId::random(), TenantId::random());
    let mut subscription = bus().await.follow(FeedPosition::default(), Some(mine));
    store
        .append(
            events(theirs, AggregateId::random(), 3),
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    let written = store
        .append(events(mine, AggregateId::random(), 1), ExpectedVersion::Any)
        .await
        .unwrap();
    let got = receive(&mut subscription, 1, Duration::from_secs(2)).await;
    assert_eq!(got, written);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), subscription.recv())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_resumes_after_its_checkpoint() {
    let store = common::pg_store().await;
    let tenant = TenantId::random();
    let first = store
        .append(
            events(tenant, AggregateId::random(), 2),
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    let second = store
        .append(
            events(tenant, AggregateId::random(), 2),
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    let mut subscription = bus().await.follow(first[1].position(), Some(tenant));
    assert_eq!(
        receive(&mut subscription, 2, Duration::from_secs(2)).await,
        second
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_reconnected_and_nothing_is_missed_or_repeated() {
    let url = common::fresh_database("_bus").await;
    let store = forgeerp_infra::PgEventStore::connect(&url, 2).unwrap();
    let tenant = TenantId::random();
    let bus = PgNotifyEventBus::new(url.clone()).with_config(SubscriptionConfig {
        poll_interval: Duration::from_secs(30),
        ..SubscriptionConfig::default()
    });
    let mut subscription = bus.follow(FeedPosition::default(), Some(tenant));
    let mut written = store
        .append(
            events(tenant, AggregateId::random(), 2),
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    let mut got = receive(&mut subscription, 2, Duration::from_secs(2)).await;

    // Kill the subscription's connection, append while it is away, twice.
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    for _ in 0..2 {
        let killed = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE application_name = 'forgeerp-subscription' AND datname = current_database()",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(killed.len(), 1, "one subscription connection to kill");
        written.extend(
            store
                .append(
                    events(tenant, AggregateId::random(), 3),
                    ExpectedVersion::Any,
                )
                .await
                .unwrap(),
        );
        got.extend(receive(&mut subscription, 3, Duration::from_secs(5)).await);
        // Wait until it is connected again before the next kill.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let back = admin
                .query(
                    "SELECT 1 FROM pg_stat_activity WHERE application_name = 'forgeerp-subscription' AND datname = current_database()",
                    &[],
                )
                .await
                .unwrap();
            if !back.is_empty() || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(got, written, "every event once, in order");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), subscription.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn publishing_to_the_postgres_bus_does_nothing_twice() {
    // The database notifies at commit; publish has nothing left to do.
    let bus = PgNotifyEventBus::new("host=127.0.0.1 port=1");
    let store = forgeerp_infra::InMemoryEventStore::new();
    let stored = store
        .append(
            events(TenantId::random(), AggregateId::random(), 1),
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    bus.publish(&stored[0]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_held_back_by_an_older_transaction_arrives_when_it_ends() {
    let store = common::pg_store().await;
    let tenant = TenantId::random();
    let mut subscription = bus().await.follow(FeedPosition::default(), Some(tenant));

    // An older write transaction (another tenant) is open when our event commits.
    let (client, connection) =
        tokio_postgres::connect(&common::database_url().await, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    client.batch_execute("BEGIN").await.unwrap();
    client
        .query(
            "SELECT * FROM forgeerp.append(gen_random_uuid(), 't', gen_random_uuid(), NULL, '[{\"event_type\": \"A\", \"payload\": {}}]')",
            &[],
        )
        .await
        .unwrap();
    let written = store
        .append(
            events(tenant, AggregateId::random(), 1),
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    // The wake-up comes, but the feed holds the event back.
    assert!(
        tokio::time::timeout(Duration::from_millis(150), subscription.recv())
            .await
            .is_err()
    );
    client.batch_execute("COMMIT").await.unwrap();
    // No wake-up for our tenant follows; the re-reads after the first one find it.
    assert_eq!(
        receive(&mut subscription, 1, Duration::from_secs(2)).await,
        written
    );
}

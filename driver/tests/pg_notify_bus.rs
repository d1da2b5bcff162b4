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

/// "Nothing more arrives", without a time window: appends a marker event of
/// `tenant` and returns what the subscription delivers before it. The
/// marker comes after everything appended before it in feed order, so an
/// extra or repeated event would come first. (A window of silence proves
/// nothing when another session holds the feed back.)
async fn before_marker(
    store: &impl EventStore,
    subscription: &mut PgNotifySubscription,
    tenant: TenantId,
) -> Vec<StoredEvent> {
    let marker = store
        .append(
            events(tenant, AggregateId::random(), 1),
            ExpectedVersion::Any,
        )
        .await
        .unwrap()
        .remove(0);
    let mut before = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), subscription.recv()).await {
            Ok(Some(event)) if event.event_id == marker.event_id => return before,
            Ok(Some(event)) => before.push(event),
            Ok(None) => panic!("the subscription ended before the marker"),
            Err(_) => panic!("the marker never arrived"),
        }
    }
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
    assert_eq!(
        before_marker(&store, &mut subscription, tenant).await,
        [],
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
    assert_eq!(
        before_marker(&store, &mut subscription, mine).await,
        [],
        "nothing of the other tenant"
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
    assert_eq!(
        before_marker(&store, &mut subscription, tenant).await,
        [],
        "nothing repeated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_to_the_postgres_bus_does_nothing_twice() {
    // The database notifies at commit; publish has nothing left to do. It
    // does not even connect: the bus's server is unreachable, yet publishing
    // the same event twice succeeds twice.
    let unreachable = PgNotifyEventBus::new("host=127.0.0.1 port=1");
    let store = forgeerp_infra::InMemoryEventStore::new();
    let stored = store
        .append(
            events(TenantId::random(), AggregateId::random(), 1),
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    unreachable.publish(&stored[0]).await.unwrap();
    unreachable.publish(&stored[0]).await.unwrap();

    // And on a real bus, an event appended and then published twice more
    // reaches a subscriber once.
    let store = common::pg_store().await;
    let bus = bus().await;
    let tenant = TenantId::random();
    let mut subscription = bus.follow(FeedPosition::default(), Some(tenant));
    let written = store
        .append(
            events(tenant, AggregateId::random(), 1),
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    bus.publish(&written[0]).await.unwrap();
    bus.publish(&written[0]).await.unwrap();
    assert_eq!(
        receive(&mut subscription, 1, Duration::from_secs(2)).await,
        written
    );
    assert_eq!(
        before_marker(&store, &mut subscription, tenant).await,
        [],
        "once"
    );
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

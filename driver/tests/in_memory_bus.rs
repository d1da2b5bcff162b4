//! The in-process bus: live fan-out with an optional tenant filter.

use forgeerp_infra::event_bus::Subscription;
use forgeerp_infra::{
    AggregateId, EventBus, EventStore, ExpectedVersion, FeedPosition, InMemoryEventBus,
    InMemoryEventStore, TenantId, UncommittedEvent,
};
use serde_json::json;

#[tokio::test]
async fn subscribers_get_what_is_published_after_they_subscribed_of_their_tenant() {
    let store = InMemoryEventStore::new();
    let (mine, theirs) = (TenantId::random(), TenantId::random());
    let append = |tenant| {
        let store = &store;
        async move {
            store
                .append(
                    vec![UncommittedEvent::new(
                        tenant,
                        "t",
                        AggregateId::random(),
                        "A",
                        json!({}),
                    )],
                    ExpectedVersion::Any,
                )
                .await
                .unwrap()
                .remove(0)
        }
    };
    let bus = InMemoryEventBus::new(16);
    let before = append(mine).await;
    bus.publish(&before).await.unwrap(); // nobody subscribed yet
    let mut everything = bus.subscribe(FeedPosition::default(), None).await.unwrap();
    let mut only_mine = bus
        .subscribe(FeedPosition::default(), Some(mine))
        .await
        .unwrap();
    let (a, b) = (append(theirs).await, append(mine).await);
    bus.publish(&a).await.unwrap();
    bus.publish(&b).await.unwrap();
    assert_eq!(everything.recv().await.unwrap(), a);
    assert_eq!(everything.try_recv().unwrap(), b);
    assert_eq!(only_mine.recv().await.unwrap(), b);
    assert!(only_mine.try_recv().is_none());
    assert!(everything.try_recv().is_none());
}

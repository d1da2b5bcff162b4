//! What crypto-shredding costs on the paths it touches: an append whose
//! event has personal fields (sealed first: a key read, or a key made, and
//! AES-256-GCM) against the same append unsealed, and a stream load whose
//! events carry sealed fields (opened: one key read and a decryption per
//! field) against the same load unopened. Sequential, one client, against
//! the private cluster:
//!
//! ```sh
//! bash scripts/setup.sh && cargo bench -p forgeerp-infra --bench personal_data
//! ```
//!
//! Prints a Markdown table; `bench/README.md` keeps the figures.

use forgeerp_infra::{
    AggregateId, EventStore, ExpectedVersion, MasterKey, PersonalData, PersonalDataPolicy,
    PgEventStore, PgKeyStore, TenantId, UncommittedEvent,
};
use forgeerp_test_fixtures::{fresh_database, Install};
use std::time::{Duration, Instant};

const APPENDS: usize = 2_000;
const LOADS: usize = 500;
const STREAM: usize = 100;
const ROUNDS: usize = 3;

fn registered(tenant: TenantId, stream: AggregateId, customer: &str) -> UncommittedEvent {
    UncommittedEvent::new(
        tenant,
        "Customer",
        stream,
        "CustomerRegistered",
        serde_json::json!({
            "customer_id": customer,
            "name": "Jane Doe",
            "street": "1 High Street",
            "iban": "GB33BUKB20201555555555",
            "tier": "gold"
        }),
    )
}

/// Mean time of `APPENDS` single-event appends to new streams, sealed by
/// `personal` when given, each subject from `subject(i)`.
async fn appends(
    store: &PgEventStore,
    personal: Option<&PersonalData>,
    tenant: TenantId,
    subject: impl Fn(usize) -> String,
) -> Duration {
    let started = Instant::now();
    for i in 0..APPENDS {
        let mut events = vec![registered(tenant, AggregateId::random(), &subject(i))];
        if let Some(personal) = personal {
            personal.seal(&mut events).await.unwrap();
        }
        store
            .append(events, ExpectedVersion::NoStream)
            .await
            .unwrap();
    }
    started.elapsed() / APPENDS as u32
}

/// Mean time of `LOADS` loads of `stream`, opened by `personal` when given.
async fn loads(
    store: &PgEventStore,
    personal: Option<&PersonalData>,
    tenant: TenantId,
    stream: AggregateId,
) -> Duration {
    let started = Instant::now();
    for _ in 0..LOADS {
        let events = store.load_stream(tenant, stream).await.unwrap();
        let events = match personal {
            Some(personal) => personal.open(events).await.unwrap(),
            None => events,
        };
        assert_eq!(events.len(), STREAM);
    }
    started.elapsed() / LOADS as u32
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = fresh_database("forgeerp_bench_personal_data", Install::Current).await;
    let store = PgEventStore::connect(&url, 4).unwrap();
    forgeerp_infra::migrate(store.pool()).await.unwrap();
    let policy = PersonalDataPolicy::new().declare(
        "CustomerRegistered",
        "customer_id",
        &["name", "street", "iban"],
    );
    let personal = PersonalData::new(
        policy,
        PgKeyStore::new(store.pool().clone()),
        MasterKey::generate().0,
    );
    let tenant = TenantId::random();

    // A stream of 100 events of one subject, sealed, and the same unsealed.
    let sealed_stream = AggregateId::random();
    let mut events: Vec<_> = (0..STREAM)
        .map(|_| registered(tenant, sealed_stream, "c-load"))
        .collect();
    personal.seal(&mut events).await.unwrap();
    store
        .append(events, ExpectedVersion::NoStream)
        .await
        .unwrap();
    let plain_stream = AggregateId::random();
    let events: Vec<_> = (0..STREAM)
        .map(|_| registered(tenant, plain_stream, "c-load"))
        .collect();
    store
        .append(events, ExpectedVersion::NoStream)
        .await
        .unwrap();

    println!("| measurement | per call | ratio |");
    println!("|---|---:|---:|");
    for round in 0..ROUNDS {
        let plain = appends(&store, None, tenant, |i| format!("p-{round}-{i}")).await;
        let known = appends(&store, Some(&personal), tenant, |_| "c-known".to_string()).await;
        let new = appends(&store, Some(&personal), tenant, |i| {
            format!("n-{round}-{i}")
        })
        .await;
        let load_plain = loads(&store, None, tenant, plain_stream).await;
        let load_opened = loads(&store, Some(&personal), tenant, sealed_stream).await;
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        println!("| round {round}: append, no personal data | {plain:.2?} | 1.00× |");
        println!("| round {round}: append, 3 fields sealed, subject's key exists | {known:.2?} | {:.2}× |", ratio(known, plain));
        println!("| round {round}: append, 3 fields sealed, new subject (key made) | {new:.2?} | {:.2}× |", ratio(new, plain));
        println!("| round {round}: load of {STREAM} events, unsealed | {load_plain:.2?} | 1.00× |");
        println!("| round {round}: load of {STREAM} events, 300 fields opened | {load_opened:.2?} | {:.2}× |", ratio(load_opened, load_plain));
    }
}

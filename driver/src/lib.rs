//! `forgeerp-infra`: the driver of the forgeerp event store.
//!
//! Domain modules ([`ids`], [`expected_version`], [`event`], [`aggregate`],
//! and in the [`inventory`] tree the aggregate and [`inventory::anomaly`])
//! are pure and import nothing from the infrastructure modules
//! ([`event_store`], [`event_bus`], [`command_dispatcher`], [`read_model`],
//! [`workers`], and the inventory tree's read side and AI job). The rules
//! the store shares with the extension (batch validation, expected versions,
//! SQLSTATEs, limits, names) are the crate [`forgeerp_contract`], re-exported
//! here as [`contract`].
//!
//! Everything about inventory is in [`inventory`]; [`anomaly`],
//! [`projections::inventory_stock`], [`ai::inventory_anomaly_runner`] and
//! [`ai::insight_sink`] are its old paths, kept as re-exports.
//!
//! ```no_run
//! use forgeerp_infra::{CommandDispatcher, PgEventStore, TenantId, AggregateId, RetryPolicy};
//! use forgeerp_infra::inventory::{InventoryCommand, InventoryItem};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PgEventStore::connect("postgresql://postgres@127.0.0.1:28815/forgeerp", 8)?;
//! let dispatcher = CommandDispatcher::new(store).with_retry(RetryPolicy::attempts(3));
//! let (tenant, item) = (TenantId::random(), AggregateId::random());
//! dispatcher
//!     .dispatch::<InventoryItem>(tenant, item, &InventoryCommand::CreateItem { sku: "BOLT-M8".into(), name: "M8 bolt".into() })
//!     .await?;
//! let done = dispatcher.dispatch::<InventoryItem>(tenant, item, &InventoryCommand::ReceiveStock { quantity: 500 }).await?;
//! assert_eq!(done.state.on_hand, 500);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub use forgeerp_contract as contract;

pub mod aggregate;
pub mod ai;
pub mod anomaly;
pub mod command_dispatcher;
pub mod connection;
pub mod db_error;
pub mod event;
pub mod event_bus;
pub mod event_store;
pub mod expected_version;
pub mod ids;
pub mod inventory;
pub mod migrations;
pub mod offboarding;
pub mod personal_data;
pub mod projections;
pub mod read_model;
pub mod sharding;
pub mod snapshots;
pub(crate) mod tenant_binding;
pub mod upcasting;
pub mod workers;

pub use aggregate::Aggregate;
pub use command_dispatcher::{CommandDispatcher, DispatchError, Dispatched, RetryPolicy};
pub use connection::{ConnectError, ConnectionError, ConnectionSettings, SslMode};
pub use db_error::DbFailure;
pub use event::{DomainEvent, EventEnvelope, FeedPosition, StoredEvent, UncommittedEvent};
pub use event_bus::in_memory::InMemoryEventBus;
pub use event_bus::pg_notify::{Link, PgNotifyEventBus, PgNotifySubscription, SubscriptionConfig};
pub use event_bus::{BusError, EventBus};
pub use event_store::in_memory::InMemoryEventStore;
pub use event_store::postgres::PgEventStore;
pub use event_store::publishing::PublishingEventStore;
pub use event_store::{EventStore, EventStoreError};
pub use expected_version::ExpectedVersion;
pub use ids::{AggregateId, EventId, InvalidId, TenantId};
pub use inventory::anomaly::{AnomalyDetector, InventorySnapshot};
pub use inventory::anomaly_runner::{
    AnomalyTrigger, InventoryAnomalyRunner, InventoryAnomalyRunnerHandle, RunnerConfig,
    RunnerStats, TriggeringProjection,
};
pub use inventory::insight_sink::{AiInsight, AiInsightSink, InMemoryInsightSink, PgInsightSink};
pub use inventory::stock_projection::{InventoryStockProjection, StockLevel, StockPoint};
pub use inventory::stock_reader::InventoryStockReader;
pub use migrations::{migrate, Migration, MigrationError, MigrationReport};
pub use offboarding::{purge_tenant, PurgeError, TenantPurge};
pub use personal_data::{
    Forgotten, InMemoryKeyStore, KeyStore, MasterKey, PersonalData, PersonalDataError,
    PersonalDataPolicy, PgKeyStore, Rotation, FORGOTTEN,
};
pub use read_model::tenant_store::{
    InMemoryTenantStore, PgTenantStore, ReadModelError, TenantStore,
};
pub use read_model::ReadModelReader;
pub use sharding::{
    ShardCursor, ShardedEventBus, ShardedEventStore, ShardedSubscription, ShardedWorkers,
};
pub use snapshots::{
    InMemorySnapshotStore, NoSnapshots, PgSnapshotStore, Snapshot, SnapshotPolicy, SnapshotStore,
};
pub use upcasting::{UpcastError, Upcasters};
pub use workers::projection_worker::{
    Partition, PgProjection, ProjectionError, ProjectionWorker, WorkerConfig, WorkerHandle,
};

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod boundary {
    /// `(file, source)` of a file under `src/`.
    macro_rules! source {
        ($file:literal) => {
            ($file, include_str!($file))
        };
    }

    /// The files of the domain modules and their source: every pure file.
    const DOMAIN: [(&str, &str); 14] = [
        source!("ids.rs"),
        source!("expected_version.rs"),
        source!("event.rs"),
        source!("aggregate.rs"),
        source!("upcasting.rs"),
        source!("inventory/aggregate.rs"),
        source!("inventory/anomaly/mod.rs"),
        source!("inventory/anomaly/detector.rs"),
        source!("inventory/anomaly/baseline.rs"),
        source!("inventory/anomaly/evaluation.rs"),
        source!("inventory/anomaly/synthetic.rs"),
        source!("inventory/anomaly/realistic.rs"),
        source!("inventory/anomaly/rng.rs"),
        // The old path's re-exports.
        source!("anomaly.rs"),
    ];

    #[test]
    fn domain_modules_import_no_infrastructure() {
        for (module, source) in DOMAIN {
            for infrastructure in [
                "crate::event_store",
                "crate::event_bus",
                "crate::command_dispatcher",
                "crate::read_model",
                "crate::projections",
                "crate::workers",
                "crate::ai",
                "tokio",
                "deadpool",
                "tracing",
                // The inventory tree's infrastructure files.
                "stock_projection",
                "stock_reader",
                "anomaly_runner",
                "insight_sink",
            ] {
                assert!(
                    !source.contains(infrastructure),
                    "domain module {module} uses {infrastructure}"
                );
            }
        }
    }
}

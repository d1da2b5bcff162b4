//! Inventory, in one module tree: its domain, its read side and its AI job.
//!
//! Pure domain (no I/O; imports no infrastructure, which the `boundary` test
//! in `lib.rs` checks file by file):
//! - the `InventoryItem` aggregate, one per stock-keeping unit, with its
//!   commands, events and errors (`aggregate.rs`, re-exported here);
//! - [`anomaly`]: the anomaly detector and the snapshots it reads, the rolling
//!   z-score it is measured against, the evaluation and the synthetic data.
//!
//! Infrastructure (PostgreSQL read models and a background task; they may
//! import the infrastructure modules, the pure files never import them):
//! - [`stock_projection`]: `InventoryStockProjection`, stock and stock
//!   history per item, kept from the feed;
//! - [`stock_reader`]: `InventoryStockReader`, the snapshots AI jobs read;
//! - [`anomaly_runner`]: `InventoryAnomalyRunner`, the detector on a schedule
//!   and on the projection's triggers;
//! - [`insight_sink`]: where the runner's findings go.
//!
//! The SQL they run is in `driver/sql/inventory/`, one statement per file;
//! the tables it reads and writes are made by the released migrations in
//! `driver/sql/migrations/`. The old paths (`anomaly`,
//! `projections::inventory_stock`, `ai::inventory_anomaly_runner`,
//! `ai::insight_sink`) re-export from here.

mod aggregate;
pub mod anomaly;
pub mod anomaly_runner;
pub mod insight_sink;
pub mod stock_projection;
pub mod stock_reader;

pub use aggregate::{upcasters, InventoryCommand, InventoryError, InventoryEvent, InventoryItem};

/// The inventory's personal data: the name of an item made to order
/// ([`InventoryEvent::CustomItemCreated`]) belongs to its customer. Give it
/// to [`crate::personal_data::PersonalData`] for the dispatcher, the
/// projection workers and the CLI.
pub fn personal_data_policy() -> crate::personal_data::PersonalDataPolicy {
    crate::personal_data::PersonalDataPolicy::new().declare(
        "CustomItemCreated",
        "customer_id",
        &["name"],
    )
}

//! The inventory domain: one `InventoryItem` aggregate per stock-keeping unit.
//!
//! The aggregate (its commands, events and errors) is re-exported here from
//! the private `aggregate` file, so `inventory::InventoryItem` is its path.

mod aggregate;
pub mod anomaly;
pub mod anomaly_runner;
pub mod insight_sink;
pub mod stock_projection;
pub mod stock_reader;

pub use aggregate::{InventoryCommand, InventoryError, InventoryEvent, InventoryItem};

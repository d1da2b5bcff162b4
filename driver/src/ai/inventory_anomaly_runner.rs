//! The old path of [`crate::inventory::anomaly_runner`], kept for users: re-exports only.

pub use crate::inventory::anomaly_runner::{
    AnomalyTrigger, InventoryAnomalyRunner, InventoryAnomalyRunnerHandle, RunnerConfig,
    RunnerStats, TriggeringProjection,
};

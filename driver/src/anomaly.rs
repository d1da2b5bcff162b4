//! The old path of [`crate::inventory::anomaly`], kept for users: re-exports only.

pub use crate::inventory::anomaly::{
    evaluate, realistic, rolling_zscore, synthetic, Anomaly, AnomalyDetector, AnomalyKind,
    DetectorConfig, Evaluation, InventorySnapshot, ItemSnapshot, Severity, TrendPoint,
};

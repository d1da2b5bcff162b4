//! Inventory anomaly detection: a deterministic, robust detector of unusual
//! stock movements, on the snapshots AI jobs read (never the event store).
//!
//! An item's `historical_trend` is its stock level after each event. The
//! detector turns it into *movements* (the change of units on hand from one
//! point to the next; reservations move nothing and are skipped) and looks at
//! outflows (units leaving: shipments, losses) and inflows (receipts) apart,
//! because they live on different scales: a weekly restock of 300 is not an
//! outlier among daily shipments of 10.
//!
//! Per direction:
//!
//! 1. **Level shifts.** At each movement, the median of the next
//!    [`DetectorConfig::shift_window`] movements is compared with the median
//!    of up to four windows before it, in units of the earlier movements'
//!    robust spread; a sustained change beyond
//!    [`DetectorConfig::shift_threshold`] is a [`AnomalyKind::LevelShift`],
//!    and the series is cut there so that the new level is not reported as a
//!    run of spikes.
//! 2. **Spikes.** Within each segment, every movement is scored against a
//!    robust baseline: the median (per weekday when the segment spans at
//!    least three weeks, which absorbs weekly seasonality), and a scale of
//!    1.4826 × MAD (10% of the median where the MAD is 0), at least one
//!    unit and 10% of the median. A score
//!    above [`DetectorConfig::spike_threshold`] is an
//!    [`AnomalyKind::UnusualOutflow`] (theft-like drops, shipping mistakes)
//!    or an [`AnomalyKind::UnusualInflow`] (bulk receiving mistakes).
//!
//! And over the whole trend:
//!
//! 3. **Counters that stopped.** A run of days with stock on hand and no
//!    outflow is an [`AnomalyKind::NoMovement`] once the four weeks before it
//!    make it improbable: with `q` the share of those days without an
//!    outflow (at most a half), once `q` to the run's length falls below
//!    [`DetectorConfig::quiet_probability`] and the run reaches
//!    [`DetectorConfig::quiet_days`]. An item without stock is out of stock,
//!    not stuck; an intermittent one never qualifies.
//!
//! Median and MAD ignore the outliers they are looking for (a plain z-score's
//! mean and standard deviation are dragged by them). The MAD is 0 for
//! constant movements (ten units, every day): a floor of one unit and 10% of
//! the median keeps one odd movement from scoring infinity, and a handful of
//! near-identical restocks from flagging one that is a third larger. Sparse items simply have few movements (quiet days are
//! not movements); below [`DetectorConfig::min_movements`] a direction is not
//! judged at all.
//!
//! Measured on [`synthetic`] data (1,000 items over 120 days: weekly
//! seasonality, noise, sparse and constant items; 900 injected theft-like
//! drops, bulk receipts, bulk shipments and level shifts) with [`evaluate`],
//! against a plain rolling z-score on the same movements
//! (`cargo run --release -p forgeerp-infra --example anomaly_eval`):
//!
//! | detector | precision | recall | F1 |
//! |---|---:|---:|---:|
//! | this one (default [`DetectorConfig`]) | 0.90 | 0.93 | 0.92 |
//! | rolling z-score, 14 movements, z > 3 | 0.63 | 0.50 | 0.56 |
//! | rolling z-score, 28 movements, z > 3 | 0.63 | 0.48 | 0.54 |
//!
//! See `bench/README.md` for the set-up and what each one misses.
//!
//! This file holds the snapshot types the detector reads; the detector is in
//! `detector.rs`, the rolling z-score it is measured against in
//! `baseline.rs`, [`evaluate`] in `evaluation.rs` and the generator in
//! `synthetic.rs`, all re-exported here.

mod baseline;
mod detector;
mod evaluation;
pub mod realistic;
mod rng;
pub mod synthetic;

pub use baseline::rolling_zscore;
pub use detector::{Anomaly, AnomalyDetector, AnomalyKind, DetectorConfig, Severity};
pub use evaluation::{evaluate, Evaluation};

use crate::ids::{AggregateId, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The stock level of an item after one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// Units on hand after it.
    pub on_hand: i64,
    /// Units reserved after it.
    pub reserved: i64,
}

/// One item in an [`InventorySnapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemSnapshot {
    /// The item.
    pub item: AggregateId,
    /// Its SKU.
    pub sku: Option<String>,
    /// Its name.
    pub name: String,
    /// Units on hand now.
    pub on_hand: i64,
    /// Units reserved now.
    pub reserved: i64,
    /// `on_hand - reserved`.
    pub available: i64,
    /// Stock levels over time, oldest first.
    pub historical_trend: Vec<TrendPoint>,
}

/// What an AI job sees of one tenant's inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventorySnapshot {
    /// The tenant.
    pub tenant_id: TenantId,
    /// When the snapshot was read.
    pub taken_at: DateTime<Utc>,
    /// Every item of the tenant.
    pub items: Vec<ItemSnapshot>,
}

//! The plain rolling z-score the detector is measured against.

use super::count_model::ln_normal_upper_tail;
use super::detector::Direction;
use super::{Anomaly, TrendPoint};
use crate::ids::AggregateId;

/// The plain baseline the detector is measured against: per direction, each
/// movement's z-score against the mean and standard deviation of the
/// previous `window` movements; flagged above `threshold`.
pub fn rolling_zscore(
    item: AggregateId,
    trend: &[TrendPoint],
    window: usize,
    threshold: f64,
) -> Vec<Anomaly> {
    let mut found = Vec::new();
    for direction in [Direction::Out, Direction::In] {
        let movements = direction.movements(trend);
        for i in window..movements.len() {
            let previous: Vec<f64> = movements[i - window..i].iter().map(|m| m.units).collect();
            let mean = previous.iter().sum::<f64>() / window as f64;
            let sd =
                (previous.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / window as f64).sqrt();
            let z = if sd == 0.0 {
                if movements[i].units == mean {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else {
                (movements[i].units - mean).abs() / sd
            };
            if z > threshold {
                found.push(Anomaly::with_ln_probability(
                    item,
                    direction.spike_kind(),
                    movements[i].at,
                    ln_normal_upper_tail(z),
                    1.0,
                    movements[i].units,
                    mean,
                    format!("z-score {z:.1} against the previous {window}"),
                ));
            }
        }
    }
    found.sort_by_key(|a| a.at);
    found
}

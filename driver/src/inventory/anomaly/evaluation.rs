//! [`evaluate`]: precision and recall of a detector on [`synthetic`] series.

use super::{synthetic, Anomaly, TrendPoint};
use crate::ids::AggregateId;

/// Precision and recall of findings against injected anomalies.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// Findings that match an injected anomaly.
    pub true_positives: usize,
    /// Findings that match none.
    pub false_positives: usize,
    /// Injected anomalies nothing matched.
    pub missed: usize,
}

impl Evaluation {
    /// Share of findings that were real.
    pub fn precision(&self) -> f64 {
        let found = self.true_positives + self.false_positives;
        if found == 0 {
            1.0
        } else {
            self.true_positives as f64 / found as f64
        }
    }

    /// Share of injected anomalies found.
    pub fn recall(&self) -> f64 {
        let injected = self.true_positives + self.missed;
        if injected == 0 {
            1.0
        } else {
            self.true_positives as f64 / injected as f64
        }
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

/// Scores `detect` on `series` synthetic items. A finding matches an
/// injected spike on the same day, or an injected level shift from 3 days
/// before to 10 days after it; findings on the same injected anomaly count
/// once, extra findings of a shift (its first days at the new level) are not
/// counted against the detector.
pub fn evaluate(
    series: &[synthetic::Series],
    detect: impl Fn(AggregateId, &[TrendPoint]) -> Vec<Anomaly>,
) -> Evaluation {
    let mut evaluation = Evaluation::default();
    for s in series {
        let findings = detect(s.item, &s.trend);
        let mut matched = vec![false; s.injected.len()];
        for finding in &findings {
            let day = finding.day();
            let hit = s.injected.iter().position(|inj| match inj.kind {
                synthetic::Injected::LevelShift => {
                    let d = (day - inj.day).num_days();
                    (-3..=10).contains(&d)
                }
                _ => day == inj.day,
            });
            match hit {
                Some(i) if !matched[i] => {
                    matched[i] = true;
                    evaluation.true_positives += 1;
                }
                Some(_) => {}
                None => evaluation.false_positives += 1,
            }
        }
        evaluation.missed += matched.iter().filter(|m| !**m).count();
    }
    evaluation
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::anomaly::{rolling_zscore, AnomalyDetector};

    #[test]
    fn the_detector_beats_a_rolling_zscore_on_synthetic_data() {
        let series = synthetic::generate(7, 300, 120);
        let injected: usize = series.iter().map(|s| s.injected.len()).sum();
        assert!(injected > 150, "the generator injects: {injected}");
        let detector = AnomalyDetector::default();
        let robust = evaluate(&series, |item, trend| detector.detect_item(item, trend));
        if std::env::var("ANOMALY_DEBUG").is_ok() {
            for s in &series {
                let found = detector.detect_item(s.item, &s.trend);
                eprintln!(
                    "injected {:?}\n  found {:?}",
                    s.injected,
                    found
                        .iter()
                        .map(|a| (a.kind, a.day(), a.score as i64))
                        .collect::<Vec<_>>()
                );
            }
        }
        let plain = evaluate(&series, |item, trend| rolling_zscore(item, trend, 14, 3.0));
        assert!(robust.precision() > 0.8, "{robust:?}");
        assert!(robust.recall() > 0.8, "{robust:?}");
        assert!(
            robust.f1() > plain.f1() + 0.1,
            "robust {robust:?} plain {plain:?}"
        );
    }
}

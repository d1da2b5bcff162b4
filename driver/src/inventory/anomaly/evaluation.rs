//! [`evaluate`]: precision and recall of a detector on [`synthetic`] series.

use super::{synthetic, Anomaly, AnomalyKind, TrendPoint};
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

/// Scores `detect` on `series` synthetic items.
///
/// A finding matches an injected anomaly of its kind: an unusual outflow a
/// theft-like drop or a bulk shipment on the same day, an unusual inflow a
/// bulk receipt on the same day, a level shift a level shift from 3 days
/// before to 10 days after it. Each injected anomaly is found once. Further
/// findings of a level shift (its first days at the new level) are not held
/// against the detector; any other finding that matches nothing, or an
/// anomaly already found, is a false positive.
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
            let hit = s.injected.iter().position(|inj| {
                matches_kind(finding.kind, inj.kind)
                    && match inj.kind {
                        synthetic::Injected::LevelShift => {
                            (-3..=10).contains(&(day - inj.day).num_days())
                        }
                        _ => day == inj.day,
                    }
            });
            match hit {
                Some(i) if !matched[i] => {
                    matched[i] = true;
                    evaluation.true_positives += 1;
                }
                Some(i) if s.injected[i].kind == synthetic::Injected::LevelShift => {}
                _ => evaluation.false_positives += 1,
            }
        }
        evaluation.missed += matched.iter().filter(|m| !**m).count();
    }
    evaluation
}

/// Whether a finding of `kind` is what an injection of `injected` should give.
fn matches_kind(kind: AnomalyKind, injected: synthetic::Injected) -> bool {
    use synthetic::Injected;
    matches!(
        (kind, injected),
        (
            AnomalyKind::UnusualOutflow,
            Injected::TheftDrop | Injected::BulkShipment
        ) | (AnomalyKind::UnusualInflow, Injected::BulkReceipt)
            | (AnomalyKind::LevelShift, Injected::LevelShift)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::anomaly::{rolling_zscore, AnomalyDetector};

    /// Hand-made findings against hand-made injections: the kind must match,
    /// a spike is found once, and only a shift may be found again for free.
    #[test]
    fn findings_match_by_kind_and_day_and_count_once() {
        use chrono::{NaiveDate, TimeZone, Utc};
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let series = vec![synthetic::Series {
            item: AggregateId::random(),
            trend: Vec::new(),
            injected: vec![
                synthetic::Injection {
                    kind: synthetic::Injected::TheftDrop,
                    day: day(5),
                },
                synthetic::Injection {
                    kind: synthetic::Injected::LevelShift,
                    day: day(10),
                },
                synthetic::Injection {
                    kind: synthetic::Injected::BulkReceipt,
                    day: day(20),
                },
            ],
        }];
        let finding = |kind, d: u32| Anomaly {
            item: series[0].item,
            kind,
            at: Utc.with_ymd_and_hms(2026, 3, d, 12, 0, 0).unwrap(),
            probability: 1e-9,
            false_alerts_per_year: 1e-7,
            score: 9.0,
            severity: crate::inventory::anomaly::Severity::High,
            observed: 1.0,
            expected: 1.0,
            explanation: String::new(),
        };
        let findings = vec![
            finding(AnomalyKind::UnusualOutflow, 5),  // the drop
            finding(AnomalyKind::UnusualOutflow, 5),  // the drop again: false
            finding(AnomalyKind::LevelShift, 11),     // the shift
            finding(AnomalyKind::LevelShift, 12),     // the shift again: free
            finding(AnomalyKind::UnusualOutflow, 20), // wrong kind on the receipt's day
        ];
        let result = evaluate(&series, |_, _| findings.clone());
        assert_eq!(
            result,
            Evaluation {
                true_positives: 2,
                false_positives: 2,
                missed: 1
            }
        );
    }

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

//! The robust anomaly detector: [`AnomalyDetector`], its [`DetectorConfig`]
//! and findings ([`Anomaly`], [`AnomalyKind`], [`Severity`]), level shifts
//! and spikes against a median/MAD baseline (see the module docs).

use super::{InventorySnapshot, TrendPoint};
use crate::ids::AggregateId;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What kind of unusual movement was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Far more units left than usual at once (theft-like drop, shipping mistake).
    UnusualOutflow,
    /// Far more units arrived than usual at once (bulk receiving mistake).
    UnusualInflow,
    /// The usual size of outflows or inflows changed and stayed changed.
    LevelShift,
    /// An item that had an outflow on nearly every day shows none for many
    /// days while it has stock: a counter that stopped (phantom stock).
    NoMovement,
}

impl AnomalyKind {
    /// The stable name stored with insights.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::UnusualOutflow => "unusual_outflow",
            AnomalyKind::UnusualInflow => "unusual_inflow",
            AnomalyKind::LevelShift => "level_shift",
            AnomalyKind::NoMovement => "no_movement",
        }
    }
}

/// How far out of the ordinary a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Likely wrong.
    Medium,
    /// Almost certainly wrong.
    High,
}

impl Severity {
    /// The stable name stored with insights.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    pub(super) fn of_score(score: f64) -> Self {
        if score >= 12.0 {
            Severity::High
        } else if score >= 6.0 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unusual movement of one item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The item.
    pub item: AggregateId,
    /// What was found.
    pub kind: AnomalyKind,
    /// When: the movement's time (for a shift, the first movement at the new level).
    pub at: DateTime<Utc>,
    /// How far out, in robust standard deviations.
    pub score: f64,
    /// Severity derived from the score.
    pub severity: Severity,
    /// Units moved (for a shift: the median movement after it).
    pub observed: f64,
    /// Units expected (for a shift: the median movement before it).
    pub expected: f64,
    /// The finding in words, with the numbers behind it.
    pub explanation: String,
}

impl Anomaly {
    /// The day of the finding (UTC).
    pub fn day(&self) -> NaiveDate {
        self.at.date_naive()
    }
}

/// The detector's knobs; the defaults are what `evaluate` measured.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Fewest movements in a direction (or segment) before it is judged.
    pub min_movements: usize,
    /// Robust score above which a single movement is unusual.
    pub spike_threshold: f64,
    /// Movements after a candidate shift whose median is compared.
    pub shift_window: usize,
    /// Score (in standard errors of that median) above which a shift is reported.
    pub shift_threshold: f64,
    /// Smallest relative change of the median that counts as a shift.
    pub shift_min_ratio: f64,
    /// Fewest days with stock and no outflow that make a
    /// [`AnomalyKind::NoMovement`].
    pub quiet_days: i64,
    /// How improbable the quiet run must be, given the share of days
    /// without an outflow in the four weeks before it (each day taken as
    /// independent): the run is reported once that share raised to its
    /// length falls below this.
    pub quiet_probability: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            min_movements: 5,
            spike_threshold: 4.5,
            shift_window: 7,
            shift_threshold: 6.0,
            shift_min_ratio: 0.5,
            quiet_days: 7,
            quiet_probability: 1e-4,
        }
    }
}

/// The robust detector. Deterministic: same snapshot, same findings.
#[derive(Clone, Debug, Default)]
pub struct AnomalyDetector {
    config: DetectorConfig,
}

/// One movement of one direction.
#[derive(Clone, Copy, Debug)]
pub(super) struct Movement {
    pub(super) at: DateTime<Utc>,
    pub(super) units: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Out,
    In,
}

impl Direction {
    /// The movements of `trend` in this direction, sizes as positive units.
    pub(super) fn movements(self, trend: &[TrendPoint]) -> Vec<Movement> {
        trend
            .windows(2)
            .filter_map(|pair| {
                let delta = pair[1].on_hand.saturating_sub(pair[0].on_hand);
                let keep = match self {
                    Direction::Out => delta < 0,
                    Direction::In => delta > 0,
                };
                keep.then_some(Movement {
                    at: pair[1].at,
                    units: delta.unsigned_abs() as f64,
                })
            })
            .collect()
    }

    /// What a single unusual movement in this direction is.
    pub(super) fn spike_kind(self) -> AnomalyKind {
        match self {
            Direction::Out => AnomalyKind::UnusualOutflow,
            Direction::In => AnomalyKind::UnusualInflow,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Direction::Out => "outflow",
            Direction::In => "inflow",
        }
    }
}

impl AnomalyDetector {
    /// A detector with `config`.
    pub fn new(config: DetectorConfig) -> Self {
        AnomalyDetector { config }
    }

    /// Every finding for every item of `snapshot`, most severe first.
    pub fn detect(&self, snapshot: &InventorySnapshot) -> Vec<Anomaly> {
        let mut found: Vec<Anomaly> = snapshot
            .items
            .iter()
            .flat_map(|item| self.detect_item(item.item, &item.historical_trend))
            .collect();
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        found
    }

    /// The findings for one item's trend, oldest first.
    pub fn detect_item(&self, item: AggregateId, trend: &[TrendPoint]) -> Vec<Anomaly> {
        let mut found = Vec::new();
        for direction in [Direction::Out, Direction::In] {
            found.extend(self.detect_direction(item, direction, &direction.movements(trend)));
        }
        found.extend(self.detect_no_movement(item, trend));
        found.sort_by_key(|a| a.at);
        found
    }

    /// A run of days with stock on hand and no outflow that the four weeks
    /// before it make improbable: with `q` the share of those 28 days that
    /// had no outflow (at most one half: an intermittent item never
    /// qualifies), a run of `n` days is reported once `q^n` falls below
    /// `quiet_probability` and `n` reaches `quiet_days`, on that day. An
    /// item without stock is out of stock, not stuck. The run is measured up
    /// to the last point of the trend.
    fn detect_no_movement(&self, item: AggregateId, trend: &[TrendPoint]) -> Vec<Anomaly> {
        let quiet = self.config.quiet_days.max(1);
        // Days with an outflow, and the stock at the end of each day seen.
        let mut outflow_days = std::collections::BTreeSet::new();
        for pair in trend.windows(2) {
            if pair[1].on_hand < pair[0].on_hand {
                outflow_days.insert(pair[1].at.date_naive());
            }
        }
        let mut found = Vec::new();
        let days: Vec<chrono::NaiveDate> = outflow_days.iter().copied().collect();
        let last_day = match trend.last() {
            Some(p) => p.at.date_naive(),
            None => return found,
        };
        for (i, &day) in days.iter().enumerate() {
            let next = days
                .get(i + 1)
                .copied()
                .unwrap_or(last_day + chrono::Duration::days(1));
            let gap = (next - day).num_days() - 1;
            if gap < quiet {
                continue;
            }
            let window_start = day - chrono::Duration::days(27);
            let busy = days[..=i]
                .iter()
                .rev()
                .take_while(|d| **d >= window_start)
                .count();
            if busy < 14 {
                continue;
            }
            // One quiet day in 28 at least, so that a run is never certain.
            let q = ((28 - busy) as f64).max(1.0) / 28.0;
            let needed = ((self.config.quiet_probability.ln() / q.ln()).ceil() as i64).max(quiet);
            if gap < needed {
                continue;
            }
            // Stock on hand through the quiet days (the last level before them).
            let level = trend
                .iter()
                .take_while(|p| p.at.date_naive() <= day)
                .last()
                .map_or(0, |p| p.on_hand);
            if level <= 0 {
                continue;
            }
            let at = (day + chrono::Duration::days(needed))
                .and_hms_opt(23, 59, 0)
                .expect("a time")
                .and_utc();
            // In decimal digits of improbability: 4 is one in ten thousand.
            let score = -(q.ln() * gap as f64) / std::f64::consts::LN_10;
            found.push(Anomaly {
                item,
                kind: AnomalyKind::NoMovement,
                at,
                score,
                severity: Severity::of_score(score),
                observed: 0.0,
                expected: busy as f64 / 28.0,
                explanation: format!(
                    "no outflow for {gap} days with {level} units on hand, after outflows on {busy} of the 28 days before"
                ),
            });
        }
        found
    }

    fn detect_direction(
        &self,
        item: AggregateId,
        direction: Direction,
        movements: &[Movement],
    ) -> Vec<Anomaly> {
        let config = &self.config;
        if movements.len() < config.min_movements {
            return Vec::new();
        }
        let word = direction.word();
        let mut found = Vec::new();
        let mut cuts = vec![0];
        // Shifts are looked for on weekday-adjusted sizes, so that a slow
        // Sunday is not a drop in demand.
        let weekday = weekday_factors(movements);
        let units: Vec<f64> = movements
            .iter()
            .map(|m| {
                m.units / weekday.map_or(1.0, |f| f[m.at.weekday().num_days_from_monday() as usize])
            })
            .collect();
        let w = config.shift_window;
        let mut t = config.min_movements.max(w);
        while t + w <= units.len() {
            let start = *cuts.last().unwrap();
            let before = &units[start.max(t.saturating_sub(4 * w))..t];
            let after = &units[t..t + w];
            let (m_before, m_after) = (median(before), median(after));
            let scale = robust_scale(before, m_before);
            // The standard error of a median of w values is about 1.2533 σ / √w.
            let score = (m_after - m_before).abs() / (1.2533 * scale / (w as f64).sqrt());
            let ratio = (m_after - m_before).abs() / m_before.abs().max(1.0);
            if t - start >= config.min_movements
                && score > config.shift_threshold
                && ratio >= config.shift_min_ratio
            {
                // Place the shift at the first movement that belongs to the new level.
                let mut at = t;
                let nearer_after = |u: f64| (u - m_after).abs() < (u - m_before).abs();
                while at + 1 < t + w && !nearer_after(units[at]) {
                    at += 1;
                }
                while at > start + 1
                    && (units[at - 1] - m_after).abs() < (units[at - 1] - m_before).abs()
                {
                    at -= 1;
                }
                let m_after = median(&units[at..(at + w).min(units.len())]);
                found.push(Anomaly {
                    item,
                    kind: AnomalyKind::LevelShift,
                    at: movements[at].at,
                    score,
                    severity: Severity::of_score(score),
                    observed: m_after,
                    expected: m_before,
                    explanation: format!(
                        "the typical {word} changed from {m_before:.1} to {m_after:.1} units \
                         ({:+.0}%) from {} on: median of the {w} movements since, against the \
                         median of the {} before (robust spread {scale:.1}); score {score:.1}",
                        100.0 * (m_after - m_before) / m_before.abs().max(1.0),
                        movements[at].at.date_naive(),
                        before.len(),
                    ),
                });
                cuts.push(at);
                t = at + config.min_movements.max(w);
            } else {
                t += 1;
            }
        }
        cuts.push(units.len());
        for segment in cuts.windows(2) {
            let (start, end) = (segment[0], segment[1]);
            if end - start < config.min_movements {
                continue;
            }
            let segment = &movements[start..end];
            let baseline = Baseline::of(segment);
            for movement in segment {
                let expected = baseline.expected(movement.at);
                let score = baseline.score(movement);
                if score > config.spike_threshold {
                    found.push(Anomaly {
                        item,
                        kind: direction.spike_kind(),
                        at: movement.at,
                        score,
                        severity: Severity::of_score(score),
                        observed: movement.units,
                        expected,
                        explanation: format!(
                            "{} units {} on {}, where {expected:.1} are usual{} \
                             (robust spread {:.1} over {} {word}s): score {score:.1}",
                            movement.units,
                            if direction == Direction::Out {
                                "left"
                            } else {
                                "arrived"
                            },
                            movement.at.format("%Y-%m-%d %H:%M UTC"),
                            if baseline.by_weekday.is_some() {
                                format!(" on a {}", movement.at.weekday())
                            } else {
                                String::new()
                            },
                            baseline.scale * baseline.factor(movement.at),
                            segment.len(),
                        ),
                    });
                }
            }
        }
        found
    }
}

/// The expected size of a movement in a segment, and the spread around it.
/// Seasonality is multiplicative: a movement is divided by its weekday's
/// factor before it is compared with the segment's median.
struct Baseline {
    median: f64,
    by_weekday: Option<[f64; 7]>,
    scale: f64,
}

impl Baseline {
    fn of(segment: &[Movement]) -> Self {
        let by_weekday = weekday_factors(segment);
        let mut baseline = Baseline {
            median: 0.0,
            by_weekday,
            scale: 0.0,
        };
        let adjusted: Vec<f64> = segment
            .iter()
            .map(|m| m.units / baseline.factor(m.at))
            .collect();
        baseline.median = median(&adjusted);
        // At least 10% of the usual size: among a handful of near-identical
        // restocks, one 30% larger is not an anomaly.
        baseline.scale = robust_scale(&adjusted, baseline.median).max(0.1 * baseline.median.abs());
        baseline
    }

    fn factor(&self, at: DateTime<Utc>) -> f64 {
        self.by_weekday
            .map_or(1.0, |f| f[at.weekday().num_days_from_monday() as usize])
    }

    fn expected(&self, at: DateTime<Utc>) -> f64 {
        self.median * self.factor(at)
    }

    /// How far above the usual `movement` is, in robust standard deviations.
    fn score(&self, movement: &Movement) -> f64 {
        (movement.units / self.factor(movement.at) - self.median) / self.scale
    }
}

/// Per weekday, the median movement over the median of all, when the
/// movements span three weeks with at least three on every weekday.
fn weekday_factors(movements: &[Movement]) -> Option<[f64; 7]> {
    let span = movements.last()?.at - movements.first()?.at;
    if span < chrono::Duration::days(21) {
        return None;
    }
    let mut days: [Vec<f64>; 7] = Default::default();
    for m in movements {
        days[m.at.weekday().num_days_from_monday() as usize].push(m.units);
    }
    let all = median(&movements.iter().map(|m| m.units).collect::<Vec<_>>());
    if all <= 0.0 || days.iter().any(|d| d.len() < 3) {
        return None;
    }
    let mut factors = [1.0; 7];
    for (day, values) in days.iter().enumerate() {
        factors[day] = (median(values) / all).max(0.1);
    }
    Some(factors)
}

/// The median of `values` (0 for none).
fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// A standard deviation estimate that outliers do not drag: 1.4826 × MAD;
/// where the MAD is 0 (constant movements), 10% of `center`; at least one unit.
fn robust_scale(values: &[f64], center: f64) -> f64 {
    let deviations: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
    let mad = median(&deviations);
    if mad > 0.0 {
        (1.4826 * mad).max(1.0)
    } else {
        (0.1 * center.abs()).max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::anomaly::rolling_zscore;
    use chrono::{Duration, TimeZone};

    fn trend(movements: &[i64]) -> Vec<TrendPoint> {
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap();
        let mut level = 10_000;
        let mut points = vec![TrendPoint {
            at: start,
            on_hand: level,
            reserved: 0,
        }];
        for (i, m) in movements.iter().enumerate() {
            level += m;
            points.push(TrendPoint {
                at: start + Duration::days(i as i64 + 1),
                on_hand: level,
                reserved: 0,
            });
        }
        points
    }

    fn detect(movements: &[i64]) -> Vec<Anomaly> {
        AnomalyDetector::default().detect_item(AggregateId::random(), &trend(movements))
    }

    #[test]
    fn an_obvious_theft_like_drop_is_found_with_its_numbers() {
        let mut m = vec![
            -10, -12, -9, -11, -10, -13, -8, -10, -11, -9, -12, -10, -10, -11,
        ];
        m[9] = -150;
        let found = detect(&m);
        assert_eq!(found.len(), 1, "{found:?}");
        let a = &found[0];
        assert_eq!(a.kind, AnomalyKind::UnusualOutflow);
        assert_eq!(a.observed, 150.0);
        assert_eq!(a.severity, Severity::High);
        assert_eq!(a.day(), trend(&m)[10].at.date_naive());
        assert!(
            a.explanation.contains("150 units left"),
            "{}",
            a.explanation
        );
        assert!(
            a.explanation.contains("10.5 are usual"),
            "{}",
            a.explanation
        );
    }

    #[test]
    fn a_quiet_noisy_series_is_not_flagged() {
        let m: Vec<i64> = (0..60).map(|i| -(10 + (i * 7 % 5) - 2)).collect();
        assert!(detect(&m).is_empty(), "{:?}", detect(&m));
    }

    #[test]
    fn a_constant_series_is_not_flagged_but_a_break_in_it_is() {
        assert!(detect(&[-10; 40]).is_empty());
        let mut m = vec![-10; 40];
        m[30] = -11;
        assert!(detect(&m).is_empty(), "one unit off is not an anomaly");
        m[30] = -60;
        let found = detect(&m);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, AnomalyKind::UnusualOutflow);
        assert!(found[0].score.is_finite());
    }

    #[test]
    fn too_short_a_series_is_not_judged() {
        assert!(detect(&[-10, -10, -500]).is_empty());
        assert!(detect(&[]).is_empty());
        assert!(AnomalyDetector::default()
            .detect_item(AggregateId::random(), &[])
            .is_empty());
    }

    #[test]
    fn restocks_are_judged_among_restocks_not_among_shipments() {
        let mut m = Vec::new();
        for week in 0..10 {
            m.push(if week == 7 { 3000 } else { 300 });
            m.extend([-40, -45, -38, -42, -41, -39]);
        }
        let found = detect(&m);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, AnomalyKind::UnusualInflow);
        assert_eq!(found[0].observed, 3000.0);
    }

    #[test]
    fn a_sustained_change_is_one_level_shift_not_a_run_of_spikes() {
        let mut m: Vec<i64> = (0..30).map(|i| -(10 + i % 3)).collect();
        m.extend((0..20).map(|i| -(30 + i % 4)));
        let found = detect(&m);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, AnomalyKind::LevelShift);
        assert_eq!(found[0].day(), trend(&m)[31].at.date_naive());
        assert!(
            found[0].explanation.contains("from 11.0 to 3"),
            "{}",
            found[0].explanation
        );
    }

    #[test]
    fn any_trend_is_judged_without_panicking() {
        // Extreme levels, repeated and unordered timestamps, long and short runs.
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap();
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let detector = AnomalyDetector::default();
        for round in 0..500 {
            let len = (next() % 200) as usize;
            let trend: Vec<TrendPoint> = (0..len)
                .map(|_| TrendPoint {
                    at: start + Duration::minutes((next() % 100_000) as i64 - 50_000),
                    on_hand: match next() % 5 {
                        0 => i64::MAX,
                        1 => i64::MIN,
                        2 => 0,
                        _ => (next() % 1000) as i64 - 200,
                    },
                    reserved: 0,
                })
                .collect();
            for anomaly in detector.detect_item(AggregateId::random(), &trend) {
                assert!(anomaly.score.is_finite(), "round {round}: {anomaly:?}");
            }
            let _ = rolling_zscore(AggregateId::random(), &trend, 14, 3.0);
        }
    }

    #[test]
    fn a_counter_that_stops_is_reported_once_and_quiet_items_are_not() {
        let start = chrono::Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap();
        // An outflow every day for 40 days, then nothing for 15 days, with stock.
        let mut on_hand = 1000;
        let mut daily = vec![TrendPoint {
            at: start,
            on_hand,
            reserved: 0,
        }];
        for day in 1..40 {
            on_hand -= 5;
            daily.push(TrendPoint {
                at: start + chrono::Duration::days(day),
                on_hand,
                reserved: 0,
            });
        }
        let last_outflow = daily.last().unwrap().at;
        // A receipt while the counter is stuck, and the history goes on 15 days.
        daily.push(TrendPoint {
            at: last_outflow + chrono::Duration::days(15),
            on_hand: on_hand + 100,
            reserved: 0,
        });
        let detector = AnomalyDetector::default();
        let item = AggregateId::random();
        let found: Vec<_> = detector
            .detect_item(item, &daily)
            .into_iter()
            .filter(|a| a.kind == AnomalyKind::NoMovement)
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        // 1 quiet day assumed in 28: 3 days would do, but 7 is the least.
        assert_eq!(
            found[0].day(),
            (last_outflow + chrono::Duration::days(7)).date_naive()
        );
        assert!(
            found[0].explanation.contains("no outflow for 15 days"),
            "{}",
            found[0].explanation
        );
        // Out of stock: not stuck.
        let mut empty = daily.clone();
        for p in empty.iter_mut().skip(1) {
            p.on_hand -= on_hand; // ends the daily run at 0 units
        }
        empty.pop();
        empty.push(TrendPoint {
            at: last_outflow + chrono::Duration::days(15),
            on_hand: 0,
            reserved: 0,
        });
        assert!(detector
            .detect_item(item, &empty)
            .iter()
            .all(|a| a.kind != AnomalyKind::NoMovement));
        // An intermittent item (an outflow every third day) with long pauses: not stuck.
        let mut sparse = vec![TrendPoint {
            at: start,
            on_hand: 1000,
            reserved: 0,
        }];
        for k in 1..20 {
            sparse.push(TrendPoint {
                at: start + chrono::Duration::days(3 * k),
                on_hand: 1000 - 5 * k,
                reserved: 0,
            });
        }
        sparse.push(TrendPoint {
            at: start + chrono::Duration::days(80),
            on_hand: 900,
            reserved: 0,
        });
        assert!(detector
            .detect_item(item, &sparse)
            .iter()
            .all(|a| a.kind != AnomalyKind::NoMovement));
    }
}

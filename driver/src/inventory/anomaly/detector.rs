//! The detector: [`AnomalyDetector`], its [`DetectorConfig`] and findings
//! ([`Anomaly`], [`AnomalyKind`], [`Severity`]), and the movements it reads
//! off a trend. How each kind is judged is in `outflows.rs`, `receipts.rs`
//! and `stuck.rs` (see the module docs).

use super::{InventorySnapshot, TrendPoint};
use crate::ids::AggregateId;
use chrono::{DateTime, NaiveDate, Utc};
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
    /// The usual size of outflows changed, up or down, and stayed changed.
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

/// How rare a finding is: a reading of [`Anomaly::false_alerts_per_year`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Rarer than the threshold, but more often than once in a thousand
    /// years per item: worth a look.
    Low,
    /// Once in a thousand to once in a million years: likely wrong.
    Medium,
    /// Rarer than once in a million years: almost certainly wrong.
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

    /// The severity of a finding this rare.
    pub fn of_false_alerts_per_year(rate: f64) -> Self {
        if rate <= 1e-6 {
            Severity::High
        } else if rate <= 1e-3 {
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
    /// When: the movement's time (for a shift, the first movement at the
    /// new level; for a stopped counter, the day it became improbable).
    pub at: DateTime<Utc>,
    /// The probability, under the model of the item's own history, of one
    /// movement (or window, or quiet run) at least this far out.
    pub probability: f64,
    /// What an operator thresholds on: how many findings at least this
    /// improbable the item would raise in a year of normal behaviour (the
    /// probability times the judgements of this kind a year; a history
    /// shorter than a quarter counts as a quarter).
    /// [`DetectorConfig::max_false_alerts_per_year`] bounds it.
    pub false_alerts_per_year: f64,
    /// `-log10(false_alerts_per_year)`, within ±300: 2 is once a century
    /// per item. Stored with insights.
    pub score: f64,
    /// Severity derived from `false_alerts_per_year`.
    pub severity: Severity,
    /// Units moved (for an outflow: those not reserved; for a shift: the
    /// level after it; for a stopped counter: 0).
    pub observed: f64,
    /// Units expected (for an outflow: of those not reserved; for a shift:
    /// the level before it; for a stopped counter: the share of days with an
    /// outflow before it).
    pub expected: f64,
    /// The finding in words, with the numbers behind it.
    pub explanation: String,
}

impl Anomaly {
    /// The day of the finding (UTC).
    pub fn day(&self) -> NaiveDate {
        self.at.date_naive()
    }

    /// A finding of `kind` with probability `e^ln_probability`, among
    /// `tests_per_year` such judgements a year; the rest follows.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn with_ln_probability(
        item: AggregateId,
        kind: AnomalyKind,
        at: DateTime<Utc>,
        ln_probability: f64,
        tests_per_year: f64,
        observed: f64,
        expected: f64,
        explanation: String,
    ) -> Self {
        let bound = 300.0 * std::f64::consts::LN_10;
        let ln_probability = if ln_probability.is_nan() {
            0.0
        } else {
            ln_probability.clamp(-bound, 0.0)
        };
        let ln_rate = (ln_probability + tests_per_year.max(1e-9).ln()).clamp(-bound, bound);
        Anomaly {
            item,
            kind,
            at,
            probability: ln_probability.exp(),
            false_alerts_per_year: ln_rate.exp(),
            score: -ln_rate / std::f64::consts::LN_10,
            severity: Severity::of_false_alerts_per_year(ln_rate.exp()),
            observed,
            expected,
            explanation,
        }
    }
}

/// The detector's knobs; the defaults are what the evaluations chose
/// (`bench/README.md`).
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Findings are reported when their
    /// [`Anomaly::false_alerts_per_year`] is below this, for every kind.
    /// The default was chosen on the realistic data set (`bench/README.md`).
    pub max_false_alerts_per_year: f64,
    /// Fewest outflows before their sizes are judged.
    pub min_movements: usize,
    /// Outflows on each side of a movement whose sizes make its expected size.
    pub level_window: usize,
    /// Outflows after a candidate shift compared with up to twice as many
    /// before it; an item with fewer than four times as many outflows
    /// compares a quarter of them, 14 at least.
    pub shift_window: usize,
    /// Smallest change of the level, as a ratio either way (1.5: up by half
    /// or down by a third), that counts as a shift.
    pub shift_min_ratio: f64,
    /// Announced demand brings unannounced demand with it (a campaign's
    /// walk-ins beside its reserved pre-orders): on an outflow that
    /// consumed reserved units, this share of them more is expected, give
    /// or take as much. A tenant's own share can be read off its history.
    pub announced_spill: f64,
    /// Fewest days with stock and no outflow that make an
    /// [`AnomalyKind::NoMovement`].
    pub quiet_days: i64,
    /// Where an item has few receipts, a receipt is judged against this
    /// many days of its outflows...
    pub receipt_cover_days: f64,
    /// ...with this spread in natural logarithms (0.8: a receipt of 15 to
    /// 60 days of demand is within one spread).
    pub receipt_cover_spread: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            max_false_alerts_per_year: 3e-2,
            min_movements: 8,
            level_window: 14,
            shift_window: 21,
            shift_min_ratio: 1.5,
            announced_spill: 0.25,
            quiet_days: 7,
            receipt_cover_days: 30.0,
            receipt_cover_spread: 0.8,
        }
    }
}

/// The detector. Deterministic: same snapshot, same findings.
#[derive(Clone, Debug, Default)]
pub struct AnomalyDetector {
    pub(super) config: DetectorConfig,
}

/// One movement of one direction.
#[derive(Clone, Copy, Debug)]
pub(super) struct Movement {
    pub(super) at: DateTime<Utc>,
    /// Units moved, positive.
    pub(super) units: f64,
    /// Of those, units that reservations announced (outflows only): the
    /// reservations the movement consumed.
    pub(super) known: f64,
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
                let units = delta.unsigned_abs() as f64;
                // Reserved stock is at least none and at most what is on hand.
                let held = |p: &TrendPoint| p.reserved.clamp(0, p.on_hand.max(0));
                let released = held(&pair[0]).saturating_sub(held(&pair[1])).max(0) as f64;
                keep.then_some(Movement {
                    at: pair[1].at,
                    units,
                    known: if self == Direction::Out {
                        released.min(units)
                    } else {
                        0.0
                    },
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
}

impl AnomalyDetector {
    /// A detector with `config`. Values that mean nothing (a threshold that
    /// is not a positive number, a spread of 0, an unbounded window) are
    /// brought to the nearest that does.
    pub fn new(mut config: DetectorConfig) -> Self {
        let positive = |v: f64, floor: f64| if v.is_nan() { floor } else { v.max(floor) };
        config.max_false_alerts_per_year = positive(config.max_false_alerts_per_year, 1e-300);
        config.receipt_cover_days = positive(config.receipt_cover_days, 1e-3);
        config.receipt_cover_spread = positive(config.receipt_cover_spread, 1e-3);
        config.announced_spill = positive(config.announced_spill, 0.0);
        config.shift_min_ratio = positive(config.shift_min_ratio, 1.0);
        config.level_window = config.level_window.clamp(1, 100_000);
        config.shift_window = config.shift_window.clamp(2, 100_000);
        AnomalyDetector { config }
    }

    /// Every finding for every item of `snapshot`, most improbable first.
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
        let outflows = Direction::Out.movements(trend);
        let years = years(trend);
        let mut found = super::outflows::judge(&self.config, item, &outflows, years);
        found.extend(super::receipts::judge(
            &self.config,
            item,
            trend,
            &outflows,
            years,
        ));
        found.extend(super::stuck::judge(&self.config, item, trend));
        found.sort_by_key(|a| a.at);
        found
    }
}

/// The years a trend spans, a quarter at least (a short history is not
/// taken to be a sample of a busy year): the gaps between its points, each
/// counted up to 30 days, so that one stray timestamp (an epoch, a typo)
/// does not make the history centuries long.
fn years(trend: &[TrendPoint]) -> f64 {
    let days: f64 = trend
        .windows(2)
        .map(|pair| {
            ((pair[1].at - pair[0].at).num_seconds().unsigned_abs() as f64 / 86_400.0).min(30.0)
        })
        .sum();
    days.max(365.25 / 4.0) / 365.25
}

/// The median of `values` (0 for none).
pub(super) fn median(values: &[f64]) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::anomaly::rolling_zscore;
    use chrono::{Duration, TimeZone};

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
    }

    /// One movement a day from a level of 10,000 (no opening balance).
    fn trend(movements: &[i64]) -> Vec<TrendPoint> {
        let mut level = 10_000;
        let mut points = vec![TrendPoint {
            at: start(),
            on_hand: level,
            reserved: 0,
        }];
        for (i, m) in movements.iter().enumerate() {
            level += m;
            points.push(TrendPoint {
                at: start() + Duration::days(i as i64 + 1),
                on_hand: level,
                reserved: 0,
            });
        }
        points
    }

    fn detect(movements: &[i64]) -> Vec<Anomaly> {
        AnomalyDetector::default().detect_item(AggregateId::random(), &trend(movements))
    }

    /// Poisson-like whole-unit demand around `mean`, deterministic.
    fn counts(mean: f64, days: usize, seed: u64) -> Vec<i64> {
        let mut state = seed;
        (0..days)
            .map(|_| {
                // Knuth's product, from a small xorshift.
                let limit = (-mean).exp();
                let (mut k, mut p) = (0, 1.0);
                loop {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    p *= (state >> 11) as f64 / (1u64 << 53) as f64;
                    if p <= limit {
                        break;
                    }
                    k += 1;
                }
                -(k as i64)
            })
            .filter(|&m| m != 0)
            .collect()
    }

    #[test]
    fn an_obvious_theft_like_drop_is_found_with_its_numbers() {
        let mut m = counts(10.0, 40, 7);
        m[25] = -150;
        let found = detect(&m);
        assert_eq!(found.len(), 1, "{found:?}");
        let a = &found[0];
        assert_eq!(a.kind, AnomalyKind::UnusualOutflow);
        assert_eq!(a.observed, 150.0);
        assert_eq!(a.severity, Severity::High);
        assert_eq!(a.day(), trend(&m)[26].at.date_naive());
        assert!(a.probability < 1e-30, "{a:?}");
        assert!(a.false_alerts_per_year < 1e-6 && a.score > 6.0, "{a:?}");
        assert!(
            a.explanation.contains("150 units left unannounced"),
            "{}",
            a.explanation
        );
        assert!((a.expected - 10.0).abs() < 2.5, "{a:?}");
    }

    /// The examples: whole-unit orders of 1 to 6 with one of 9, an
    /// item whose orders are 3 units, quiet Sundays. None is an anomaly.
    #[test]
    fn small_whole_unit_counts_are_not_anomalies() {
        let mut m: Vec<i64> = (0..60).map(|i| -(1 + (i * 7 % 6))).collect();
        m[40] = -9;
        assert!(detect(&m).is_empty(), "{:?}", detect(&m));
        let threes: Vec<i64> = (0..180).map(|i| if i % 9 == 4 { -6 } else { -3 }).collect();
        assert!(detect(&threes).is_empty(), "{:?}", detect(&threes));
        // Ten a day, one on Sundays.
        let sundays: Vec<i64> = (0..120)
            .map(|i| if (i + 1) % 7 == 6 { -1 } else { -(8 + i % 5) })
            .collect();
        assert!(detect(&sundays).is_empty(), "{:?}", detect(&sundays));
    }

    #[test]
    fn a_constant_series_is_not_flagged_but_a_break_in_it_is() {
        assert!(detect(&[-10; 40]).is_empty());
        let mut m = vec![-10; 40];
        m[30] = -14;
        assert!(detect(&m).is_empty(), "four units off is not an anomaly");
        m[30] = -60;
        let found = detect(&m);
        assert_eq!(found.len(), 1, "{found:?}");
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

    /// A receipt of 100 weeks of demand, on an item with three receipts
    /// before it: judged against the outflows. The opening balance, however
    /// large, is never judged.
    #[test]
    fn few_receipts_are_judged_against_outflows_and_the_opening_balance_never() {
        let mut points = vec![
            TrendPoint {
                at: start(),
                on_hand: 0,
                reserved: 0,
            },
            TrendPoint {
                at: start() + Duration::hours(1),
                on_hand: 50_000, // an opening balance of years
                reserved: 0,
            },
        ];
        let mut level = 50_000;
        for day in 1..=120 {
            level -= 3;
            let at = start() + Duration::days(day);
            points.push(TrendPoint {
                at,
                on_hand: level,
                reserved: 0,
            });
            if day % 30 == 0 {
                level += if day == 90 { 2100 } else { 40 };
                points.push(TrendPoint {
                    at: at + Duration::hours(2),
                    on_hand: level,
                    reserved: 0,
                });
            }
        }
        let found = AnomalyDetector::default().detect_item(AggregateId::random(), &points);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, AnomalyKind::UnusualInflow);
        assert_eq!(found[0].observed, 2100.0);
        assert!(
            found[0].explanation.contains("700 days of outflows"),
            "{}",
            found[0].explanation
        );
    }

    #[test]
    fn a_sustained_change_is_one_level_shift_up_or_down_not_a_run_of_spikes() {
        let mut up: Vec<i64> = counts(10.0, 40, 3);
        up.extend(counts(25.0, 40, 4));
        let found = detect(&up);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, AnomalyKind::LevelShift);
        let offset = (found[0].day() - trend(&up)[41].at.date_naive()).num_days();
        assert!((-3..=7).contains(&offset), "{found:?}");
        assert!(found[0].explanation.contains("went up"), "{found:?}");
        // 28 days of -20 followed by 28 days of -11 (the example).
        let mut down: Vec<i64> = counts(20.0, 28, 5);
        down.extend(counts(11.0, 28, 6));
        let found = detect(&down);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, AnomalyKind::LevelShift);
        assert!(found[0].explanation.contains("went down"), "{found:?}");
        assert!(found[0].observed < found[0].expected);
    }

    /// Demand announced by reservations (a campaign's pre-orders) is not an
    /// anomaly; the same units unannounced are.
    #[test]
    fn reserved_demand_is_expected() {
        let mut points = trend(&counts(10.0, 60, 9));
        let last = *points.last().unwrap();
        let reserve = TrendPoint {
            at: last.at + Duration::hours(20),
            on_hand: last.on_hand,
            reserved: 150,
        };
        // The pre-orders ship with the day's demand and the campaign's
        // walk-ins (a quarter of the pre-orders).
        let ship = TrendPoint {
            at: last.at + Duration::days(1),
            on_hand: last.on_hand - 150 - 10 - 37,
            reserved: 0,
        };
        let mut announced = points.clone();
        announced.extend([reserve, ship]);
        let detector = AnomalyDetector::default();
        assert!(
            detector
                .detect_item(AggregateId::random(), &announced)
                .is_empty(),
            "{:?}",
            detector.detect_item(AggregateId::random(), &announced)
        );
        points.push(TrendPoint {
            reserved: 0,
            ..ship
        });
        let found = detector.detect_item(AggregateId::random(), &points);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].observed, 197.0);
    }

    /// The rate is what it says: on plain Poisson demand, the findings at a
    /// loose threshold are about as many as the rates promise.
    #[test]
    fn false_alert_rates_are_calibrated_on_counts() {
        let detector = AnomalyDetector::new(DetectorConfig {
            max_false_alerts_per_year: 50.0,
            ..DetectorConfig::default()
        });
        let mut spikes = 0;
        let items = 200;
        for seed in 0..items {
            let found = detector.detect_item(
                AggregateId::random(),
                &trend(&counts(6.0, 365, 0x1234_5678 + seed)),
            );
            spikes += found
                .iter()
                .filter(|a| a.kind == AnomalyKind::UnusualOutflow)
                .count();
        }
        // 50 a year per item would be promised by the model; a calibrated
        // one gives that order, not a hundred times more or fewer.
        let per_item_year = spikes as f64 / items as f64;
        assert!(
            (5.0..=150.0).contains(&per_item_year),
            "{per_item_year} findings per item-year"
        );
    }

    /// One stray timestamp (an epoch in front of a year of history) does
    /// not make the history decades long and every outflow a finding; and
    /// a configuration that means nothing is brought to one that does.
    #[test]
    fn a_stray_timestamp_or_a_senseless_config_changes_little() {
        let mut m = counts(10.0, 365, 11);
        m[200] = -150;
        let clean = trend(&m);
        let mut stray = clean.clone();
        stray.insert(
            0,
            TrendPoint {
                at: DateTime::<Utc>::UNIX_EPOCH,
                ..clean[0]
            },
        );
        let detector = AnomalyDetector::default();
        let (a, b) = (
            detector.detect_item(AggregateId::random(), &clean),
            detector.detect_item(AggregateId::random(), &stray),
        );
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(b.len(), 1, "{b:?}");
        assert!(b[0].false_alerts_per_year / a[0].false_alerts_per_year < 1.2);
        let senseless = AnomalyDetector::new(DetectorConfig {
            max_false_alerts_per_year: f64::NAN,
            receipt_cover_spread: 0.0,
            level_window: usize::MAX,
            ..DetectorConfig::default()
        });
        let found = senseless.detect_item(AggregateId::random(), &clean);
        assert!(found.len() <= 1, "{found:?}");
        assert!(found.iter().all(|f| f.expected.is_finite()));
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
                    at: match next() % 40 {
                        // The ends of time: no date arithmetic may overflow.
                        0 => DateTime::<Utc>::MAX_UTC,
                        1 => DateTime::<Utc>::MIN_UTC,
                        _ => start + Duration::minutes((next() % 100_000) as i64 - 50_000),
                    },
                    on_hand: match next() % 5 {
                        0 => i64::MAX,
                        1 => i64::MIN,
                        2 => 0,
                        _ => (next() % 1000) as i64 - 200,
                    },
                    // Reservations that make no sense as well.
                    reserved: match next() % 8 {
                        0 => i64::MAX,
                        1 => i64::MIN,
                        2 => -5,
                        3 => (next() % 2000) as i64,
                        _ => 0,
                    },
                })
                .collect();
            for anomaly in detector.detect_item(AggregateId::random(), &trend) {
                assert!(
                    [
                        anomaly.score,
                        anomaly.probability,
                        anomaly.false_alerts_per_year,
                        anomaly.observed,
                        anomaly.expected,
                    ]
                    .iter()
                    .all(|v| v.is_finite()),
                    "round {round}: {anomaly:?}"
                );
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

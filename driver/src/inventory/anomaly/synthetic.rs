//! A deterministic generator of stock histories with injected anomalies:
//! daily demand with noise and weekly seasonality, restocks at a reorder
//! point, and theft-like drops, bulk mistakes and level shifts, drawn from
//! its own small RNG.

use super::rng::Rng;
use super::TrendPoint;
use crate::ids::AggregateId;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

/// What was injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    /// Units vanished at once (5 to 15 days of demand).
    TheftDrop,
    /// A receipt of ten times the usual restock.
    BulkReceipt,
    /// A shipment of ten times the day's demand.
    BulkShipment,
    /// Demand multiplied by 2.5 (or 0.4) from this day on.
    LevelShift,
}

/// One injected anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Injection {
    /// Its kind.
    pub kind: Injected,
    /// Its day.
    pub day: NaiveDate,
}

/// One item's generated history and what was injected in it.
#[derive(Clone, Debug)]
pub struct Series {
    /// A fresh item id.
    pub item: AggregateId,
    /// Stock levels, one point per event.
    pub trend: Vec<TrendPoint>,
    /// The anomalies put in, in day order.
    pub injected: Vec<Injection>,
}

/// `count` series of `days` days each, from `seed`. About a third carry
/// no anomaly; the others one or two. Some items are sparse (demand on
/// few days) or constant (the same demand every day).
pub fn generate(seed: u64, count: usize, days: i64) -> Vec<Series> {
    let mut rng = Rng(seed);
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
    (0..count)
        .map(|_| {
            let profile = rng.below(10);
            let base = 5.0 + rng.unit() * 45.0;
            let (sparse, constant) = (profile == 0, profile == 1);
            let weekly: [f64; 7] = [1.1, 1.0, 1.0, 1.05, 1.3, 0.6, 0.4];
            let restock = (base * 7.0).round() as i64;
            let mut injected = Vec::new();
            let n = rng.below(3);
            let mut taken = std::collections::BTreeSet::new();
            for _ in 0..n {
                let day = 35 + rng.below((days - 45) as u64) as i64;
                if !taken.insert(day / 14) {
                    continue; // keep injections two weeks apart
                }
                let kind = match rng.below(4) {
                    0 => Injected::TheftDrop,
                    1 => Injected::BulkReceipt,
                    2 => Injected::BulkShipment,
                    _ => Injected::LevelShift,
                };
                if kind == Injected::LevelShift
                    && injected
                        .iter()
                        .any(|i: &(i64, Injected)| i.1 == Injected::LevelShift)
                {
                    continue;
                }
                injected.push((day, kind));
            }
            injected.sort_by_key(|(day, _)| *day);
            let shift_up = rng.below(2) == 0;
            let mut level = 0i64;
            let mut trend = vec![TrendPoint {
                at: start,
                on_hand: 0,
                reserved: 0,
            }];
            let push = |at: DateTime<Utc>, level: i64, trend: &mut Vec<TrendPoint>| {
                trend.push(TrendPoint {
                    at,
                    on_hand: level,
                    reserved: 0,
                });
            };
            let mut factor = 1.0;
            for day in 0..days {
                let midnight = start + Duration::days(day);
                let today: Vec<Injected> = injected
                    .iter()
                    .filter(|(d, _)| *d == day)
                    .map(|(_, k)| *k)
                    .collect();
                if today.contains(&Injected::LevelShift) {
                    factor = if shift_up { 2.5 } else { 0.4 };
                }
                if level < restock {
                    let mut quantity = restock * 2;
                    if today.contains(&Injected::BulkReceipt) {
                        quantity *= 10;
                    }
                    level += quantity;
                    push(midnight + Duration::hours(7), level, &mut trend);
                } else if today.contains(&Injected::BulkReceipt) {
                    level += restock * 20;
                    push(midnight + Duration::hours(7), level, &mut trend);
                }
                let demand = if constant {
                    base.round()
                } else if sparse {
                    if rng.unit() < 0.25 {
                        (base * 0.3 + rng.unit() * 3.0).round()
                    } else {
                        0.0
                    }
                } else {
                    let seasonal = base * factor * weekly[(day % 7) as usize];
                    (seasonal + rng.normal() * seasonal * 0.15).round().max(0.0)
                };
                let mut shipped = demand as i64;
                if constant || sparse {
                    shipped = (shipped as f64 * factor).round() as i64;
                }
                if today.contains(&Injected::BulkShipment) {
                    shipped = shipped.max(1) * 10;
                }
                if shipped > 0 {
                    level -= shipped;
                    push(midnight + Duration::hours(15), level, &mut trend);
                }
                if today.contains(&Injected::TheftDrop) {
                    let lost = ((base * factor) * (5.0 + rng.unit() * 10.0)).round() as i64;
                    level -= lost;
                    push(midnight + Duration::hours(22), level, &mut trend);
                }
            }
            Series {
                item: AggregateId::random(),
                trend,
                injected: injected
                    .into_iter()
                    .map(|(d, kind)| Injection {
                        kind,
                        day: (start + Duration::days(d)).date_naive(),
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::inventory::anomaly::synthetic;

    #[test]
    fn the_generator_is_deterministic() {
        let (a, b) = (synthetic::generate(3, 5, 60), synthetic::generate(3, 5, 60));
        // Not vacuous: five items, each with a trend, some with injections.
        assert_eq!((a.len(), b.len()), (5, 5));
        assert!(a.iter().all(|s| s.trend.len() > 1));
        assert!(a.iter().any(|s| !s.injected.is_empty()));
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(a.trend, b.trend);
            assert_eq!(a.injected, b.injected);
        }
        // And the seed matters.
        let other = synthetic::generate(4, 5, 60);
        assert!(a.iter().zip(&other).any(|(a, o)| a.trend != o.trend));
    }
}

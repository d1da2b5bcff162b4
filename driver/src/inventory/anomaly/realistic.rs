//! A second, more realistic generator of stock histories, and its
//! evaluation: what a stock manager's data looks like, not what suits a
//! detector. Deterministic, from its own small RNG.
//!
//! Per item, over `days` days:
//! - demand in whole units: Poisson or negative-binomial (a gamma-mixed
//!   Poisson), with weekly and monthly seasonality;
//! - movers of three kinds: regular, intermittent (demand on a few days in
//!   ten) and fast (restocked several times a week);
//! - an opening balance (the first receipt, a month of demand), then
//!   restocks at a reorder point after a lead time, some of them delivered
//!   in two parts;
//! - planned promotions of 3 to 5 days (demand ×2 to ×3.5), which are not
//!   anomalies;
//! - injected anomalies: thefts (an outflow of 5 to 15 days of demand,
//!   counting only selling days for intermittent items, once the shelf
//!   holds that much),
//!   receipts keyed ×10 or ×100, level shifts of demand up (×2) or
//!   down (×0.45), and stuck counters (an item that moved every day
//!   records nothing for 21 to 35 days).
//!
//! [`evaluate`] scores a detector on them: precision, recall and F1 overall
//! and per kind, false alerts per item-month, and the share of promotions
//! that drew an alert.

use super::rng::Rng;
use super::{Anomaly, AnomalyKind, Evaluation, TrendPoint};
use crate::ids::AggregateId;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

/// What was injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Units gone at once: an outflow of 5 to 15 days of demand (selling
    /// days, for an intermittent item).
    Theft,
    /// A receipt keyed ×10 or ×100.
    KeyingError,
    /// Demand up from this day on.
    LevelShiftUp,
    /// Demand down from this day on.
    LevelShiftDown,
    /// No movement recorded from this day on, for 21 to 35 days, where one
    /// was recorded every day before.
    StuckCounter,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 5] = [
        Kind::Theft,
        Kind::KeyingError,
        Kind::LevelShiftUp,
        Kind::LevelShiftDown,
        Kind::StuckCounter,
    ];

    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Theft => "theft",
            Kind::KeyingError => "keying error",
            Kind::LevelShiftUp => "level shift up",
            Kind::LevelShiftDown => "level shift down",
            Kind::StuckCounter => "stuck counter",
        }
    }
}

/// One injected anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Injection {
    /// Its kind.
    pub kind: Kind,
    /// The day it starts.
    pub day: NaiveDate,
    /// How many days it lasts (stuck counters; 1 otherwise).
    pub days: i64,
}

/// One item's history.
#[derive(Clone, Debug)]
pub struct Series {
    /// A fresh item id.
    pub item: AggregateId,
    /// Stock levels, one point per movement, the opening balance first.
    pub trend: Vec<TrendPoint>,
    /// The anomalies put in, in day order.
    pub injected: Vec<Injection>,
    /// Planned promotions: first and last day.
    pub promotions: Vec<(NaiveDate, NaiveDate)>,
    /// How it moves.
    pub mover: Mover,
}

/// How an item moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mover {
    /// Demand on most days, restocked every one to three weeks.
    Regular,
    /// Demand on a few days in ten, restocked every one to two months.
    Intermittent,
    /// Tens to hundreds of units a day, restocked several times a week.
    Fast,
}

/// `count` items of `days` days each, from `seed`. About half carry no
/// anomaly; the others one or two (kinds drawn evenly).
pub fn generate(seed: u64, count: usize, days: i64) -> Vec<Series> {
    let mut rng = Rng(seed ^ 0x005E_ED0F_2EA1_1571);
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
    (0..count).map(|_| one(&mut rng, start, days)).collect()
}

fn one(rng: &mut Rng, start: DateTime<Utc>, days: i64) -> Series {
    let mover = match rng.below(20) {
        0..=3 => Mover::Intermittent,
        4..=6 => Mover::Fast,
        _ => Mover::Regular,
    };
    let (base, occurrence) = match mover {
        Mover::Regular => (rng.between(1.5, 25.0), 1.0),
        Mover::Intermittent => (rng.between(1.0, 6.0), rng.between(0.08, 0.3)),
        Mover::Fast => (rng.between(40.0, 150.0), 1.0),
    };
    let dispersion = if rng.below(2) == 0 {
        None
    } else {
        Some(rng.between(2.0, 12.0))
    };
    let weekly = {
        let profile: [[f64; 7]; 3] = [
            [1.1, 1.0, 1.0, 1.05, 1.3, 0.6, 0.15],
            [1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.6],
            [1.2, 1.1, 1.0, 1.0, 1.2, 0.5, 0.0],
        ];
        profile[rng.below(3) as usize]
    };
    let monthly_amplitude = rng.between(0.0, 0.25);
    let mean_daily = base * occurrence;
    let cover_days = match mover {
        Mover::Fast => 2.5,
        Mover::Regular => rng.between(7.0, 21.0),
        Mover::Intermittent => rng.between(30.0, 60.0),
    };
    let order = (mean_daily * cover_days).ceil().max(3.0) as i64;
    let reorder_point = (mean_daily * 4.0).ceil() as i64;
    let lead_time = match mover {
        Mover::Fast => 1,
        _ => 2 + rng.below(3) as i64,
    };

    // Promotions: 0 to 3, 3 to 5 days each, apart from each other.
    let mut promotions = Vec::new();
    if mover != Mover::Intermittent {
        for _ in 0..rng.below(4) {
            let first = 30 + rng.below((days - 40).max(1) as u64) as i64;
            let len = 3 + rng.below(3) as i64;
            if promotions
                .iter()
                .all(|&(a, b): &(i64, i64)| first > b + 10 || first + len < a - 10)
            {
                promotions.push((first, first + len - 1));
            }
        }
    }
    let promoted = |day: i64| promotions.iter().any(|&(a, b)| (a..=b).contains(&day));

    // Anomalies: none for half the items, else one or two, after day 45.
    let mut injected: Vec<(Kind, i64, i64)> = Vec::new();
    let wanted = match rng.below(4) {
        0 | 1 => 0,
        2 => 1,
        _ => 2,
    };
    for _ in 0..wanted {
        let kind = Kind::ALL[rng.below(5) as usize];
        if kind == Kind::StuckCounter && mover == Mover::Intermittent {
            continue;
        }
        let day = 45 + rng.below((days - 90).max(1) as u64) as i64;
        let len = if kind == Kind::StuckCounter {
            21 + rng.below(15) as i64
        } else {
            1
        };
        let clear = injected
            .iter()
            .all(|&(_, d, l)| day > d + l + 20 || day + len + 20 < d);
        if clear
            && !promoted(day)
            && !promotions
                .iter()
                .any(|&(a, b)| day + len >= a - 3 && day <= b + 3)
        {
            injected.push((kind, day, len));
        }
    }
    injected.sort_by_key(|&(_, day, _)| day);
    let shift = |day: i64| {
        injected
            .iter()
            .fold(1.0, |factor, &(kind, from, _)| match kind {
                Kind::LevelShiftUp if day >= from => factor * 2.0,
                Kind::LevelShiftDown if day >= from => factor * 0.45,
                _ => factor,
            })
    };
    let stuck = |day: i64| {
        injected.iter().any(|&(kind, from, len)| {
            kind == Kind::StuckCounter && (from..from + len).contains(&day)
        })
    };

    let mut trend = Vec::new();
    let mut on_hand = 0i64;
    let mut reserved = 0i64;
    let point = |trend: &mut Vec<TrendPoint>, day: i64, hour: i64, on_hand: i64, reserved: i64| {
        trend.push(TrendPoint {
            at: start + Duration::days(day) + Duration::hours(hour),
            on_hand,
            reserved,
        });
    };
    // The item is created with nothing, then the opening balance: a month
    // of demand, or one order.
    point(&mut trend, 0, 5, 0, 0);
    on_hand += ((mean_daily * 30.0).ceil() as i64).max(order);
    point(&mut trend, 0, 6, on_hand, 0);
    let mut arriving: Vec<(i64, i64)> = Vec::new();
    let mut pre_ordered = 0i64;
    let (mut pending_theft, mut theft_days) = (None, Vec::new());
    // A day's usual demand (weekday, monthly wave, level shifts), and a
    // promotion's demand on that day beyond twice the usual.
    let usual = |day: i64| {
        let weekday = (start + Duration::days(day))
            .weekday()
            .num_days_from_monday() as usize;
        let monthly = 1.0 + monthly_amplitude * (std::f64::consts::TAU * day as f64 / 30.0).sin();
        base * weekly[weekday] * monthly * shift(day)
    };
    let extra = |day: i64| 1.5 * ((day * 7919) % 11) as f64 / 10.0;
    for day in 0..days {
        let promo = if promoted(day) { 2.0 + extra(day) } else { 1.0 };
        let recorded = !stuck(day);
        // Receipts due today (the delivery is recorded even if the counter
        // of shipments is stuck: receiving is another desk).
        let mut i = 0;
        while i < arriving.len() {
            if arriving[i].0 == day {
                let (_, quantity) = arriving.remove(i);
                let keyed = injected
                    .iter()
                    .find(|&&(kind, d, _)| kind == Kind::KeyingError && d == day)
                    .map(|_| if (day % 2) == 0 { 10 } else { 100 });
                let quantity = quantity * keyed.unwrap_or(1);
                on_hand += quantity;
                if recorded || keyed.is_some() {
                    point(&mut trend, day, 7, on_hand, reserved);
                }
            } else {
                i += 1;
            }
        }
        // A keying error with no delivery due today: a receipt keyed wrong.
        if injected
            .iter()
            .any(|&(kind, d, _)| kind == Kind::KeyingError && d == day)
            && trend
                .last()
                .is_none_or(|p| p.at != start + Duration::days(day) + Duration::hours(7))
        {
            on_hand += order * if day % 2 == 0 { 10 } else { 100 };
            point(&mut trend, day, 7, on_hand, reserved);
        }
        // Demand: on promotion days, the uplift is mostly pre-ordered, and
        // so reserved the day before (see below); a fifth of it walks in.
        let occurs = occurrence >= 1.0 || rng.unit() < occurrence;
        let mean = usual(day);
        let walk_in = if occurs {
            rng.count(mean * (1.0 + 0.2 * (promo - 1.0)), dispersion)
        } else {
            0
        };
        let demand = (walk_in + pre_ordered).min(on_hand);
        pre_ordered = 0;
        if demand > 0 && recorded {
            on_hand -= demand;
            reserved -= demand.min(reserved); // shipping consumes reservations first
            point(&mut trend, day, 12, on_hand, reserved);
        } else if demand > 0 {
            on_hand -= demand; // it left; nobody recorded it
        }
        if reserved > 0 && !promoted(day + 1) {
            reserved = 0; // what was not shipped is released
            point(&mut trend, day, 18, on_hand, reserved);
        }
        // Tomorrow's pre-orders for a promotion, reserved today.
        if promoted(day + 1) && day + 1 < days {
            let uplift = 1.0 + extra(day + 1);
            pre_ordered = rng
                .count(usual(day + 1) * uplift * 0.8, dispersion)
                .min((on_hand - reserved).max(0));
            if pre_ordered > 0 {
                reserved += pre_ordered;
                point(&mut trend, day, 16, on_hand, reserved);
            }
        }
        // A theft: 5 to 15 days of demand at once, on its day or, where
        // the shelf holds less, on the first day after that it holds as
        // much (a thief cannot take what is not there, and a theft of
        // what little is left is no theft of that size).
        if let Some(i) = injected
            .iter()
            .position(|&(kind, d, _)| kind == Kind::Theft && d == day)
        {
            pending_theft = Some((i, rng.between(5.0, 15.0)));
        }
        if let Some((i, days_of_demand)) = pending_theft {
            // Counting, for an intermittent item, only the days it sells:
            // 5 to 15 of its average days would be one or two sales,
            // which no reading of quantities tells from a sale.
            let per_day = if mover == Mover::Intermittent {
                base
            } else {
                mean_daily
            };
            let units = ((per_day * days_of_demand).round() as i64).max(1);
            if on_hand >= units && recorded {
                on_hand -= units;
                point(&mut trend, day, 20, on_hand, reserved);
                theft_days.push((i, day));
                pending_theft = None;
            }
        }
        // Reordering, with part deliveries now and then.
        let pipeline: i64 = arriving.iter().map(|&(_, q)| q).sum();
        let available = on_hand - reserved;
        if available + pipeline <= reorder_point {
            let quantity = order.max(reorder_point * 2 - available);
            if rng.below(5) == 0 && quantity > 3 {
                let first = quantity / 2 + rng.below((quantity / 4).max(1) as u64) as i64;
                arriving.push((day + lead_time, first));
                arriving.push((day + lead_time + 1, quantity - first));
            } else {
                arriving.push((day + lead_time, quantity));
            }
        }
    }
    let date = |day: i64| (start + Duration::days(day)).date_naive();
    Series {
        item: AggregateId::random(),
        trend,
        // Thefts where they happened; one that never found the stock is dropped.
        injected: injected
            .into_iter()
            .enumerate()
            .filter_map(|(i, (kind, day, days))| {
                let day = if kind == Kind::Theft {
                    theft_days.iter().find(|(t, _)| *t == i)?.1
                } else {
                    day
                };
                Some(Injection {
                    kind,
                    day: date(day),
                    days,
                })
            })
            .collect(),
        promotions: promotions
            .into_iter()
            .map(|(a, b)| (date(a), date(b)))
            .collect(),
        mover,
    }
}

/// A detector's figures on [`generate`]d items.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every finding against every injected anomaly.
    pub overall: Evaluation,
    /// Per kind: the findings matched to it and the injections of it missed
    /// (false positives are counted overall only).
    pub by_kind: Vec<(Kind, Evaluation)>,
    /// Findings that match no injected anomaly, per item and month of history.
    pub false_alerts_per_item_month: f64,
    /// Share of promotions with at least one finding on their days (or the
    /// day after).
    pub promotion_alert_rate: f64,
    /// Findings that match no injected anomaly, per item and year of
    /// history, by the kind found: what the detector's
    /// `max_false_alerts_per_year` promises to bound, per kind.
    pub false_alerts_per_item_year: Vec<(AnomalyKind, f64)>,
}

/// Whether a finding of `kind` on `day` is the injected `injection`.
fn matches(kind: AnomalyKind, day: NaiveDate, injection: &Injection) -> bool {
    let offset = (day - injection.day).num_days();
    match injection.kind {
        Kind::Theft => kind == AnomalyKind::UnusualOutflow && offset == 0,
        Kind::KeyingError => kind == AnomalyKind::UnusualInflow && offset == 0,
        Kind::LevelShiftUp | Kind::LevelShiftDown => {
            kind == AnomalyKind::LevelShift && (-3..=14).contains(&offset)
        }
        Kind::StuckCounter => {
            kind == AnomalyKind::NoMovement && (5..=injection.days + 3).contains(&offset)
        }
    }
}

/// Scores `detect` on `series`. A finding matches an injected anomaly as
/// [`matches`] says; each injected anomaly is found once, and further
/// findings matching one already found are not held against the detector.
/// Every other finding is a false alert.
pub fn evaluate(
    series: &[Series],
    detect: impl Fn(AggregateId, &[TrendPoint]) -> Vec<Anomaly>,
) -> Report {
    let mut overall = Evaluation::default();
    let mut by_kind: Vec<(Kind, Evaluation)> = Kind::ALL
        .iter()
        .map(|&k| (k, Evaluation::default()))
        .collect();
    let (mut months, mut promotions, mut alerted) = (0.0, 0usize, 0usize);
    let mut false_by_kind = std::collections::BTreeMap::new();
    for s in series {
        if let (Some(first), Some(last)) = (s.trend.first(), s.trend.last()) {
            months += ((last.at - first.at).num_days() as f64 / 30.0).max(1.0 / 30.0);
        }
        let findings = detect(s.item, &s.trend);
        let mut found = vec![false; s.injected.len()];
        for finding in &findings {
            let day = finding.day();
            match s
                .injected
                .iter()
                .position(|inj| matches(finding.kind, day, inj))
            {
                Some(i) if !found[i] => {
                    found[i] = true;
                    overall.true_positives += 1;
                    by_kind
                        .iter_mut()
                        .find(|(k, _)| *k == s.injected[i].kind)
                        .unwrap()
                        .1
                        .true_positives += 1;
                }
                Some(_) => {}
                None => {
                    overall.false_positives += 1;
                    *false_by_kind.entry(finding.kind).or_insert(0usize) += 1;
                }
            }
        }
        for (i, injection) in s.injected.iter().enumerate() {
            if !found[i] {
                overall.missed += 1;
                by_kind
                    .iter_mut()
                    .find(|(k, _)| *k == injection.kind)
                    .unwrap()
                    .1
                    .missed += 1;
            }
        }
        for &(first, last) in &s.promotions {
            promotions += 1;
            if findings
                .iter()
                .any(|f| (first..=last + Duration::days(1)).contains(&f.day()))
            {
                alerted += 1;
            }
        }
    }
    Report {
        overall,
        by_kind,
        false_alerts_per_item_month: if months > 0.0 {
            overall.false_positives as f64 / months
        } else {
            0.0
        },
        promotion_alert_rate: if promotions > 0 {
            alerted as f64 / promotions as f64
        } else {
            0.0
        },
        false_alerts_per_item_year: [
            AnomalyKind::UnusualOutflow,
            AnomalyKind::UnusualInflow,
            AnomalyKind::LevelShift,
            AnomalyKind::NoMovement,
        ]
        .into_iter()
        .map(|kind| {
            let count = false_by_kind.get(&kind).copied().unwrap_or(0) as f64;
            (
                kind,
                if months > 0.0 {
                    count * 12.0 / months
                } else {
                    0.0
                },
            )
        })
        .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histories_look_like_a_warehouses() {
        let series = generate(7, 400, 180);
        assert_eq!(series.len(), 400);
        let mut kinds = std::collections::HashSet::new();
        let (mut promotions, mut announced) = (0, 0);
        for s in &series {
            // Stock never goes negative nor below what is reserved; the item
            // is created empty, then the opening balance arrives.
            assert!(s.trend.iter().all(|p| p.on_hand >= 0 && p.reserved >= 0));
            assert!(s.trend.iter().all(|p| p.reserved <= p.on_hand));
            assert_eq!(s.trend[0].on_hand, 0);
            assert!(s.trend[1].on_hand > 0);
            // Promotions are announced: stock reserved the day before (unless
            // there was none to reserve).
            for &(first, _) in &s.promotions {
                let eve = first - Duration::days(1);
                promotions += 1;
                announced += s
                    .trend
                    .windows(2)
                    .any(|w| w[1].at.date_naive() == eve && w[1].reserved > w[0].reserved)
                    as usize;
            }
            kinds.extend(s.injected.iter().map(|i| i.kind));
        }
        assert_eq!(kinds.len(), 5, "every kind injected: {kinds:?}");
        assert!(
            promotions > 100 && announced * 10 >= promotions * 9,
            "{announced} of {promotions} promotions announced"
        );
        let clean = series.iter().filter(|s| s.injected.is_empty()).count();
        assert!((120..=280).contains(&clean), "about half clean: {clean}");
        assert!(series.iter().any(|s| !s.promotions.is_empty()));
        // A stuck counter records no outflow for 21 days or more.
        for s in &series {
            for inj in s.injected.iter().filter(|i| i.kind == Kind::StuckCounter) {
                assert!(inj.days >= 21);
                let until = inj.day + Duration::days(inj.days);
                let outflows = s.trend.windows(2).filter(|w| {
                    let d = w[1].at.date_naive();
                    d >= inj.day && d < until && w[1].on_hand < w[0].on_hand
                });
                assert_eq!(outflows.count(), 0, "no outflow while stuck");
            }
        }
        // Deterministic.
        let again = generate(7, 400, 180);
        assert_eq!(again[17].trend, series[17].trend);
    }

    #[test]
    fn findings_on_the_injected_days_are_found_and_others_are_false_alerts() {
        let series = generate(3, 200, 180);
        let silent = evaluate(&series, |_, _| Vec::new());
        assert_eq!(silent.overall.true_positives, 0);
        assert_eq!(silent.false_alerts_per_item_month, 0.0);
        assert_eq!(silent.promotion_alert_rate, 0.0);
        let injected: usize = series.iter().map(|s| s.injected.len()).sum();
        assert_eq!(silent.overall.missed, injected);
        // A detector that names every injected day right (but stuck
        // counters, which have no kind yet), plus one false alert per item.
        let by_item: std::collections::HashMap<_, _> = series.iter().map(|s| (s.item, s)).collect();
        let oracle = evaluate(&series, |item, trend| {
            let s = by_item[&item];
            let finding = |kind, day: NaiveDate| Anomaly {
                item,
                kind,
                at: day.and_hms_opt(12, 0, 0).unwrap().and_utc(),
                probability: 1e-9,
                false_alerts_per_year: 1e-7,
                score: 9.0,
                severity: super::super::Severity::High,
                observed: 0.0,
                expected: 0.0,
                explanation: String::new(),
            };
            let mut found: Vec<Anomaly> = s
                .injected
                .iter()
                .filter_map(|i| match i.kind {
                    Kind::Theft => Some(finding(AnomalyKind::UnusualOutflow, i.day)),
                    Kind::KeyingError => Some(finding(AnomalyKind::UnusualInflow, i.day)),
                    Kind::LevelShiftUp | Kind::LevelShiftDown => {
                        Some(finding(AnomalyKind::LevelShift, i.day))
                    }
                    Kind::StuckCounter => None,
                })
                .collect();
            found.push(finding(
                AnomalyKind::UnusualInflow,
                trend[0].at.date_naive(),
            ));
            found
        });
        let stuck: usize = series
            .iter()
            .flat_map(|s| &s.injected)
            .filter(|i| i.kind == Kind::StuckCounter)
            .count();
        assert_eq!(oracle.overall.true_positives, injected - stuck);
        assert_eq!(oracle.overall.missed, stuck);
        assert_eq!(
            oracle.overall.false_positives,
            series.len(),
            "the opening balance is a false alert"
        );
        let (_, theft) = oracle
            .by_kind
            .iter()
            .find(|(k, _)| *k == Kind::Theft)
            .unwrap();
        assert_eq!(theft.recall(), 1.0);
        assert!(
            oracle.false_alerts_per_item_month > 0.15 && oracle.false_alerts_per_item_month < 0.2
        );
        // All of them receipts: the same rate, per year, under that kind only.
        for (kind, rate) in &oracle.false_alerts_per_item_year {
            if *kind == AnomalyKind::UnusualInflow {
                assert!((rate - 12.0 * oracle.false_alerts_per_item_month).abs() < 1e-9);
            } else {
                assert_eq!(*rate, 0.0, "{kind:?}");
            }
        }
    }
}

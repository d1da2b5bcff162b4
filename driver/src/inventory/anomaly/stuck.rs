//! Counters that stopped: a run of days with stock on hand and no outflow,
//! which the four weeks before it make improbable.

use super::detector::{Anomaly, AnomalyKind, DetectorConfig};
use super::TrendPoint;
use crate::ids::AggregateId;
use chrono::{Duration, NaiveDate};
use std::collections::BTreeSet;

/// With `q` the share of the 28 days before a quiet run that had no
/// outflow (one day at least; at most a half, or the item is intermittent
/// and never qualifies), a run of `n` days has probability `q^n`, each day
/// taken as independent. It is reported on the day that, times the 365
/// days a year a run may start on, falls below `max_false_alerts_per_year`, once
/// `n` reaches `quiet_days`, with the probability of the whole run as seen. An item without stock is out of stock, not
/// stuck. The run is measured up to the last point of the trend.
pub(super) fn judge(
    config: &DetectorConfig,
    item: AggregateId,
    trend: &[TrendPoint],
) -> Vec<Anomaly> {
    let quiet = config.quiet_days.max(1);
    let outflow_days: BTreeSet<NaiveDate> = trend
        .windows(2)
        .filter(|pair| pair[1].on_hand < pair[0].on_hand)
        .map(|pair| pair[1].at.date_naive())
        .collect();
    let days: Vec<NaiveDate> = outflow_days.into_iter().collect();
    let Some(last_day) = trend.last().map(|p| p.at.date_naive()) else {
        return Vec::new();
    };
    // A run may start on any day with an outflow.
    // A run may start on any day of the year: a fixed count, so that the
    // day a run is reported on does not move as the history grows (the
    // insight's key holds that day).
    let tests = 365.25;
    let ln_max = config.max_false_alerts_per_year.ln() - f64::ln(tests);
    let mut found = Vec::new();
    for (i, &day) in days.iter().enumerate() {
        let next = days.get(i + 1).copied().unwrap_or(
            last_day
                .checked_add_signed(Duration::days(1))
                .unwrap_or(last_day),
        );
        let gap = (next - day).num_days() - 1;
        if gap < quiet {
            continue;
        }
        let window_start = day
            .checked_sub_signed(Duration::days(27))
            .unwrap_or(NaiveDate::MIN);
        let busy = days[..=i]
            .iter()
            .rev()
            .take_while(|d| **d >= window_start)
            .count();
        if busy < 14 {
            continue;
        }
        let q = ((28 - busy) as f64).max(1.0) / 28.0;
        let needed = ((ln_max / q.ln()).ceil() as i64).max(quiet);
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
        let Some(at) = day
            .checked_add_signed(Duration::days(needed))
            .and_then(|d| d.and_hms_opt(23, 59, 0))
        else {
            continue;
        };
        let ln_p = q.ln() * gap as f64;
        found.push(Anomaly::with_ln_probability(
            item,
            AnomalyKind::NoMovement,
            at.and_utc(),
            ln_p,
            tests,
            0.0,
            busy as f64 / 28.0,
            format!(
                "no outflow for {gap} days with {level} units on hand, after outflows on \
                 {busy} of the 28 days before: probability {:.1e}",
                ln_p.exp()
            ),
        ));
    }
    found
}

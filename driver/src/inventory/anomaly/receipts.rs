//! Receipts judged on a log scale: against the item's other receipts where
//! it has them, and against its outflows always, so that a receipt of
//! years of demand is unusual however few receipts came before. The
//! opening balance (a first receipt before any outflow) is never judged.

use super::count_model::ln_normal_upper_tail;
use super::detector::{median, Anomaly, AnomalyKind, DetectorConfig, Direction, Movement};
use super::TrendPoint;
use crate::ids::AggregateId;

/// Spread of receipts about their usual size, in natural logarithms, at
/// least (part deliveries and reorders to a level make receipts vary).
const MIN_SPREAD: f64 = 0.25;

/// Spread assumed where fewer than three other receipts show it.
const FEW_SPREAD: f64 = 0.4;

/// The unusual receipts of `trend`.
///
/// The usual log size is a normal-normal estimate: a prior at
/// `receipt_cover_days` of the item's outflows per day (with spread
/// `receipt_cover_spread`), and the median of the other receipts with
/// their spread (1.4826 × MAD, at least [`MIN_SPREAD`]). A receipt is
/// unusual when the predictive probability of one at least as large, times
/// the item's receipts a year, falls below `max_false_alerts_per_year`.
pub(super) fn judge(
    config: &DetectorConfig,
    item: AggregateId,
    trend: &[TrendPoint],
    outflows: &[Movement],
    years: f64,
) -> Vec<Anomaly> {
    let receipts = Direction::In.movements(trend);
    // The opening balance: a first receipt before any outflow.
    let opening = match (receipts.first(), outflows.first()) {
        (Some(r), Some(o)) if r.at <= o.at => 1,
        (Some(_), None) => 1,
        _ => 0,
    };
    let receipts = &receipts[opening.min(receipts.len())..];
    // The item's outflows per day, over the whole trend.
    let span_days = match (trend.first(), trend.last()) {
        (Some(a), Some(b)) => ((b.at - a.at).num_seconds() as f64 / 86_400.0).max(1.0),
        _ => 1.0,
    };
    let per_day = outflows.iter().map(|m| m.units).sum::<f64>() / span_days;
    let prior = (per_day > 0.0).then(|| {
        (
            (per_day * config.receipt_cover_days).ln(),
            config.receipt_cover_spread,
        )
    });
    let tests = receipts.len() as f64 / years;
    let ln_max = config.max_false_alerts_per_year.ln() - tests.ln();
    let logs: Vec<f64> = receipts.iter().map(|r| r.units.ln()).collect();
    let mut found = Vec::new();
    for (i, receipt) in receipts.iter().enumerate() {
        let others: Vec<f64> = logs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, l)| *l)
            .collect();
        let n = others.len() as f64;
        if prior.is_none() && others.len() < 3 {
            continue;
        }
        let center = median(&others);
        let spread = if others.len() >= 3 {
            let deviations: Vec<f64> = others.iter().map(|l| (l - center).abs()).collect();
            (1.4826 * median(&deviations)).max(MIN_SPREAD)
        } else {
            FEW_SPREAD
        };
        // Precision-weighted: the prior, and n receipts at `center`.
        let (mut precision, mut weighted) = (n / (spread * spread), n * center / (spread * spread));
        if let Some((m0, tau)) = prior {
            precision += 1.0 / (tau * tau);
            weighted += m0 / (tau * tau);
        }
        let mean = weighted / precision;
        let sd = (spread * spread + 1.0 / precision).sqrt();
        let z = (logs[i] - mean) / sd;
        let ln_p = ln_normal_upper_tail(z);
        if ln_p.is_nan() || ln_p >= ln_max {
            continue;
        }
        let usual = mean.exp();
        found.push(Anomaly::with_ln_probability(
            item,
            AnomalyKind::UnusualInflow,
            receipt.at,
            ln_p,
            tests,
            receipt.units,
            usual,
            format!(
                "{} units arrived on {}, where receipts of about {usual:.0} are usual \
                 ({} other receipts{}): probability {:.1e}",
                receipt.units,
                receipt.at.format("%Y-%m-%d %H:%M UTC"),
                others.len(),
                if per_day > 0.0 {
                    format!(
                        "; {:.0} days of outflows at {per_day:.1} a day",
                        receipt.units / per_day
                    )
                } else {
                    String::new()
                },
                ln_p.exp(),
            ),
        ));
    }
    found
}

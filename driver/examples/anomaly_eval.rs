//! Precision and recall of the inventory anomaly detector against a plain
//! rolling z-score, on two data sets: the first synthetic histories, and
//! the realistic ones (`anomaly::realistic`: integer demand, promotions,
//! intermittent and fast movers, opening balances, part deliveries, stuck
//! counters), where it also reports recall per kind, false alerts per
//! item-month and the alert rate on promotions.
//!
//! ```sh
//! cargo run --release -p forgeerp-infra --example anomaly_eval
//! ```

use forgeerp_infra::anomaly::{
    evaluate, realistic, rolling_zscore, synthetic, AnomalyDetector, DetectorConfig, Evaluation,
};

fn row(name: &str, e: &Evaluation) {
    println!(
        "| {name} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
        e.true_positives,
        e.false_positives,
        e.missed,
        e.precision(),
        e.recall(),
        e.f1()
    );
}

/// Recall per injected kind, in `realistic::Kind::ALL` order.
fn recalls(r: &realistic::Report) -> String {
    let per_kind: Vec<String> = r
        .by_kind
        .iter()
        .map(|(_, e)| format!("{:.2}", e.recall()))
        .collect();
    per_kind.join(" / ")
}

fn main() {
    let detector = AnomalyDetector::default();
    println!("| detector | found (true) | found (false) | missed | precision | recall | F1 |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut series = Vec::new();
    for seed in 1..=5 {
        series.extend(synthetic::generate(seed, 200, 120));
    }
    row(
        "counts (default DetectorConfig)",
        &evaluate(&series, |item, trend| detector.detect_item(item, trend)),
    );
    for window in [14, 28] {
        row(
            &format!("rolling z-score, {window} movements, z > 3"),
            &evaluate(&series, |item, trend| {
                rolling_zscore(item, trend, window, 3.0)
            }),
        );
    }
    let injected: usize = series.iter().map(|s| s.injected.len()).sum();
    println!(
        "\n{} series of 120 days (seeds 1-5), {injected} injected anomalies",
        series.len()
    );

    println!("\n1,000 realistic items of 180 days (anomaly::realistic, seed 1):\n");
    let items = realistic::generate(1, 1000, 180);
    println!("| detector | precision | recall | F1 | false alerts / item-month | promotions alerted | recall: {} |",
        realistic::Kind::ALL.map(|k| k.as_str()).join(" / "));
    println!("|---|---:|---:|---:|---:|---:|---|");
    let report = |name: &str, r: &realistic::Report| {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.3} | {:.2} | {} |",
            r.overall.precision(),
            r.overall.recall(),
            r.overall.f1(),
            r.false_alerts_per_item_month,
            r.promotion_alert_rate,
            recalls(r)
        );
    };
    report(
        "counts (default DetectorConfig)",
        &realistic::evaluate(&items, |item, trend| detector.detect_item(item, trend)),
    );
    let without_spill = AnomalyDetector::new(DetectorConfig {
        announced_spill: 0.0,
        ..DetectorConfig::default()
    });
    report(
        "counts, announced_spill 0",
        &realistic::evaluate(&items, |item, trend| without_spill.detect_item(item, trend)),
    );
    report(
        "rolling z-score, 28 movements, z > 3",
        &realistic::evaluate(&items, |item, trend| rolling_zscore(item, trend, 28, 3.0)),
    );
    let injected: usize = items.iter().map(|s| s.injected.len()).sum();
    let promotions: usize = items.iter().map(|s| s.promotions.len()).sum();
    println!(
        "\n{} items, {injected} injected anomalies, {promotions} promotions",
        items.len()
    );

    println!("\nThe threshold (max_false_alerts_per_year), on both data sets:\n");
    println!("| threshold | realistic: false alerts / item-month | realistic: F1 | recall: {} | first set: F1 |",
        realistic::Kind::ALL.map(|k| k.as_str()).join(" / "));
    println!("|---:|---:|---:|---|---:|");
    for threshold in [1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1] {
        let detector = AnomalyDetector::new(DetectorConfig {
            max_false_alerts_per_year: threshold,
            ..DetectorConfig::default()
        });
        let r = realistic::evaluate(&items, |item, trend| detector.detect_item(item, trend));
        let first = evaluate(&series, |item, trend| detector.detect_item(item, trend));
        println!(
            "| {threshold:e} | {:.3} | {:.2} | {} | {:.2} |",
            r.false_alerts_per_item_month,
            r.overall.f1(),
            recalls(&r),
            first.f1()
        );
    }
    println!("\nCalibration at the default threshold: false alerts per item-year by kind found");
    println!(
        "(each kind is promised at most {} by the model):\n",
        DetectorConfig::default().max_false_alerts_per_year
    );
    println!("| kind | false alerts / item-year |");
    println!("|---|---:|");
    let r = realistic::evaluate(&items, |item, trend| detector.detect_item(item, trend));
    for (kind, rate) in &r.false_alerts_per_item_year {
        println!("| {} | {rate:.3} |", kind.as_str());
    }
    let other = realistic::generate(2, 1000, 180);
    println!("\nAnother draw of the realistic data set (seed 2), default threshold:\n");
    println!("| detector | precision | recall | F1 | false alerts / item-month | promotions alerted | recall per kind |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    report(
        "counts (default DetectorConfig)",
        &realistic::evaluate(&other, |item, trend| detector.detect_item(item, trend)),
    );
}

//! Precision and recall of the inventory anomaly detector against a plain
//! rolling z-score, on the same synthetic histories.
//!
//! ```sh
//! cargo run --release -p forgeerp-infra --example anomaly_eval
//! ```

use forgeerp_infra::anomaly::{evaluate, rolling_zscore, synthetic, AnomalyDetector, Evaluation};

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

fn main() {
    let detector = AnomalyDetector::default();
    println!("| detector | found (true) | found (false) | missed | precision | recall | F1 |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut series = Vec::new();
    for seed in 1..=5 {
        series.extend(synthetic::generate(seed, 200, 120));
    }
    row(
        "robust (median/MAD, weekday-adjusted, shifts)",
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
}

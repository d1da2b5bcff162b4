//! `forgeerp stats`: what is in the store and how far behind the readers are.

use crate::connect::connect;
use crate::error::CliError;
use tokio_postgres::error::SqlState;

/// Prints streams, events, tenants, the feed's head and hold-back, each
/// projection's checkpoint and lag, parked events and the notification
/// queue's usage. Counts are the planner's estimates (instant at any size,
/// labelled as such) unless `exact`, which scans the events.
pub async fn run(url: &str, exact: bool) -> Result<(), CliError> {
    let store = connect(url, 1).await?;
    let client = store.pool().get().await?;
    let counts = if exact {
        include_str!("../sql/stats_exact_counts.sql")
    } else {
        include_str!("../sql/stats_estimated_counts.sql")
    };
    let label = if exact { "" } else { " (estimate)" };
    let totals = client
        .query_one(counts, &[])
        .await
        .map_err(|e| match e.code() {
            Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => CliError::failed(
                "stats reads forgeerp.events directly: connect as its owner or a superuser",
            ),
            _ => CliError::from(e),
        })?;
    let (tenants, streams, events): (i64, i64, i64) = (totals.get(0), totals.get(1), totals.get(2));
    let head = client
        .query_opt(
            "SELECT transaction_id, global_position FROM forgeerp.events ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
            &[],
        )
        .await?
        .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)));
    let holdback: i64 = client
        .query_one("SELECT count(*) FROM forgeerp.feed_holdback", &[])
        .await?
        .get(0);
    let queue: f64 = client
        .query_one("SELECT pg_notification_queue_usage()", &[])
        .await?
        .get(0);
    println!("tenants              {tenants}{label}");
    println!("streams              {streams}{label}");
    println!("events               {events}{label}");
    match head {
        Some((t, p)) => println!("feed head            {t}:{p}"),
        None => println!("feed head            (empty)"),
    }
    println!("open write transactions holding the feed back  {holdback}");
    println!("notification queue   {:.4}% used", queue * 100.0);

    let has_read_models: bool = client
        .query_one(
            "SELECT to_regclass('forgeerp_read.checkpoints') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !has_read_models {
        println!("projections          (none: no read models in this database)");
        return Ok(());
    }
    let lags = if exact {
        include_str!("../sql/stats_exact_lags.sql")
    } else {
        include_str!("../sql/stats_estimated_lags.sql")
    };
    let checkpoints = client.query(lags, &[]).await?;
    println!("projections");
    for row in &checkpoints {
        let (name, tenant, t, p, lag): (String, String, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(5));
        let updated: chrono::DateTime<chrono::Utc> = row.get(4);
        println!(
            "  {name} [{tenant}]  at {t}:{p}  lag {lag} event(s){label}  updated {}",
            updated.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    let parked: i64 = client
        .query_one("SELECT count(*) FROM forgeerp_read.parked_events", &[])
        .await?
        .get(0);
    println!("parked events        {parked}");
    Ok(())
}

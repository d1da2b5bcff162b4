//! `forgeerp stats`: what is in the store and how far behind the readers are.

use crate::connect::{connect, Database};
use crate::error::CliError;
use tokio_postgres::error::SqlState;

/// Prints streams, events, tenants, the feed's head and hold-back, each
/// projection's checkpoint and lag, parked events and the notification
/// queue's usage. Counts are the planner's estimates (instant at any size,
/// labelled as such) unless `exact`, which scans the events.
/// With `json`, one JSON object on one line instead (counts, `estimated`,
/// `feed_head`, `holdback`, `notification_queue_used`, `projections`,
/// `parked_events`).
pub async fn run(db: &Database, exact: bool, json: bool) -> Result<(), CliError> {
    let store = connect(db, 1).await?;
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
    let has_read_models: bool = client
        .query_one(
            "SELECT to_regclass('forgeerp_read.checkpoints') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    let mut projections = Vec::new();
    let mut parked = None;
    if has_read_models {
        let lags = if exact {
            include_str!("../sql/stats_exact_lags.sql")
        } else {
            include_str!("../sql/stats_estimated_lags.sql")
        };
        for row in client.query(lags, &[]).await? {
            let updated: chrono::DateTime<chrono::Utc> = row.get(4);
            projections.push(Projection {
                name: row.get(0),
                tenant: row.get(1),
                at: (row.get(2), row.get(3)),
                updated,
                lag: row.get(5),
            });
        }
        let count: i64 = client
            .query_one("SELECT count(*) FROM forgeerp_read.parked_events", &[])
            .await?
            .get(0);
        parked = Some(count);
    }
    if json {
        let value = serde_json::json!({
            "tenants": tenants,
            "streams": streams,
            "events": events,
            "estimated": !exact,
            "feed_head": head.map(|(t, p)| format!("{t}:{p}")),
            "holdback": holdback,
            "notification_queue_used": queue,
            "projections": projections.iter().map(|p| serde_json::json!({
                "projection": p.name,
                "tenant": p.tenant,
                "checkpoint": format!("{}:{}", p.at.0, p.at.1),
                "lag_events": p.lag,
                "updated_at": p.updated.to_rfc3339(),
            })).collect::<Vec<_>>(),
            "parked_events": parked,
        });
        println!("{value}");
        return Ok(());
    }
    println!("tenants              {tenants}{label}");
    println!("streams              {streams}{label}");
    println!("events               {events}{label}");
    match head {
        Some((t, p)) => println!("feed head            {t}:{p}"),
        None => println!("feed head            (empty)"),
    }
    println!("open write transactions holding the feed back  {holdback}");
    println!("notification queue   {:.4}% used", queue * 100.0);
    let Some(parked) = parked else {
        println!("projections          (none: no read models in this database)");
        return Ok(());
    };
    println!("projections");
    for p in &projections {
        println!(
            "  {} [{}]  at {}:{}  lag {} event(s){label}  updated {}",
            p.name,
            p.tenant,
            p.at.0,
            p.at.1,
            p.lag,
            p.updated.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    println!("parked events        {parked}");
    Ok(())
}

/// One projection's checkpoint row.
struct Projection {
    name: String,
    tenant: String,
    at: (i64, i64),
    updated: chrono::DateTime<chrono::Utc>,
    lag: i64,
}

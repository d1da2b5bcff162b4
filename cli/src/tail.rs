//! `forgeerp tail`: follows the feed live through `PgNotifyEventBus`,
//! resumable from a checkpoint file. It says on stderr when it loses and
//! regains its connection, and gives up (exit 1) when the database stays
//! unreachable.

use crate::connect::{connect, Database};
use crate::error::CliError;
use crate::streams::print_event;
use forgeerp_infra::event_bus::Subscription;
use forgeerp_infra::{FeedPosition, Link, SubscriptionConfig, TenantId};
use std::path::PathBuf;
use std::time::Duration;

/// Where `tail` starts.
#[derive(Clone, Copy, Debug)]
pub enum Start {
    /// After the checkpoint file's position, or at the feed's start.
    Beginning,
    /// After this position.
    After(FeedPosition),
    /// With what commits from now on.
    Now,
}

/// Prints events after the start as they commit, until `limit` events,
/// Ctrl-C, or the database is gone for good: no connection for
/// `give_up_after`.
pub async fn run(
    db: &Database,
    tenant: Option<TenantId>,
    start: Start,
    checkpoint: Option<PathBuf>,
    limit: Option<u64>,
    give_up_after: Duration,
) -> Result<(), CliError> {
    let saved =
        match &checkpoint {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    CliError::failed(format!(
                        "cannot read the checkpoint {}: {e}",
                        path.display()
                    ))
                })?;
                Some(text.trim().parse::<FeedPosition>().map_err(|e| {
                    CliError::usage(format!("the checkpoint {}: {e}", path.display()))
                })?)
            }
            _ => None,
        };
    let store = connect(db, 1).await?; // the clear errors, before following
    let from = match start {
        Start::After(after) => after,
        Start::Beginning => saved.unwrap_or_default(),
        Start::Now => now(&store).await?,
    };
    let personal = crate::personal::from_env(&store)?;
    let bus = db.bus().with_config(SubscriptionConfig {
        give_up_after: Some(give_up_after),
        ..SubscriptionConfig::default()
    });
    let mut subscription = bus.follow(from, tenant);
    let reporter = tokio::spawn(report_link(subscription.link(), db.settings.describe()));
    let mut printed = 0;
    while limit.is_none_or(|limit| printed < limit) {
        let event = tokio::select! {
            event = subscription.recv() => event,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(event) = event else {
            break;
        };
        let position = event.position();
        for event in crate::personal::opened(personal.as_ref(), vec![event]).await? {
            print_event(event)?;
        }
        printed += 1;
        if let Some(path) = &checkpoint {
            std::fs::write(path, format!("{position}\n")).map_err(|e| {
                CliError::failed(format!(
                    "cannot write the checkpoint {}: {e}",
                    path.display()
                ))
            })?;
        }
    }
    let link = subscription.link().borrow().clone();
    subscription.close().await;
    reporter.abort();
    match link {
        Link::GaveUp(why) => Err(CliError::failed(format!(
            "the database at {} is gone: no connection for {} s ({why})",
            db.settings.describe(),
            give_up_after.as_secs()
        ))),
        _ => Ok(()),
    }
}

/// The position just before everything not yet committed: every event of a
/// transaction below the current snapshot's xmin has been committed (or
/// never will be), and the feed returns only events after the cursor, so
/// the cursor (xmin - 1, ∞) skips exactly the past. Uses only built-ins,
/// which any role may call.
pub async fn now(store: &forgeerp_infra::PgEventStore) -> Result<FeedPosition, CliError> {
    let client = store.pool().get().await?;
    let xmin: i64 = client
        .query_one(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
            &[],
        )
        .await?
        .get(0);
    Ok(FeedPosition {
        transaction_id: xmin - 1,
        global_position: i64::MAX,
    })
}

/// Says on stderr when the connection is lost and when it is back.
async fn report_link(mut link: tokio::sync::watch::Receiver<Link>, place: String) {
    let mut was_lost = false;
    while link.changed().await.is_ok() {
        let state = link.borrow_and_update().clone();
        match state {
            Link::Lost(why) if !was_lost => {
                was_lost = true;
                eprintln!("forgeerp: lost the connection to {place} ({why}); reconnecting");
            }
            Link::Connected if was_lost => {
                was_lost = false;
                eprintln!("forgeerp: connected again to {place}");
            }
            _ => {}
        }
    }
}

//! `forgeerp tail`: follows the feed live through `PgNotifyEventBus`,
//! resumable from a checkpoint file.

use crate::connect::connect;
use crate::error::CliError;
use crate::streams::print_event;
use forgeerp_infra::event_bus::Subscription;
use forgeerp_infra::{EventBus, FeedPosition, PgNotifyEventBus, TenantId};
use std::path::PathBuf;

/// Prints events after `after` (or the checkpoint file's position, or the
/// start) as they commit, until `limit` events or Ctrl-C.
pub async fn run(
    url: &str,
    tenant: Option<TenantId>,
    after: Option<FeedPosition>,
    checkpoint: Option<PathBuf>,
    limit: Option<u64>,
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
    let from = after.or(saved).unwrap_or_default();
    connect(url, 1).await?; // the clear errors, before following
    let bus = PgNotifyEventBus::new(url);
    let mut subscription = bus
        .subscribe(from, tenant)
        .await
        .map_err(|e| CliError::failed(format!("cannot follow the feed: {e}")))?;
    let mut printed = 0;
    while limit.is_none_or(|limit| printed < limit) {
        let event = tokio::select! {
            event = subscription.recv() => event,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(event) = event else { break };
        print_event(&event);
        printed += 1;
        if let Some(path) = &checkpoint {
            std::fs::write(path, format!("{}\n", event.position())).map_err(|e| {
                CliError::failed(format!(
                    "cannot write the checkpoint {}: {e}",
                    path.display()
                ))
            })?;
        }
    }
    subscription.close().await;
    Ok(())
}

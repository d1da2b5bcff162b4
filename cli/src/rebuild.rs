//! `forgeerp rebuild`: the inventory stock projection of one tenant or all,
//! from the events, with a progress bar; the checkpoints move with it, so
//! `stats` shows where the rebuilt projection is.

use crate::connect::{connect, Database};
use crate::error::CliError;
use forgeerp_infra::{InventoryStockProjection, TenantId};
use indicatif::{ProgressBar, ProgressStyle};

/// Rebuilds `tenant`'s stock projection, or every tenant's when None.
pub async fn run(db: &Database, tenant: Option<TenantId>) -> Result<(), CliError> {
    let store = connect(db, 2).await?;
    forgeerp_infra::migrate(store.pool()).await?;
    let personal = crate::personal::from_env(&store)?;
    let tenants = match tenant {
        Some(tenant) => vec![tenant],
        None => {
            let client = store.pool().get().await?;
            client
                .query("SELECT DISTINCT tenant_id FROM forgeerp.events ORDER BY 1", &[])
                .await
                .map_err(|e| match e.code() {
                    Some(c) if *c == tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE => {
                        CliError::failed("listing every tenant needs the table owner or a superuser; pass --tenant instead")
                    }
                    _ => CliError::from(e),
                })?
                .iter()
                .map(|row| TenantId::new(row.get(0)).map_err(|e| CliError::failed(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    // For --all: the workers of every tenant go on from here afterwards.
    // Everything committed before it is in every tenant's rebuild below;
    // what commits later may be applied again, which the projection's
    // sequence check makes harmless.
    let start = match tenant {
        Some(_) => None,
        None => Some(crate::tail::now(&store).await?),
    };
    let bar = ProgressBar::new(tenants.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tenants, {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut events = 0;
    for tenant in &tenants {
        events +=
            InventoryStockProjection::rebuild_tenant_with(store.pool(), *tenant, personal.as_ref())
                .await?;
        bar.set_message(format!("{events} events"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(start) = start {
        let mut client = store.pool().get().await?;
        let tx = client.transaction().await?;
        forgeerp_infra::ProjectionWorker::reset_checkpoints(&tx, "inventory_stock", None, start)
            .await?;
        tx.commit().await?;
    }
    println!(
        "rebuilt inventory_stock: {} tenant(s), {events} event(s) replayed",
        tenants.len()
    );
    Ok(())
}

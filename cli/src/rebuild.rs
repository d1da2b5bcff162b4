//! `forgeerp rebuild`: the inventory stock projection of one tenant or all,
//! from the events, with a progress bar.

use crate::connect::connect;
use crate::error::CliError;
use forgeerp_infra::{InventoryStockProjection, TenantId};
use indicatif::{ProgressBar, ProgressStyle};

/// Rebuilds `tenant`'s stock projection, or every tenant's when None.
pub async fn run(url: &str, tenant: Option<TenantId>) -> Result<(), CliError> {
    let store = connect(url, 2).await?;
    forgeerp_infra::migrate(store.pool()).await?;
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
    let bar = ProgressBar::new(tenants.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tenants, {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut events = 0;
    for tenant in &tenants {
        events += InventoryStockProjection::rebuild_tenant(store.pool(), *tenant).await?;
        bar.set_message(format!("{events} events"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "rebuilt inventory_stock: {} tenant(s), {events} event(s) replayed",
        tenants.len()
    );
    Ok(())
}

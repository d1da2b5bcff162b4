//! `InventoryStockReader`: the read side of the stock projection for AI
//! jobs, every item's stock and history as one [`InventorySnapshot`].

use super::anomaly::{InventorySnapshot, ItemSnapshot, TrendPoint};
use super::stock_projection::{StockLevel, MODEL};
use crate::ids::{AggregateId, TenantId};
use crate::read_model::tenant_store::ReadModelError;
use crate::read_model::ReadModelReader;
use crate::tenant_binding::{begin_bound, Access};
use chrono::Utc;
use deadpool_postgres::Pool;

/// Reads [`InventorySnapshot`]s of the stock projection for AI jobs: every
/// item's current stock and its whole history, in one tenant-bound
/// transaction (one consistent view).
#[derive(Clone)]
pub struct InventoryStockReader {
    pool: Pool,
}

impl InventoryStockReader {
    /// A reader over the read models in `pool`'s database.
    pub fn new(pool: Pool) -> Self {
        InventoryStockReader { pool }
    }
}

impl ReadModelReader<InventorySnapshot> for InventoryStockReader {
    async fn snapshot(&self, tenant_id: TenantId) -> Result<InventorySnapshot, ReadModelError> {
        let mut client = self.pool.get().await?;
        // One consistent view of levels and history, bound to the tenant.
        let tx = begin_bound(&mut client, tenant_id, Access::Snapshot).await?;
        let levels = tx
            .query(
                include_str!("../../sql/inventory/stock_levels_of_tenant.sql"),
                &[&MODEL, &tenant_id.as_uuid()],
            )
            .await?;
        let points = tx
            .query(
                include_str!("../../sql/inventory/stock_history_of_tenant.sql"),
                &[&tenant_id.as_uuid()],
            )
            .await?;
        tx.commit().await?;
        let mut trends: std::collections::HashMap<uuid::Uuid, Vec<TrendPoint>> =
            std::collections::HashMap::new();
        for row in &points {
            trends.entry(row.get(0)).or_default().push(TrendPoint {
                at: row.get(1),
                on_hand: row.get(2),
                reserved: row.get(3),
            });
        }
        let items = levels
            .iter()
            .map(|row| {
                let key: String = row.get(0);
                let item: AggregateId = key
                    .parse()
                    .map_err(|e| ReadModelError::Decode(format!("item key {key:?}: {e}")))?;
                let level: StockLevel = serde_json::from_value(row.get(1))
                    .map_err(|e| ReadModelError::Decode(e.to_string()))?;
                Ok(ItemSnapshot {
                    item,
                    sku: level.sku,
                    name: level.name,
                    on_hand: level.on_hand,
                    reserved: level.reserved,
                    available: level.available,
                    historical_trend: trends.remove(&item.as_uuid()).unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, ReadModelError>>()?;
        Ok(InventorySnapshot {
            tenant_id,
            taken_at: Utc::now(),
            items,
        })
    }
}

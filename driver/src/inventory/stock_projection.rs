//! `InventoryStockProjection`: current stock per item per tenant, and the
//! history of stock levels (for the anomaly detector).
//!
//! The state of an item is the `InventoryItem` aggregate itself, rebuilt event
//! by event with the aggregate's own `apply`, so the projection and the write
//! side can never disagree about what an event means. Per (tenant, item) the
//! last applied sequence number is kept: a duplicate is ignored, and a gap is
//! healed by reading the missing events from the stream, never applied out of
//! order. AI jobs read it through [`super::stock_reader`].

use crate::aggregate::Aggregate;
use crate::event::{DomainEvent, FeedPosition, StoredEvent};
use crate::event_store::postgres::{row_to_event, FeedPage};
use crate::ids::{AggregateId, TenantId};
use crate::inventory::{InventoryEvent, InventoryItem};
use crate::personal_data::PersonalData;
use crate::read_model::tenant_store::{PgTenantStore, ReadModelError, TenantStore};
use crate::tenant_binding::{begin_bound, query_bound, Access};
use crate::workers::projection_worker::{PgProjection, ProjectionError, ProjectionWorker};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};

/// The read model's name (its rows in `forgeerp_read.entries`).
pub const MODEL: &str = "inventory_stock";

/// Events per page of a rebuild's replay; a shorter page is the last.
const REBUILD_PAGE: usize = 1000;

/// The stock of one item as the projection keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    /// The item's SKU.
    pub sku: Option<String>,
    /// The item's name.
    pub name: String,
    /// Units in the warehouse.
    pub on_hand: i64,
    /// Units set aside.
    pub reserved: i64,
    /// `on_hand - reserved`.
    pub available: i64,
    /// No more movements.
    pub discontinued: bool,
    /// The last sequence number applied.
    pub last_sequence: u64,
}

impl StockLevel {
    fn from_item(item: &InventoryItem, last_sequence: u64) -> Self {
        StockLevel {
            sku: item.sku.clone(),
            name: item.name.clone(),
            on_hand: item.on_hand,
            reserved: item.reserved,
            available: item.available(),
            discontinued: item.discontinued,
            last_sequence,
        }
    }

    fn to_item(&self) -> InventoryItem {
        InventoryItem {
            sku: self.sku.clone(),
            name: self.name.clone(),
            on_hand: self.on_hand,
            reserved: self.reserved,
            discontinued: self.discontinued,
        }
    }
}

/// One point of an item's stock history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockPoint {
    /// The event that set this level.
    pub sequence_number: u64,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Units on hand after it.
    pub on_hand: i64,
    /// Units reserved after it.
    pub reserved: i64,
}

/// The history points of a batch as runs, one per item: consecutive points
/// stored side by side, so each run is a slice of the flat arrays.
#[derive(Default)]
struct HistoryRuns {
    /// Run index by item.
    by_item: std::collections::HashMap<uuid::Uuid, usize>,
    /// Per run: item, first sequence number, its points.
    items: Vec<uuid::Uuid>,
    first: Vec<i64>,
    points: Vec<Vec<(DateTime<Utc>, i64, i64)>>,
}

impl HistoryRuns {
    /// Adds the level `event` produced; the caller applies an item's events
    /// consecutively.
    fn push(&mut self, event: &StoredEvent, level: &StockLevel) {
        let item = event.aggregate_id.as_uuid();
        let run = *self.by_item.entry(item).or_insert_with(|| {
            self.items.push(item);
            self.first.push(event.sequence_number as i64);
            self.points.push(Vec::new());
            self.items.len() - 1
        });
        self.points[run].push((event.occurred_at, level.on_hand, level.reserved));
    }

    /// Writes the runs in one statement: per run, its item, first sequence,
    /// length and offset into the flat columns.
    async fn insert(
        self,
        tx: &tokio_postgres::Transaction<'_>,
        tenant: uuid::Uuid,
    ) -> Result<(), tokio_postgres::Error> {
        let (mut lengths, mut offsets) = (Vec::new(), Vec::new());
        let (mut occurred_at, mut on_hand, mut reserved) = (Vec::new(), Vec::new(), Vec::new());
        for points in &self.points {
            offsets.push(occurred_at.len() as i32 + 1);
            lengths.push(points.len() as i32);
            for (at, hand, held) in points {
                occurred_at.push(*at);
                on_hand.push(*hand);
                reserved.push(*held);
            }
        }
        tx.execute(
            include_str!("../../sql/inventory/stock_history_insert_runs.sql"),
            &[
                &tenant,
                &self.items,
                &self.first,
                &lengths,
                &offsets,
                &occurred_at,
                &on_hand,
                &reserved,
            ],
        )
        .await?;
        Ok(())
    }
}

/// The inventory event inside `event`, at its current version
/// ([`crate::inventory::upcasters`]; every event this projection decodes,
/// those it reads itself to heal a gap included), or why not: a version newer
/// than the inventory knows is an error, never a misread.
fn decode(event: &StoredEvent) -> Result<InventoryEvent, ProjectionError> {
    static UPCASTERS: std::sync::OnceLock<crate::upcasting::Upcasters> = std::sync::OnceLock::new();
    let current = UPCASTERS
        .get_or_init(crate::inventory::upcasters)
        .current(event)?;
    InventoryEvent::from_payload(&current.event_type, &current.payload).map_err(|e| {
        ProjectionError::Decode(format!("{} ({}): {e}", event.event_type, event.event_id))
    })
}

/// The inventory stock read model.
#[derive(Clone, Copy, Debug, Default)]
pub struct InventoryStockProjection;

impl InventoryStockProjection {
    /// Current stock of every item of `tenant_id`.
    pub async fn stock(
        pool: &Pool,
        tenant_id: TenantId,
    ) -> Result<Vec<(AggregateId, StockLevel)>, ReadModelError> {
        PgTenantStore::<AggregateId, StockLevel>::new(pool.clone(), MODEL)
            .list(tenant_id)
            .await
    }

    /// The stock history of one item, oldest first.
    pub async fn history(
        pool: &Pool,
        tenant_id: TenantId,
        item: AggregateId,
    ) -> Result<Vec<StockPoint>, ReadModelError> {
        let rows: Vec<tokio_postgres::Row> = query_bound::<ReadModelError>(
            pool,
            tenant_id,
            include_str!("../../sql/inventory/stock_history_of_item.sql"),
            &[&tenant_id.as_uuid(), &item.as_uuid()],
        )
        .await?;
        Ok(rows
            .iter()
            .map(|r| StockPoint {
                sequence_number: r.get::<_, i64>(0) as u64,
                occurred_at: r.get(1),
                on_hand: r.get(2),
                reserved: r.get(3),
            })
            .collect())
    }

    /// Throws away `tenant_id`'s stock and history and replays its events:
    /// the result equals what the live projection built. Its anomaly
    /// insights take their items' names from the rebuilt stock. The tenant's
    /// checkpoints move to the last event replayed, in the same transaction.
    /// Returns the events applied; an event that cannot be applied is
    /// [`ProjectionError::CannotApply`], naming it, and changes nothing.
    pub async fn rebuild_tenant(pool: &Pool, tenant_id: TenantId) -> Result<u64, ProjectionError> {
        Self::rebuild_tenant_with(pool, tenant_id, None).await
    }

    /// [`Self::rebuild_tenant`], opening sealed personal fields with
    /// `personal_data` first (as a worker with it does): after a subject is
    /// forgotten, the rebuilt read model holds [`crate::personal_data::FORGOTTEN`]
    /// where it held the subject's data.
    pub async fn rebuild_tenant_with(
        pool: &Pool,
        tenant_id: TenantId,
        personal_data: Option<&PersonalData>,
    ) -> Result<u64, ProjectionError> {
        let mut client = pool.get().await?;
        let tx = begin_bound(&mut client, tenant_id, Access::ReadWrite).await?;
        tx.execute(
            include_str!("../../sql/inventory/stock_levels_delete_tenant.sql"),
            &[&MODEL, &tenant_id.as_uuid()],
        )
        .await?;
        tx.execute(
            include_str!("../../sql/inventory/stock_history_delete_tenant.sql"),
            &[&tenant_id.as_uuid()],
        )
        .await?;
        let mut after = FeedPosition::default();
        let mut applied = 0;
        loop {
            let page = FeedPage::new(after, REBUILD_PAGE, Some(tenant_id));
            let rows = tx.query(page.statement(), &page.params()).await?;
            let events = rows
                .iter()
                .map(row_to_event)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ProjectionError::Decode(e.to_string()))?;
            if let Some(last) = events.last() {
                after = last.position();
            }
            let events = match personal_data {
                Some(personal) => personal.open(events).await?,
                None => events,
            };
            // The page as one batch; where it cannot be (a stream's events out
            // of feed order), event by event, which heals the gap.
            tx.batch_execute("SAVEPOINT page").await?;
            if InventoryStockProjection
                .apply_batch(&tx, &events)
                .await
                .is_err()
            {
                tx.batch_execute("ROLLBACK TO SAVEPOINT page").await?;
                for event in &events {
                    InventoryStockProjection
                        .apply(&tx, event)
                        .await
                        .map_err(|e| ProjectionError::CannotApply {
                            tenant_id: event.tenant_id,
                            aggregate_id: event.aggregate_id,
                            sequence_number: event.sequence_number,
                            reason: e.to_string(),
                        })?;
                }
            }
            applied += events.len() as u64;
            if rows.len() < REBUILD_PAGE {
                break;
            }
        }
        tx.execute(
            include_str!("../../sql/inventory/insights_rename_from_stock.sql"),
            &[&MODEL, &tenant_id.as_uuid()],
        )
        .await?;
        // Workers of this tenant go on from where the rebuild read to.
        ProjectionWorker::reset_checkpoints(&tx, MODEL, Some(tenant_id), after).await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// Applies one event whose predecessors are applied.
    async fn apply_next(
        tx: &tokio_postgres::Transaction<'_>,
        event: &StoredEvent,
        level: &StockLevel,
    ) -> Result<StockLevel, ProjectionError> {
        let next = StockLevel::from_item(
            &level.to_item().apply(&decode(event)?),
            event.sequence_number,
        );
        let mut run = HistoryRuns::default();
        run.push(event, &next);
        run.insert(tx, event.tenant_id.as_uuid()).await?;
        Ok(next)
    }
}

impl PgProjection for InventoryStockProjection {
    fn name(&self) -> &str {
        MODEL
    }

    /// A run of one tenant's events in three statements: read the items'
    /// levels, fold the events in memory, then write the levels and one
    /// history run per item, pipelined.
    /// A gap anywhere sends the run back to `apply`, which heals it.
    async fn apply_batch(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let events: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| e.aggregate_type == InventoryItem::AGGREGATE_TYPE)
            .collect();
        let Some(first) = events.first() else {
            return Ok(());
        };
        let tenant = first.tenant_id.as_uuid();
        let mut keys: Vec<String> = events.iter().map(|e| e.aggregate_id.to_string()).collect();
        keys.sort();
        keys.dedup();
        let rows = tx
            .query(
                include_str!("../../sql/inventory/stock_levels_lock.sql"),
                &[&MODEL, &tenant, &keys],
            )
            .await?;
        let mut levels: std::collections::HashMap<String, StockLevel> =
            std::collections::HashMap::new();
        for row in rows {
            let level = serde_json::from_value(row.get(1))
                .map_err(|e| ProjectionError::Decode(e.to_string()))?;
            levels.insert(row.get(0), level);
        }
        let mut history = HistoryRuns::default();
        for event in events {
            let key = event.aggregate_id.to_string();
            let level = levels.entry(key).or_default();
            if event.sequence_number <= level.last_sequence {
                continue; // a duplicate delivery
            }
            if event.sequence_number > level.last_sequence + 1 {
                return Err(ProjectionError::Decode(format!(
                    "gap before sequence {} of {}: heal one by one",
                    event.sequence_number, event.aggregate_id
                )));
            }
            let decoded = decode(event)?;
            *level = StockLevel::from_item(&level.to_item().apply(&decoded), event.sequence_number);
            history.push(event, level);
        }
        let (keys, values): (Vec<String>, Vec<serde_json::Value>) = levels
            .into_iter()
            .map(|(key, level)| {
                Ok((
                    key,
                    serde_json::to_value(level)
                        .map_err(|e| ProjectionError::Decode(e.to_string()))?,
                ))
            })
            .collect::<Result<Vec<_>, ProjectionError>>()?
            .into_iter()
            .unzip();
        // Both writes in one round trip (tokio-postgres pipelines them, in order).
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&MODEL, &tenant, &keys, &values];
        let levels = tx.execute(
            include_str!("../../sql/inventory/stock_levels_upsert.sql"),
            &params,
        );
        tokio::try_join!(levels, history.insert(tx, tenant))?;
        Ok(())
    }

    async fn apply(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        if event.aggregate_type != InventoryItem::AGGREGATE_TYPE {
            return Ok(());
        }
        let (tenant, item, key) = (
            event.tenant_id.as_uuid(),
            event.aggregate_id.as_uuid(),
            event.aggregate_id.to_string(),
        );
        let row = tx
            .query_opt(
                include_str!("../../sql/inventory/stock_level_lock.sql"),
                &[&MODEL, &tenant, &key],
            )
            .await?;
        let mut level: StockLevel = match row {
            Some(row) => serde_json::from_value(row.get(0))
                .map_err(|e| ProjectionError::Decode(e.to_string()))?,
            None => StockLevel::default(),
        };
        if event.sequence_number <= level.last_sequence {
            return Ok(()); // a duplicate delivery
        }
        if event.sequence_number > level.last_sequence + 1 {
            // A gap: read the missing events from the stream, in order.
            let missing = (event.sequence_number - level.last_sequence - 1) as i32;
            let rows = tx
                .query(
                    include_str!("../../sql/inventory/stream_missing_events.sql"),
                    &[&tenant, &item, &(level.last_sequence as i64 + 1), &missing],
                )
                .await?;
            for row in &rows {
                let earlier =
                    row_to_event(row).map_err(|e| ProjectionError::Decode(e.to_string()))?;
                level = Self::apply_next(tx, &earlier, &level).await?;
            }
            if level.last_sequence + 1 != event.sequence_number {
                return Err(ProjectionError::Decode(format!(
                    "stream {} of tenant {} has no events {}..{}",
                    event.aggregate_id,
                    event.tenant_id,
                    level.last_sequence + 1,
                    event.sequence_number - 1
                )));
            }
        }
        level = Self::apply_next(tx, event, &level).await?;
        let value =
            serde_json::to_value(&level).map_err(|e| ProjectionError::Decode(e.to_string()))?;
        tx.execute(
            include_str!("../../sql/inventory/stock_level_upsert.sql"),
            &[&MODEL, &tenant, &key, &value],
        )
        .await?;
        Ok(())
    }
}

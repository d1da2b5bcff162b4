//! Snapshots in `forgeerp_read.snapshots` (migration 6), isolated by tenant
//! with row-level security: every read and write is bound to the
//! snapshot's tenant.
//!
//! The snapshot is read together with the stream's events after it
//! ([`SnapshotStore::load_with_tail`]), from this store's database, which
//! must be the event store's: in one REPEATABLE READ transaction, so both
//! come from one view of the data, its requests pipelined. Each other read
//! and each write is one round trip too: one simple-protocol request
//! of two statements, `forgeerp.bind_tenant` then the statement, which
//! PostgreSQL runs as one implicit transaction (so the binding holds for the
//! statement and ends with it, and an error rolls both back). The values are
//! inlined as quoted literals: uuids and numbers by their own text, the
//! aggregate type and the state with their quotes doubled.

use super::{Snapshot, SnapshotError, SnapshotStore};
use crate::event::StoredEvent;
use crate::ids::{AggregateId, TenantId};
use crate::tenant_binding::{inline, simple_bound, sql_literal};
use deadpool_postgres::Pool;
use tokio_postgres::SimpleQueryMessage;

/// Snapshots in the driver's tables of one database.
#[derive(Clone)]
pub struct PgSnapshotStore {
    pool: Pool,
}

impl PgSnapshotStore {
    /// The store over `pool` (run [`crate::migrate`] first).
    pub fn new(pool: Pool) -> Self {
        PgSnapshotStore { pool }
    }

    /// `statement` run bound to `tenant_id`, in one round trip.
    async fn bound(
        &self,
        tenant_id: TenantId,
        statement: String,
    ) -> Result<Vec<SimpleQueryMessage>, SnapshotError> {
        let client = self.pool.get().await?;
        Ok(simple_bound(&client, tenant_id, &statement).await?)
    }
}

/// `text` as an SQL string literal.
fn literal(text: &str) -> Result<String, SnapshotError> {
    sql_literal(text).ok_or_else(|| SnapshotError("a snapshot cannot hold a NUL character".into()))
}

impl SnapshotStore for PgSnapshotStore {
    async fn load(
        &self,
        tenant_id: TenantId,
        aggregate_type: &str,
        aggregate_id: AggregateId,
        state_version: u32,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        let statement = inline(
            include_str!("../../sql/snapshots/load.sql"),
            &[
                literal(&tenant_id.to_string())?,
                literal(aggregate_type)?,
                literal(&aggregate_id.to_string())?,
                state_version.to_string(),
            ],
        );
        for message in self.bound(tenant_id, statement).await? {
            let SimpleQueryMessage::Row(row) = message else {
                continue;
            };
            if row.columns().first().map(|c| c.name()) != Some("stream_version") {
                continue; // bind_tenant's row
            }
            let bad = |what: &str| SnapshotError(format!("a snapshot row with a bad {what}"));
            let stream_version: u64 = row
                .get(0)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad("stream_version"))?;
            let state = row
                .get(1)
                .and_then(|v| serde_json::from_str(v).ok())
                .ok_or_else(|| bad("state"))?;
            return Ok(Some(Snapshot {
                tenant_id,
                aggregate_type: aggregate_type.to_string(),
                aggregate_id,
                state_version,
                stream_version,
                state,
            }));
        }
        Ok(None)
    }

    /// Both reads in one REPEATABLE READ transaction bound to the tenant,
    /// its five requests pipelined (sent before any answer is awaited): one
    /// round trip, with the events in binary like every other load.
    async fn load_with_tail(
        &self,
        tenant_id: TenantId,
        aggregate_type: &str,
        aggregate_id: AggregateId,
        state_version: u32,
    ) -> Result<(Option<Snapshot>, Option<Vec<StoredEvent>>), SnapshotError> {
        let client = self.pool.get().await?;
        let bind = client
            .prepare_cached("SELECT forgeerp.bind_tenant($1)")
            .await?;
        let snapshot = client
            .prepare_cached(include_str!("../../sql/snapshots/load.sql"))
            .await?;
        let tail = client
            .prepare_cached(include_str!("../../sql/snapshots/tail.sql"))
            .await?;
        let (tenant, aggregate) = (tenant_id.as_uuid(), aggregate_id.as_uuid());
        let version = i32::try_from(state_version).unwrap_or(i32::MAX);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&tenant, &aggregate_type, &aggregate, &version];
        let bind_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&tenant];
        // Polled in this order, so sent in this order; an error aborts the
        // transaction, and its COMMIT then rolls back.
        let (begun, bound, snapshot, tail, ended) = tokio::join!(
            client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
            client.execute(&bind, &bind_params),
            client.query_opt(&snapshot, &params),
            client.query(&tail, &params),
            client.batch_execute("COMMIT"),
        );
        begun?;
        bound?;
        let (snapshot, tail) = (snapshot?, tail?);
        ended?;
        let snapshot = snapshot.map(|row| Snapshot {
            tenant_id,
            aggregate_type: aggregate_type.to_string(),
            aggregate_id,
            state_version,
            stream_version: row.get::<_, i64>(0).max(0) as u64,
            state: row.get(1),
        });
        let tail = tail
            .iter()
            .map(crate::event_store::postgres::row_to_event)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SnapshotError(e.to_string()))?;
        Ok((snapshot, Some(tail)))
    }

    async fn save(&self, snapshot: Snapshot) -> Result<(), SnapshotError> {
        let statement = inline(
            include_str!("../../sql/snapshots/save.sql"),
            &[
                literal(&snapshot.tenant_id.to_string())?,
                literal(&snapshot.aggregate_type)?,
                literal(&snapshot.aggregate_id.to_string())?,
                snapshot.state_version.to_string(),
                snapshot.stream_version.to_string(),
                literal(&snapshot.state.to_string())?,
            ],
        );
        self.bound(snapshot.tenant_id, statement).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_their_quotes_and_parameters_do_not_collide() {
        assert_eq!(literal("it's").unwrap(), "'it''s'");
        assert!(literal("a\0b").is_err());
        let values: Vec<String> = (1..=10).map(|n| format!("v{n}")).collect();
        assert_eq!(inline("$1 $10 $2", &values), "v1 v10 v2");
        // A value that looks like a parameter stays as it is.
        let values = vec!["'$2'".to_string(), "x".to_string()];
        assert_eq!(inline("($1, $2, $)", &values), "('$2', x, $)");
    }
}

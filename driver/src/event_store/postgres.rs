//! The event store in PostgreSQL, through the `forgeerp` extension's SQL
//! contract only.
//!
//! Every call is one statement on a pooled connection, so one round trip. The
//! tenant-scoped calls bind their (implicit) transaction to the tenant with
//! `forgeerp.bind_tenant` inside that same statement, so a bug that passes the
//! wrong tenant somewhere is stopped by the database (ES002).

use super::{batch_json, batch_target, EventStore, EventStoreError};
use crate::connection::ConnectionSettings;
use crate::event::{EventEnvelope, FeedPosition, StoredEvent, UncommittedEvent};
use crate::expected_version::ExpectedVersion;
use crate::ids::{AggregateId, EventId, TenantId};
use crate::tenant_binding::bound_tenant_arg;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use forgeerp_contract::SqlState;
use serde_json::Value;
use tokio_postgres::Row;
use tracing::Instrument;
use uuid::Uuid;

// The tenant-scoped calls bind their implicit transaction to the tenant
// inside the same statement (`bound_tenant_arg!`).
const APPEND: &str = concat!(
    "SELECT a.* FROM forgeerp.append(",
    bound_tenant_arg!("1"),
    ", $2, $3, $4, $5) AS a"
);
const LOAD_STREAM: &str = concat!(
    "SELECT e.* FROM forgeerp.load_stream(",
    bound_tenant_arg!("1"),
    ", $2, $3) AS e"
);
const STREAM_TYPE: &str = concat!(
    "SELECT e.aggregate_type FROM forgeerp.load_stream(",
    bound_tenant_arg!("1"),
    ", $2, 1, 1) AS e"
);
const STREAM_VERSION: &str = concat!(
    "SELECT forgeerp.stream_version(",
    bound_tenant_arg!("1"),
    ", $2)"
);
const READ_ALL_TENANT: &str = concat!(
    "SELECT e.* FROM forgeerp.read_all($1, $2, $3, ",
    bound_tenant_arg!("4"),
    ") AS e"
);
const READ_ALL: &str = "SELECT e.* FROM forgeerp.read_all($1, $2, $3) AS e";

/// One page of the global feed: the one way the driver reads it (the
/// store's `read_all`, the subscriptions, the projections' rebuilds).
#[derive(Clone, Copy, Debug)]
pub(crate) struct FeedPage {
    /// Read after this position.
    pub after: FeedPosition,
    /// At most this many events.
    pub max: i32,
    /// One tenant's events (the statement binds its transaction to it), or
    /// every tenant's.
    pub tenant: Option<Uuid>,
}

impl FeedPage {
    /// A page of at most `max` events after `after`.
    pub fn new(after: FeedPosition, max: usize, tenant_id: Option<TenantId>) -> Self {
        FeedPage {
            after,
            max: i32::try_from(max).unwrap_or(i32::MAX),
            tenant: tenant_id.map(|t| t.as_uuid()),
        }
    }

    /// The statement: the same text for every page of one reader, so it
    /// can be prepared once.
    pub fn statement(&self) -> &'static str {
        match self.tenant {
            Some(_) => READ_ALL_TENANT,
            None => READ_ALL,
        }
    }

    /// The statement's parameters.
    pub fn params(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
            &self.after.transaction_id,
            &self.after.global_position,
            &self.max,
        ];
        if let Some(tenant) = &self.tenant {
            params.push(tenant);
        }
        params
    }
}

/// The Postgres event store over a deadpool-postgres pool.
#[derive(Clone)]
pub struct PgEventStore {
    pool: Pool,
}

impl PgEventStore {
    /// A store over an existing pool.
    pub fn new(pool: Pool) -> Self {
        PgEventStore { pool }
    }

    /// A store with its own pool of at most `max_connections` to `url`
    /// (a libpq connection string or `postgresql://` URL).
    pub fn connect(url: &str, max_connections: usize) -> Result<Self, EventStoreError> {
        let settings = ConnectionSettings::parse(url)
            .map_err(|e| EventStoreError::Connection(format!("bad database URL: {e}")))?;
        Self::connect_with(&settings, max_connections)
    }

    /// A store with its own pool of at most `max_connections`, connecting
    /// as `settings` say (TLS included).
    pub fn connect_with(
        settings: &ConnectionSettings,
        max_connections: usize,
    ) -> Result<Self, EventStoreError> {
        let pool = settings
            .pool(max_connections)
            .map_err(|e| EventStoreError::Connection(e.to_string()))?;
        Ok(PgEventStore { pool })
    }

    /// The pool, for callers that need a connection of their own.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, EventStoreError> {
        Ok(self.pool.get().await?)
    }

    /// Appends `events`, a JSON array in the shape `forgeerp.append` takes,
    /// passed through unchanged (the extension validates it), and returns the
    /// stored events. For tools that hold events as JSON (the CLI); code
    /// that builds events uses [`EventStore::append`].
    pub async fn append_json(
        &self,
        tenant_id: TenantId,
        aggregate_type: &str,
        aggregate_id: AggregateId,
        expected: ExpectedVersion,
        events: &Value,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let rows = self
            .append_rows(tenant_id, aggregate_type, aggregate_id, expected, events)
            .await?;
        let decode = |e: tokio_postgres::Error| EventStoreError::Decode(e.to_string());
        let sequences = rows
            .iter()
            .map(|row| row.try_get::<_, i64>("sequence_number").map_err(decode))
            .collect::<Result<Vec<_>, _>>()?;
        let (Some(first), Some(last)) = (sequences.first(), sequences.last()) else {
            return Ok(Vec::new());
        };
        let stored = self
            .load_stream_from(tenant_id, aggregate_id, *first as u64)
            .await?;
        Ok(stored
            .into_iter()
            .filter(|e| e.sequence_number <= *last as u64)
            .collect())
    }

    /// One `forgeerp.append` call; a failure mapped by its SQLSTATE, with the
    /// actual version of a conflict read back from the database.
    async fn append_rows(
        &self,
        tenant_id: TenantId,
        aggregate_type: &str,
        aggregate_id: AggregateId,
        expected: ExpectedVersion,
        events: &Value,
    ) -> Result<Vec<Row>, EventStoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(APPEND)
            .await
            .map_err(EventStoreError::from)?;
        let result = client
            .query(
                &statement,
                &[
                    &tenant_id.as_uuid(),
                    &aggregate_type,
                    &aggregate_id.as_uuid(),
                    &expected.to_sql(),
                    events,
                ],
            )
            .await;
        match result {
            Ok(rows) => Ok(rows),
            Err(error) => {
                let state = error.code().and_then(|c| SqlState::from_code(c.code()));
                // Back to the pool first: the follow-up below needs a
                // connection, and the pool may have only this one.
                drop(client);
                if state == Some(SqlState::WrongExpectedVersion) {
                    // The actual version, asked for separately: the error
                    // text is for people, not for parsing.
                    let actual = self.stream_version(tenant_id, aggregate_id).await?;
                    return Err(EventStoreError::Concurrency {
                        aggregate_id,
                        expected,
                        actual,
                    });
                }
                if state == Some(SqlState::AggregateTypeMismatch) {
                    // The stream's own type, asked for like the version.
                    let rows = self
                        .query_mapped(
                            STREAM_TYPE,
                            &[&tenant_id.as_uuid(), &aggregate_id.as_uuid()],
                        )
                        .await?;
                    return Err(EventStoreError::AggregateTypeMismatch {
                        aggregate_id,
                        requested: aggregate_type.to_string(),
                        stored: rows.first().map(|r| r.get(0)).unwrap_or_default(),
                    });
                }
                Err(error.into())
            }
        }
    }

    /// Runs `sql` and maps a failure to an `EventStoreError`.
    async fn query_mapped(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, EventStoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(EventStoreError::from)?;
        client
            .query(&statement, params)
            .await
            .map_err(EventStoreError::from)
    }
}

/// An event record row (`load_stream`, `read_all`) as a `StoredEvent`.
pub(crate) fn row_to_event(row: &Row) -> Result<StoredEvent, EventStoreError> {
    let decode = |e: String| EventStoreError::Decode(e);
    let tenant: Uuid = row
        .try_get("tenant_id")
        .map_err(|e| decode(e.to_string()))?;
    let aggregate: Uuid = row
        .try_get("aggregate_id")
        .map_err(|e| decode(e.to_string()))?;
    let get = |name: &str| -> Result<i64, EventStoreError> {
        row.try_get(name).map_err(|e| decode(e.to_string()))
    };
    Ok(EventEnvelope {
        tenant_id: TenantId::new(tenant).map_err(|e| decode(e.to_string()))?,
        aggregate_type: row
            .try_get("aggregate_type")
            .map_err(|e| decode(e.to_string()))?,
        aggregate_id: AggregateId::new(aggregate).map_err(|e| decode(e.to_string()))?,
        event_id: EventId(row.try_get("event_id").map_err(|e| decode(e.to_string()))?),
        event_type: row
            .try_get("event_type")
            .map_err(|e| decode(e.to_string()))?,
        event_version: row
            .try_get::<_, i32>("event_version")
            .map_err(|e| decode(e.to_string()))? as u32,
        sequence_number: get("sequence_number")? as u64,
        global_position: get("global_position")?,
        transaction_id: get("transaction_id")?,
        metadata: row.try_get("metadata").map_err(|e| decode(e.to_string()))?,
        occurred_at: row
            .try_get::<_, DateTime<Utc>>("occurred_at")
            .map_err(|e| decode(e.to_string()))?,
        recorded_at: row
            .try_get::<_, DateTime<Utc>>("recorded_at")
            .map_err(|e| decode(e.to_string()))?,
        payload: row.try_get("payload").map_err(|e| decode(e.to_string()))?,
    })
}

impl EventStore for PgEventStore {
    async fn append(
        &self,
        events: Vec<UncommittedEvent>,
        expected: ExpectedVersion,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let target = batch_target(&events)?;
        let span = tracing::debug_span!(
            "append",
            tenant = %target.tenant_id,
            aggregate = %target.aggregate_id,
            events = events.len()
        );
        async {
            let rows = self
                .append_rows(
                    target.tenant_id,
                    &target.aggregate_type,
                    target.aggregate_id,
                    expected,
                    &batch_json(&events),
                )
                .await?;
            // The batch carries its event ids, so the rows line up with it.
            rows.iter()
                .zip(events)
                .map(|(row, event)| {
                    let decode = |e: tokio_postgres::Error| EventStoreError::Decode(e.to_string());
                    let sequence_number: i64 = row.try_get("sequence_number").map_err(decode)?;
                    Ok(event.into_stored(
                        sequence_number as u64,
                        row.try_get("global_position").map_err(decode)?,
                        row.try_get("transaction_id").map_err(decode)?,
                        row.try_get("recorded_at").map_err(decode)?,
                    ))
                })
                .collect()
        }
        .instrument(span)
        .await
    }

    async fn load_stream_from(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        from: u64,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let rows = self
            .query_mapped(
                LOAD_STREAM,
                &[&tenant_id.as_uuid(), &aggregate_id.as_uuid(), &from],
            )
            .await?;
        rows.iter().map(row_to_event).collect()
    }

    async fn stream_version(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
    ) -> Result<u64, EventStoreError> {
        let rows = self
            .query_mapped(
                STREAM_VERSION,
                &[&tenant_id.as_uuid(), &aggregate_id.as_uuid()],
            )
            .await?;
        let version: i64 = rows[0]
            .try_get(0)
            .map_err(|e| EventStoreError::Decode(e.to_string()))?;
        Ok(version as u64)
    }

    async fn read_all(
        &self,
        after: FeedPosition,
        max: usize,
        tenant_id: Option<TenantId>,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let page = FeedPage::new(after, max, tenant_id);
        let rows = self.query_mapped(page.statement(), &page.params()).await?;
        rows.iter().map(row_to_event).collect()
    }
}

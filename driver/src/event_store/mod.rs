//! The event store interface, its errors, and the stores behind it.

pub mod in_memory;
pub mod postgres;
pub mod publishing;

use crate::db_error::DbFailure;
use crate::event::{FeedPosition, StoredEvent, UncommittedEvent};
use crate::expected_version::ExpectedVersion;
use crate::ids::{AggregateId, TenantId};
use chrono::SecondsFormat;
use forgeerp_contract::{ContractError, SqlState};
use serde_json::{json, Value};
use std::future::Future;

/// Why the store refused or failed an operation.
///
/// Both stores return the same variant for the same situation; the Postgres
/// store maps the extension's SQLSTATEs (`ES001`–`ES006`), never message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventStoreError {
    /// The stream was not at the expected version (ES001).
    #[error(
        "wrong expected version for aggregate {aggregate_id}: expected {expected}, actual {actual}"
    )]
    Concurrency {
        /// The stream's aggregate.
        aggregate_id: AggregateId,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's version when the conflict was reported.
        actual: u64,
    },
    /// A batch mixes tenants, or the tenant is not the bound one (ES002).
    #[error("tenant isolation: {0}")]
    TenantIsolation(String),
    /// The batch is not valid: shape, sizes, limits (ES003).
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// An event id is reused other than by an exact retry (ES004).
    #[error("duplicate event id: {0}")]
    DuplicateEvent(String),
    /// The stream has another aggregate type (ES005).
    #[error("aggregate {aggregate_id} is a {stored:?}, not a {requested:?}")]
    AggregateTypeMismatch {
        /// The stream's aggregate.
        aggregate_id: AggregateId,
        /// The aggregate type the append named.
        requested: String,
        /// The stream's own aggregate type.
        stored: String,
    },
    /// Something tried to change stored events (ES006).
    #[error("the event store is append-only: {0}")]
    AppendOnly(String),
    /// A serialization failure or deadlock (40001, 40P01): retry the operation.
    #[error("transaction conflict, retry: {0}")]
    TransactionConflict(String),
    /// Any other database error, with its SQLSTATE.
    #[error("database error {sqlstate}: {message}")]
    Database {
        /// The five-character SQLSTATE.
        sqlstate: String,
        /// The server's message (and detail).
        message: String,
    },
    /// No connection could be had or it broke.
    #[error("connection failed: {0}")]
    Connection(String),
    /// A stored event could not be read back.
    #[error("stored event could not be decoded: {0}")]
    Decode(String),
}

impl EventStoreError {
    /// The SQLSTATE the contract reports this error with, when it has one
    /// (a transaction conflict may be 40001 or 40P01: `40001` stands for both).
    pub fn sqlstate(&self) -> Option<&str> {
        Some(match self {
            EventStoreError::Concurrency { .. } => SqlState::WrongExpectedVersion.code(),
            EventStoreError::TenantIsolation(_) => SqlState::TenantIsolation.code(),
            EventStoreError::InvalidAppend(_) => SqlState::InvalidArgument.code(),
            EventStoreError::DuplicateEvent(_) => SqlState::DuplicateEventId.code(),
            EventStoreError::AggregateTypeMismatch { .. } => SqlState::AggregateTypeMismatch.code(),
            EventStoreError::AppendOnly(_) => SqlState::AppendOnly.code(),
            EventStoreError::TransactionConflict(_) => SqlState::SerializationFailure.code(),
            EventStoreError::Database { sqlstate, .. } => sqlstate,
            EventStoreError::Connection(_) | EventStoreError::Decode(_) => return None,
        })
    }

    /// The variant of a SQLSTATE, by the contract's table: how both stores
    /// report a broken rule. ES001 and ES005 carry the stream they are about,
    /// so a store makes those variants itself, with what it knows.
    fn of_state(state: Option<SqlState>, sqlstate: String, message: String) -> Self {
        match state {
            Some(SqlState::TenantIsolation) => EventStoreError::TenantIsolation(message),
            Some(SqlState::InvalidArgument | SqlState::UntranslatableCharacter) => {
                EventStoreError::InvalidAppend(message)
            }
            Some(SqlState::DuplicateEventId) => EventStoreError::DuplicateEvent(message),
            Some(SqlState::AppendOnly) => EventStoreError::AppendOnly(message),
            Some(state) if state.is_transaction_conflict() => {
                EventStoreError::TransactionConflict(message)
            }
            _ => EventStoreError::Database { sqlstate, message },
        }
    }
}

/// A broken rule of the contract, as the in-memory store finds it.
impl From<ContractError> for EventStoreError {
    fn from(error: ContractError) -> Self {
        let message = match error.detail {
            Some(detail) => format!("{} ({detail})", error.message),
            None => error.message,
        };
        EventStoreError::of_state(Some(error.state), error.state.code().to_string(), message)
    }
}

/// A failed database call, mapped by its SQLSTATE (never by its text), also
/// for callers that run SQL of their own against the store's tables.
impl From<DbFailure> for EventStoreError {
    fn from(failure: DbFailure) -> Self {
        let state = failure.state();
        match failure {
            DbFailure::Connection(message) => EventStoreError::Connection(message),
            DbFailure::Refused { sqlstate, message } => {
                EventStoreError::of_state(state, sqlstate, message)
            }
        }
    }
}

impl From<tokio_postgres::Error> for EventStoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        DbFailure::of(&error).into()
    }
}

impl From<deadpool_postgres::PoolError> for EventStoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        DbFailure::of_pool(&error).into()
    }
}

/// A batch in the shape `forgeerp.append` takes, every key spelled out: what
/// the Postgres store sends, and the text the in-memory store validates.
pub(crate) fn batch_json(events: &[UncommittedEvent]) -> Value {
    Value::Array(
        events
            .iter()
            .map(|e| {
                json!({
                    "event_type": e.event_type,
                    "payload": e.payload,
                    "event_id": e.event_id.0,
                    "event_version": e.event_version,
                    "metadata": e.metadata,
                    "occurred_at": e.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                })
            })
            .collect(),
    )
}

/// An append-only, multi-tenant event store.
pub trait EventStore: Send + Sync {
    /// Appends a batch to one stream, all or nothing; returns the stored events.
    fn append(
        &self,
        events: Vec<UncommittedEvent>,
        expected: ExpectedVersion,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, EventStoreError>> + Send;

    /// The events of one stream from sequence number `from` (1 = all), in order.
    fn load_stream_from(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        from: u64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, EventStoreError>> + Send;

    /// All events of one stream, in order.
    fn load_stream(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, EventStoreError>> + Send {
        self.load_stream_from(tenant_id, aggregate_id, 1)
    }

    /// The stream's version: its last sequence number, 0 when empty.
    fn stream_version(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
    ) -> impl Future<Output = Result<u64, EventStoreError>> + Send;

    /// The global feed after `after`, at most `max` events, of one tenant or all.
    fn read_all(
        &self,
        after: FeedPosition,
        max: usize,
        tenant_id: Option<TenantId>,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, EventStoreError>> + Send;
}

/// The stream a batch goes to: checked before any I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BatchTarget {
    pub tenant_id: TenantId,
    pub aggregate_type: String,
    pub aggregate_id: AggregateId,
}

/// All events of one append must share tenant, aggregate and aggregate type.
pub(crate) fn batch_target(events: &[UncommittedEvent]) -> Result<BatchTarget, EventStoreError> {
    let first = events.first().ok_or_else(|| {
        EventStoreError::InvalidAppend("an append needs at least one event".into())
    })?;
    for event in &events[1..] {
        if event.tenant_id != first.tenant_id {
            return Err(EventStoreError::TenantIsolation(format!(
                "one batch mixes tenants {} and {}",
                first.tenant_id, event.tenant_id
            )));
        }
        if event.aggregate_id != first.aggregate_id || event.aggregate_type != first.aggregate_type
        {
            return Err(EventStoreError::InvalidAppend(format!(
                "one batch mixes streams: {} {} and {} {}",
                first.aggregate_type, first.aggregate_id, event.aggregate_type, event.aggregate_id
            )));
        }
    }
    Ok(BatchTarget {
        tenant_id: first.tenant_id,
        aggregate_type: first.aggregate_type.clone(),
        aggregate_id: first.aggregate_id,
    })
}

macro_rules! delegate_event_store {
    ($($wrapper:ty),*) => {$(
        /// A shared store is a store.
        impl<S: EventStore> EventStore for $wrapper {
            fn append(
                &self,
                events: Vec<UncommittedEvent>,
                expected: ExpectedVersion,
            ) -> impl Future<Output = Result<Vec<StoredEvent>, EventStoreError>> + Send {
                (**self).append(events, expected)
            }

            fn load_stream_from(
                &self,
                tenant_id: TenantId,
                aggregate_id: AggregateId,
                from: u64,
            ) -> impl Future<Output = Result<Vec<StoredEvent>, EventStoreError>> + Send {
                (**self).load_stream_from(tenant_id, aggregate_id, from)
            }

            fn stream_version(
                &self,
                tenant_id: TenantId,
                aggregate_id: AggregateId,
            ) -> impl Future<Output = Result<u64, EventStoreError>> + Send {
                (**self).stream_version(tenant_id, aggregate_id)
            }

            fn read_all(
                &self,
                after: FeedPosition,
                max: usize,
                tenant_id: Option<TenantId>,
            ) -> impl Future<Output = Result<Vec<StoredEvent>, EventStoreError>> + Send {
                (**self).read_all(after, max, tenant_id)
            }
        }
    )*};
}

delegate_event_store!(&S, std::sync::Arc<S>);

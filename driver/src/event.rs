//! Events on their way in (`UncommittedEvent`) and as stored (`EventEnvelope`).

use crate::ids::{AggregateId, EventId, TenantId};
use chrono::{DateTime, SubsecRound, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An event not yet appended: everything but its place in the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UncommittedEvent {
    /// The tenant the event belongs to.
    pub tenant_id: TenantId,
    /// The stream's aggregate type (the same for the stream's life).
    pub aggregate_type: String,
    /// The aggregate, i.e. the stream within the tenant.
    pub aggregate_id: AggregateId,
    /// The event's own id; reusing it makes an append a retry or a duplicate.
    pub event_id: EventId,
    /// What happened, e.g. `StockReceived`.
    pub event_type: String,
    /// Schema version of the payload (1 or more).
    pub event_version: u32,
    /// The event's data: a JSON object.
    pub payload: Value,
    /// Correlation id, causation id, actor, …: always a JSON object.
    pub metadata: Value,
    /// When it happened in the world (microsecond precision).
    pub occurred_at: DateTime<Utc>,
}

impl UncommittedEvent {
    /// A new event with a fresh id, schema version 1, empty metadata, occurring now.
    pub fn new(
        tenant_id: TenantId,
        aggregate_type: impl Into<String>,
        aggregate_id: AggregateId,
        event_type: impl Into<String>,
        payload: Value,
    ) -> Self {
        UncommittedEvent {
            tenant_id,
            aggregate_type: aggregate_type.into(),
            aggregate_id,
            event_id: EventId::random(),
            event_type: event_type.into(),
            event_version: 1,
            payload,
            metadata: Value::Object(Map::new()),
            occurred_at: to_micros(Utc::now()),
        }
    }

    /// A new event ([`UncommittedEvent::new`]) of a typed domain event: its
    /// type name and its payload.
    pub fn from_domain<E: DomainEvent>(
        tenant_id: TenantId,
        aggregate_type: impl Into<String>,
        aggregate_id: AggregateId,
        event: &E,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self::new(
            tenant_id,
            aggregate_type,
            aggregate_id,
            event.event_type(),
            event.to_payload()?,
        ))
    }

    /// The same event with the given metadata object.
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// The same event with the given id (for retries that must be recognised).
    pub fn with_event_id(mut self, event_id: EventId) -> Self {
        self.event_id = event_id;
        self
    }

    /// The same event with another payload schema version.
    pub fn with_event_version(mut self, event_version: u32) -> Self {
        self.event_version = event_version;
        self
    }

    /// The same event, occurring at `at` (kept to the microsecond, as stored).
    pub fn occurred_at(mut self, at: DateTime<Utc>) -> Self {
        self.occurred_at = to_micros(at);
        self
    }
}

impl UncommittedEvent {
    /// The event as stored at the given place.
    pub fn into_stored(
        self,
        sequence_number: u64,
        global_position: i64,
        transaction_id: i64,
        recorded_at: DateTime<Utc>,
    ) -> StoredEvent {
        EventEnvelope {
            tenant_id: self.tenant_id,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            event_id: self.event_id,
            event_type: self.event_type,
            event_version: self.event_version,
            sequence_number,
            global_position,
            transaction_id,
            metadata: self.metadata,
            occurred_at: to_micros(self.occurred_at),
            recorded_at,
            payload: self.payload,
        }
    }
}

/// `at` cut to the microsecond, the precision of a Postgres `timestamptz`.
pub fn to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// A stored event with its payload as `T`, and its place in the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope<T> {
    /// The tenant the event belongs to.
    pub tenant_id: TenantId,
    /// The stream's aggregate type (the same for the stream's life).
    pub aggregate_type: String,
    /// The aggregate, i.e. the stream within the tenant.
    pub aggregate_id: AggregateId,
    /// The event's own id; reusing it makes an append a retry or a duplicate.
    pub event_id: EventId,
    /// What happened, e.g. `StockReceived`.
    pub event_type: String,
    /// Schema version of the payload.
    pub event_version: u32,
    /// 1, 2, 3, … within the stream.
    pub sequence_number: u64,
    /// Unique across the store; increasing within one transaction.
    pub global_position: i64,
    /// The appending transaction (`xid8`); the feed is ordered by
    /// (transaction_id, global_position).
    pub transaction_id: i64,
    /// Correlation id, causation id, actor, …: a JSON object.
    pub metadata: Value,
    /// When it happened in the world (microsecond precision).
    pub occurred_at: DateTime<Utc>,
    /// When the store recorded it (the appending transaction's time).
    pub recorded_at: DateTime<Utc>,
    /// The event's data: a JSON object.
    pub payload: T,
}

/// A stored event with its payload as JSON.
pub type StoredEvent = EventEnvelope<Value>;

impl StoredEvent {
    /// The same envelope with the payload decoded as domain event `E`.
    pub fn decode<E: DomainEvent>(&self) -> Result<EventEnvelope<E>, serde_json::Error> {
        let payload = E::from_payload(&self.event_type, &self.payload)?;
        Ok(self.clone().with_payload(payload))
    }
}

impl<T> EventEnvelope<T> {
    /// The same envelope around another payload.
    pub fn with_payload<U>(self, payload: U) -> EventEnvelope<U> {
        EventEnvelope {
            tenant_id: self.tenant_id,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            event_id: self.event_id,
            event_type: self.event_type,
            event_version: self.event_version,
            sequence_number: self.sequence_number,
            global_position: self.global_position,
            transaction_id: self.transaction_id,
            metadata: self.metadata,
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            payload,
        }
    }

    /// The feed position of this event.
    pub fn position(&self) -> FeedPosition {
        FeedPosition {
            transaction_id: self.transaction_id,
            global_position: self.global_position,
        }
    }
}

/// A cursor into the global feed: events strictly after it come next.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct FeedPosition {
    /// The transaction id of the last event read (0 at the start).
    pub transaction_id: i64,
    /// The global position of the last event read (0 at the start).
    pub global_position: i64,
}

impl std::fmt::Display for FeedPosition {
    /// `TRANSACTION:POSITION`, the form [`FeedPosition::from_str`](std::str::FromStr) reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.transaction_id, self.global_position)
    }
}

/// A feed position that is not `TRANSACTION:POSITION` with two numbers ≥ 0.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a feed position: expected TRANSACTION:POSITION, two numbers >= 0 (for example 0:0)")]
pub struct InvalidPosition(pub String);

impl std::str::FromStr for FeedPosition {
    type Err = InvalidPosition;

    fn from_str(s: &str) -> Result<Self, InvalidPosition> {
        let invalid = || InvalidPosition(s.to_string());
        let (transaction, position) = s.trim().split_once(':').ok_or_else(invalid)?;
        let transaction_id: i64 = transaction.parse().map_err(|_| invalid())?;
        let global_position: i64 = position.parse().map_err(|_| invalid())?;
        if transaction_id < 0 || global_position < 0 {
            return Err(invalid());
        }
        Ok(FeedPosition {
            transaction_id,
            global_position,
        })
    }
}

/// A domain event that travels as (event_type, payload).
///
/// The default methods follow the convention of an enum tagged with
/// `#[serde(tag = "event_type")]`: the tag becomes `event_type`, the other
/// fields the payload object.
pub trait DomainEvent: Serialize + DeserializeOwned {
    /// The event's type name, as stored in `event_type`.
    fn event_type(&self) -> &'static str;

    /// The payload: the serialized event without its tag.
    fn to_payload(&self) -> Result<Value, serde_json::Error> {
        let mut value = serde_json::to_value(self)?;
        if let Value::Object(fields) = &mut value {
            fields.remove("event_type");
        }
        Ok(value)
    }

    /// The event back from its stored type and payload.
    fn from_payload(event_type: &str, payload: &Value) -> Result<Self, serde_json::Error> {
        let mut value = payload.clone();
        if let Value::Object(fields) = &mut value {
            fields.insert("event_type".into(), Value::String(event_type.to_string()));
        }
        serde_json::from_value(value)
    }
}

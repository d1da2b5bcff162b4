//! An event store in memory, for tests and local development.
//!
//! It enforces the rules of the `forgeerp` extension and returns the same
//! `EventStoreError` variants in the same order of checks: arguments, tenant,
//! retry or duplicate id, aggregate type, expected version. One difference is
//! documented: event size is measured on serde_json's compact text, which is
//! a few bytes shorter than Postgres' `jsonb` text of the same value.

use super::{batch_target, EventStore, EventStoreError};
use crate::event::{to_micros, FeedPosition, StoredEvent, UncommittedEvent};
use crate::expected_version::ExpectedVersion;
use crate::ids::{AggregateId, EventId, TenantId};
use chrono::Utc;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Limits the store enforces, as the extension's GUCs do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `forgeerp.max_batch_events`.
    pub max_batch_events: usize,
    /// `forgeerp.max_event_bytes`.
    pub max_event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch_events: 10_000,
            max_event_bytes: 1_048_576,
        }
    }
}

#[derive(Default)]
struct State {
    /// Every event in feed order.
    events: Vec<StoredEvent>,
    /// Indexes into `events`, per stream, in sequence order.
    streams: HashMap<(TenantId, AggregateId), Vec<usize>>,
    /// Index into `events` per (tenant, event id).
    ids: HashMap<(TenantId, EventId), usize>,
    next_transaction: i64,
}

/// An event store in a `Mutex`: no I/O, same rules as the Postgres store.
#[derive(Default)]
pub struct InMemoryEventStore {
    state: Mutex<State>,
    limits: Limits,
}

impl InMemoryEventStore {
    /// An empty store with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with other limits.
    pub fn with_limits(limits: Limits) -> Self {
        InMemoryEventStore {
            state: Mutex::default(),
            limits,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-done append:
        // appends mutate only after every check passed.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn validate(&self, events: &[UncommittedEvent]) -> Result<(), EventStoreError> {
        let invalid = |message: String| Err(EventStoreError::InvalidAppend(message));
        if events.len() > self.limits.max_batch_events {
            return invalid(format!(
                "events has {} events, more than forgeerp.max_batch_events ({})",
                events.len(),
                self.limits.max_batch_events
            ));
        }
        let aggregate_type = &events[0].aggregate_type;
        if aggregate_type.is_empty() || aggregate_type.len() > 255 || aggregate_type.contains('\0')
        {
            return invalid(format!(
                "aggregate_type must be 1 to 255 bytes without NUL, got {aggregate_type:?}"
            ));
        }
        for (index, event) in events.iter().enumerate() {
            if event.event_type.is_empty() || event.event_type.len() > 255 {
                return invalid(format!(
                    "events[{index}].event_type must be 1 to 255 bytes, got {:?}",
                    event.event_type
                ));
            }
            if !event.payload.is_object() {
                return invalid(format!("events[{index}].payload must be a JSON object"));
            }
            if !event.metadata.is_object() {
                return invalid(format!("events[{index}].metadata must be a JSON object"));
            }
            if event.event_version == 0 || event.event_version > i32::MAX as u32 {
                return invalid(format!(
                    "events[{index}].event_version must be 1 to {}, got {}",
                    i32::MAX,
                    event.event_version
                ));
            }
            let text = format!("{}{}{}", event.event_type, event.payload, event.metadata);
            if text.contains('\0') || text.contains("\\u0000") {
                return invalid(format!(
                    "events[{index}] contains a NUL character, which Postgres cannot store"
                ));
            }
            let bytes = event.payload.to_string().len() + event.metadata.to_string().len();
            if bytes > self.limits.max_event_bytes {
                return invalid(format!(
                    "events[{index}] payload and metadata take {bytes} bytes, more than forgeerp.max_event_bytes ({})",
                    self.limits.max_event_bytes
                ));
            }
        }
        Ok(())
    }
}

/// How a batch relates to the stored ids: new, an exact retry, or a reuse.
enum Existing {
    None,
    Retry(Vec<StoredEvent>),
}

fn resolve_existing(
    state: &State,
    events: &[UncommittedEvent],
) -> Result<Existing, EventStoreError> {
    let target = &events[0];
    let found: Vec<(usize, &StoredEvent)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            state
                .ids
                .get(&(e.tenant_id, e.event_id))
                .map(|&at| (i, &state.events[at]))
        })
        .collect();
    let Some(&(_, first)) = found.first() else {
        return Ok(Existing::None);
    };
    let is_retry = found.len() == events.len()
        && found.iter().enumerate().all(|(i, (ord, stored))| {
            *ord == i
                && stored.aggregate_id == target.aggregate_id
                && stored.sequence_number == first.sequence_number + i as u64
                && stored.event_type == events[i].event_type
                && stored.payload == events[i].payload
        });
    if is_retry {
        if first.aggregate_type != target.aggregate_type {
            return Err(EventStoreError::AggregateTypeMismatch {
                aggregate_id: target.aggregate_id,
                requested: target.aggregate_type.clone(),
            });
        }
        return Ok(Existing::Retry(
            found.into_iter().map(|(_, e)| e.clone()).collect(),
        ));
    }
    let (_, clash) = found[0];
    Err(EventStoreError::DuplicateEvent(format!(
        "event_id {} already exists (sequence {} of aggregate {})",
        clash.event_id, clash.sequence_number, clash.aggregate_id
    )))
}

impl EventStore for InMemoryEventStore {
    async fn append(
        &self,
        events: Vec<UncommittedEvent>,
        expected: ExpectedVersion,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let target = batch_target(&events)?;
        self.validate(&events)?;
        let mut seen = HashSet::new();
        if let Some(repeated) = events.iter().find(|e| !seen.insert(e.event_id)) {
            return Err(EventStoreError::DuplicateEvent(format!(
                "event_id {} appears more than once in the batch",
                repeated.event_id
            )));
        }

        let mut state = self.state();
        if let Existing::Retry(stored) = resolve_existing(&state, &events)? {
            return Ok(stored);
        }
        let key = (target.tenant_id, target.aggregate_id);
        let stream = state
            .streams
            .get(&key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let version = stream.len() as u64;
        if let Some(&head) = stream.last() {
            if state.events[head].aggregate_type != target.aggregate_type {
                return Err(EventStoreError::AggregateTypeMismatch {
                    aggregate_id: target.aggregate_id,
                    requested: target.aggregate_type,
                });
            }
        }
        if !expected.allows(version) {
            return Err(EventStoreError::Concurrency {
                aggregate_id: target.aggregate_id,
                expected,
                actual: version,
            });
        }

        state.next_transaction += 1;
        let transaction_id = state.next_transaction;
        let recorded_at = to_micros(Utc::now());
        let mut stored = Vec::with_capacity(events.len());
        for (i, event) in events.into_iter().enumerate() {
            let at = state.events.len();
            let envelope = event.into_stored(
                version + 1 + i as u64,
                at as i64 + 1,
                transaction_id,
                recorded_at,
            );
            state
                .ids
                .insert((envelope.tenant_id, envelope.event_id), at);
            state.streams.entry(key).or_default().push(at);
            state.events.push(envelope.clone());
            stored.push(envelope);
        }
        Ok(stored)
    }

    async fn load_stream_from(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        from: u64,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let state = self.state();
        let stream = state
            .streams
            .get(&(tenant_id, aggregate_id))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let skip = from.max(1) as usize - 1;
        Ok(stream
            .iter()
            .skip(skip)
            .map(|&at| state.events[at].clone())
            .collect())
    }

    async fn stream_version(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
    ) -> Result<u64, EventStoreError> {
        let state = self.state();
        Ok(state
            .streams
            .get(&(tenant_id, aggregate_id))
            .map_or(0, |s| s.len() as u64))
    }

    async fn read_all(
        &self,
        after: FeedPosition,
        max: usize,
        tenant_id: Option<TenantId>,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let state = self.state();
        Ok(state
            .events
            .iter()
            .filter(|e| e.position() > after && tenant_id.is_none_or(|t| e.tenant_id == t))
            .take(max)
            .cloned()
            .collect())
    }
}

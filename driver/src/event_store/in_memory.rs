//! An event store in memory, for tests and local development.
//!
//! It enforces the rules of the `forgeerp` extension with the same code (the
//! contract crate, `forgeerp_contract`) and returns the same
//! `EventStoreError` variants in the same order of checks: arguments, tenant,
//! retry or duplicate id, aggregate type, expected version. The batch it
//! validates is the JSON the Postgres store would send. One difference is
//! documented: event size is measured on serde_json's compact text, which is
//! a few bytes shorter than Postgres' `jsonb` text of the same value.

use super::{batch_json, batch_target, BatchTarget, EventStore, EventStoreError};
use crate::event::{to_micros, FeedPosition, StoredEvent, UncommittedEvent};
use crate::expected_version::ExpectedVersion;
use crate::ids::{AggregateId, EventId, TenantId};
use chrono::Utc;
use forgeerp_contract::{batch, AppendTarget, Reuse, StoredMatch};
use std::collections::HashMap;
use std::sync::Mutex;

/// Limits the store enforces, as the extension's settings
/// `forgeerp.max_batch_events` and `forgeerp.max_event_bytes` do.
pub use forgeerp_contract::Limits;

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

    /// The extension's argument checks (ES003, then ES004 for an id given
    /// twice), on the JSON batch the Postgres store would send.
    fn validate(
        &self,
        target: &BatchTarget,
        events: &[UncommittedEvent],
    ) -> Result<(), EventStoreError> {
        batch::check_aggregate_type(Some(&target.aggregate_type))?;
        let text = batch_json(events).to_string();
        batch::check_storable(&text)?;
        if let Some(repeated) = batch::validate(&text, self.limits)?.repeated_event_id_error() {
            return Err(repeated.into());
        }
        Ok(())
    }
}

/// The contract's view of the stream a batch goes to.
fn append_target<'a>(target: &'a BatchTarget, events: &[UncommittedEvent]) -> AppendTarget<'a> {
    AppendTarget {
        tenant_id: *target.tenant_id.as_uuid().as_bytes(),
        aggregate_type: &target.aggregate_type,
        aggregate_id: *target.aggregate_id.as_uuid().as_bytes(),
        batch_len: events.len(),
    }
}

/// The stored events whose ids the batch reuses, judged by the contract's
/// rule: None when there are none, their copies for an exact retry, ES004 or
/// ES005 otherwise.
fn resolve_existing(
    state: &State,
    target: &BatchTarget,
    events: &[UncommittedEvent],
) -> Result<Option<Vec<StoredEvent>>, EventStoreError> {
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
    let matches: Vec<StoredMatch<'_>> = found
        .iter()
        .map(|&(index, stored)| StoredMatch {
            index,
            event_id: *stored.event_id.0.as_bytes(),
            aggregate_id: *stored.aggregate_id.as_uuid().as_bytes(),
            aggregate_type: &stored.aggregate_type,
            sequence_number: stored.sequence_number,
            same_content: stored.event_type == events[index].event_type
                && stored.payload == events[index].payload,
        })
        .collect();
    match append_target(target, events).judge_reuse(&matches) {
        Ok(Reuse::None) => Ok(None),
        Ok(Reuse::Retry) => Ok(Some(found.into_iter().map(|(_, e)| e.clone()).collect())),
        Err(error) if error.state == forgeerp_contract::SqlState::AggregateTypeMismatch => {
            let stored = state
                .streams
                .get(&(target.tenant_id, target.aggregate_id))
                .and_then(|stream| stream.first())
                .map(|&first| state.events[first].aggregate_type.clone())
                .unwrap_or_default();
            Err(EventStoreError::AggregateTypeMismatch {
                aggregate_id: target.aggregate_id,
                requested: target.aggregate_type.clone(),
                stored,
            })
        }
        Err(error) => Err(error.into()),
    }
}

impl EventStore for InMemoryEventStore {
    async fn append(
        &self,
        events: Vec<UncommittedEvent>,
        expected: ExpectedVersion,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let target = batch_target(&events)?;
        self.validate(&target, &events)?;

        let mut state = self.state();
        if let Some(stored) = resolve_existing(&state, &target, &events)? {
            return Ok(stored);
        }
        let key = (target.tenant_id, target.aggregate_id);
        let stream = state
            .streams
            .get(&key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let version = stream.len() as u64;
        let rules = append_target(&target, &events);
        let stored_type = stream
            .last()
            .map(|&head| state.events[head].aggregate_type.as_str());
        if rules.check_aggregate_type(stored_type).is_err() {
            return Err(EventStoreError::AggregateTypeMismatch {
                aggregate_id: target.aggregate_id,
                requested: target.aggregate_type.clone(),
                stored: stored_type.unwrap_or_default().to_string(),
            });
        }
        if rules.check_version(expected, version).is_err() {
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

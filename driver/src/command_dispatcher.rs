//! Command → load → rehydrate → decide → append → (publish, by the store).

use crate::aggregate::Aggregate;
use crate::event::{DomainEvent, StoredEvent, UncommittedEvent};
use crate::event_store::{EventStore, EventStoreError};
use crate::expected_version::ExpectedVersion;
use crate::ids::{AggregateId, TenantId};
use serde_json::Value;
use tracing::Instrument;

/// How often a command is decided again after losing a race.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all; 1 means no retry.
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// Decide once; a lost race is the caller's `DispatchError::Store(Concurrency)`.
    pub const NONE: RetryPolicy = RetryPolicy { max_attempts: 1 };

    /// Reload and decide again, up to `max_attempts` attempts in all.
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::NONE
    }
}

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError<E: std::error::Error + 'static> {
    /// The aggregate refused the command (validation or invariant).
    #[error("command refused: {0}")]
    Domain(#[source] E),
    /// The stored stream is not one this aggregate can be rebuilt from.
    #[error("stream {aggregate_id} of tenant {tenant_id} cannot be trusted: {reason}")]
    InvalidStream {
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        reason: String,
    },
    /// The store failed or refused (a lost race is `Concurrency`).
    #[error(transparent)]
    Store(#[from] EventStoreError),
}

/// What a dispatched command did.
#[derive(Debug)]
pub struct Dispatched<A> {
    /// The aggregate after the new events.
    pub state: A,
    /// The events appended (empty when the command decided nothing).
    pub events: Vec<StoredEvent>,
    /// How many attempts it took.
    pub attempts: u32,
}

/// Runs commands against aggregates kept in an `EventStore`.
pub struct CommandDispatcher<S> {
    store: S,
    retry: RetryPolicy,
}

impl<S: EventStore> CommandDispatcher<S> {
    /// A dispatcher that does not retry lost races.
    pub fn new(store: S) -> Self {
        CommandDispatcher {
            store,
            retry: RetryPolicy::NONE,
        }
    }

    /// The same dispatcher with a retry policy for lost races.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The store behind it.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Loads and checks a stream, and rebuilds the aggregate from it.
    pub async fn load<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
    ) -> Result<(A, u64), DispatchError<A::Error>> {
        let stored = self.store.load_stream(tenant_id, aggregate_id).await?;
        let events = check_stream::<A>(tenant_id, aggregate_id, &stored)?;
        Ok((A::rehydrate(&events), stored.len() as u64))
    }

    /// Carries out `command` on aggregate `aggregate_id` of `tenant_id`.
    pub async fn dispatch<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        command: &A::Command,
    ) -> Result<Dispatched<A>, DispatchError<A::Error>> {
        self.dispatch_with_metadata(
            tenant_id,
            aggregate_id,
            command,
            Value::Object(Default::default()),
        )
        .await
    }

    /// `dispatch`, with metadata (correlation id, actor, …) on every new event.
    pub async fn dispatch_with_metadata<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        command: &A::Command,
        metadata: Value,
    ) -> Result<Dispatched<A>, DispatchError<A::Error>> {
        let span = tracing::info_span!("command", tenant = %tenant_id, aggregate = %aggregate_id, aggregate_type = A::AGGREGATE_TYPE);
        async {
            let mut attempts = 0;
            loop {
                attempts += 1;
                let (state, version) = self.load::<A>(tenant_id, aggregate_id).await?;
                let decided = state.handle(command).map_err(DispatchError::Domain)?;
                if decided.is_empty() {
                    return Ok(Dispatched {
                        state,
                        events: Vec::new(),
                        attempts,
                    });
                }
                let uncommitted = decided
                    .iter()
                    .map(|event| {
                        let payload = event
                            .to_payload()
                            .map_err(|e| EventStoreError::InvalidAppend(e.to_string()))?;
                        Ok(UncommittedEvent::new(
                            tenant_id,
                            A::AGGREGATE_TYPE,
                            aggregate_id,
                            event.event_type(),
                            payload,
                        )
                        .with_metadata(metadata.clone()))
                    })
                    .collect::<Result<Vec<_>, EventStoreError>>()?;
                match self
                    .store
                    .append(uncommitted, ExpectedVersion::after(version))
                    .await
                {
                    Ok(stored) => {
                        let state = decided
                            .iter()
                            .fold(state, |state, event| state.apply(event));
                        return Ok(Dispatched {
                            state,
                            events: stored,
                            attempts,
                        });
                    }
                    Err(
                        error @ (EventStoreError::Concurrency { .. }
                        | EventStoreError::TransactionConflict(_)),
                    ) if attempts < self.retry.max_attempts => {
                        tracing::debug!(%error, attempts, "lost a race; deciding again");
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// Checks a loaded stream (right tenant, aggregate and type; sequence numbers
/// 1..n with no gap or repeat) and decodes its events.
fn check_stream<A: Aggregate>(
    tenant_id: TenantId,
    aggregate_id: AggregateId,
    stored: &[StoredEvent],
) -> Result<Vec<A::Event>, DispatchError<A::Error>> {
    let invalid = |reason: String| DispatchError::InvalidStream {
        tenant_id,
        aggregate_id,
        reason,
    };
    stored
        .iter()
        .enumerate()
        .map(|(i, event)| {
            if event.tenant_id != tenant_id {
                return Err(invalid(format!(
                    "event {} belongs to tenant {}",
                    event.event_id, event.tenant_id
                )));
            }
            if event.aggregate_id != aggregate_id {
                return Err(invalid(format!(
                    "event {} belongs to aggregate {}",
                    event.event_id, event.aggregate_id
                )));
            }
            if event.aggregate_type != A::AGGREGATE_TYPE {
                return Err(invalid(format!(
                    "event {} is of aggregate type {:?}, not {:?}",
                    event.event_id,
                    event.aggregate_type,
                    A::AGGREGATE_TYPE
                )));
            }
            let expected = i as u64 + 1;
            if event.sequence_number != expected {
                return Err(invalid(format!(
                    "sequence number {} where {expected} belongs (gap or repeat)",
                    event.sequence_number
                )));
            }
            A::Event::from_payload(&event.event_type, &event.payload).map_err(|e| {
                invalid(format!(
                    "event {} ({}) cannot be decoded: {e}",
                    event.event_id, event.event_type
                ))
            })
        })
        .collect()
}

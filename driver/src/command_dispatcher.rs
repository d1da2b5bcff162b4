//! Command → load → rehydrate → decide → append → (publish, by the store).

use crate::aggregate::Aggregate;
use crate::event::{DomainEvent, StoredEvent, UncommittedEvent};
use crate::event_store::{EventStore, EventStoreError};
use crate::expected_version::ExpectedVersion;
use crate::ids::{AggregateId, EventId, TenantId};
use crate::personal_data::{PersonalData, PersonalDataError};
use crate::snapshots::{NoSnapshots, Snapshot, SnapshotPolicy, SnapshotStore};
use crate::upcasting::{UpcastError, Upcasters};
use serde_json::Value;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Mutex;
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
        /// The tenant whose stream it is.
        tenant_id: TenantId,
        /// The aggregate whose stream it is.
        aggregate_id: AggregateId,
        /// What is wrong with it.
        reason: String,
    },
    /// The store failed or refused (a lost race is `Concurrency`).
    #[error(transparent)]
    Store(#[from] EventStoreError),
    /// A stored event could not be brought to its current version.
    #[error(transparent)]
    Upcast(#[from] UpcastError),
    /// Personal data could not be sealed (before the append: nothing was
    /// appended) or opened.
    #[error(transparent)]
    PersonalData(#[from] PersonalDataError),
}

/// What a dispatched command did.
#[derive(Debug)]
pub struct Dispatched<A> {
    /// The aggregate after the new events (for a repeated command: its
    /// current state).
    pub state: A,
    /// The events appended (empty when the command decided nothing); for a
    /// command id seen before, the events it appended then.
    pub events: Vec<StoredEvent>,
    /// How many decisions on a freshly read state it took (1 without a lost race).
    pub attempts: u32,
    /// Whether this was a command id already carried out: nothing was
    /// appended now, `events` are the first time's.
    pub repeated: bool,
}

/// Runs commands against aggregates kept in an `EventStore`.
///
/// It keeps the last state it saw of each aggregate (up to a bounded number
/// of aggregates) and decides on it without loading: the append's expected
/// version proves the state was current. When it was not (another writer got
/// in), or when the command is refused, the dispatcher first catches up with
/// the stream and decides again; only a race lost on a state just read
/// counts as an attempt of the retry policy.
///
/// With a [`SnapshotStore`] ([`CommandDispatcher::with_snapshots`]) a load
/// starts from the aggregate's latest usable snapshot and replays only the
/// events after it; snapshots are taken after appends, as the policy says,
/// in a task of their own.
pub struct CommandDispatcher<S, N = NoSnapshots> {
    store: S,
    retry: RetryPolicy,
    cache: StateCache,
    upcasters: Upcasters,
    snapshots: N,
    policy: SnapshotPolicy,
    personal_data: Option<PersonalData>,
}

impl<S: EventStore> CommandDispatcher<S> {
    /// A dispatcher that does not retry lost races, caches up to 4096
    /// aggregates and takes no snapshots.
    pub fn new(store: S) -> Self {
        CommandDispatcher {
            store,
            retry: RetryPolicy::NONE,
            cache: StateCache::new(4096),
            upcasters: Upcasters::none(),
            snapshots: NoSnapshots,
            policy: SnapshotPolicy {
                every: None,
                replayed_more_than: None,
            },
            personal_data: None,
        }
    }
}

impl<S: EventStore, N: SnapshotStore> CommandDispatcher<S, N> {
    /// The same dispatcher, reading and taking snapshots in `snapshots` as
    /// `policy` says.
    pub fn with_snapshots<M: SnapshotStore>(
        self,
        snapshots: M,
        policy: SnapshotPolicy,
    ) -> CommandDispatcher<S, M> {
        CommandDispatcher {
            store: self.store,
            retry: self.retry,
            cache: self.cache,
            upcasters: self.upcasters,
            snapshots,
            policy,
            personal_data: self.personal_data,
        }
    }

    /// The same dispatcher sealing the declared personal fields of new
    /// events before they are appended, and opening sealed fields of every
    /// event it reads (a forgotten subject's read back as
    /// [`crate::personal_data::FORGOTTEN`]). An aggregate whose events carry
    /// sealed fields is neither cached nor snapshotted: its state may hold
    /// personal data, and forgetting must leave no copy behind.
    pub fn with_personal_data(mut self, personal_data: PersonalData) -> Self {
        self.personal_data = Some(personal_data);
        self
    }

    /// The same dispatcher reading old event versions through `upcasters`
    /// and writing new events at their current versions.
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// The same dispatcher with a retry policy for lost races.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The same dispatcher keeping at most `aggregates` states (0: load every time).
    pub fn with_cache_capacity(mut self, aggregates: usize) -> Self {
        self.cache = StateCache::new(aggregates);
        self
    }

    /// The store behind it.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Loads and checks a stream, and rebuilds the aggregate from it: from
    /// its latest usable snapshot and the events after it, or from all its
    /// events.
    pub async fn load<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
    ) -> Result<(A, u64), DispatchError<A::Error>> {
        let (state, version, _, _) = self.load_counting::<A>(tenant_id, aggregate_id).await?;
        Ok((state, version))
    }

    /// `stored` with its sealed fields opened, and whether it had any.
    async fn opened(
        &self,
        stored: Vec<StoredEvent>,
    ) -> Result<(Vec<StoredEvent>, bool), PersonalDataError> {
        match &self.personal_data {
            None => Ok((stored, false)),
            Some(personal) => {
                let (events, sealed) = personal.open_counting(stored).await?;
                Ok((events, sealed > 0))
            }
        }
    }

    /// [`Self::load`], with how many events it replayed and whether they
    /// carried personal data; a long replay without any is snapshotted when
    /// the policy says so.
    async fn load_counting<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
    ) -> Result<(A, u64, u64, bool), DispatchError<A::Error>> {
        let (state, from, tail) = self.latest_snapshot::<A>(tenant_id, aggregate_id).await;
        let (state, version, personal) = match tail {
            Some(stored) => {
                let (stored, personal) = self.opened(stored).await?;
                let (state, version) =
                    self.follow_on(tenant_id, aggregate_id, state, from, stored, personal)?;
                (state, version, personal)
            }
            None => self.catch_up(tenant_id, aggregate_id, state, from).await?,
        };
        let replayed = version - from;
        if !personal && self.policy.wants(version, 0, replayed) {
            self.take_snapshot(tenant_id, aggregate_id, &state, version);
        }
        Ok((state, version, replayed, personal))
    }

    /// The state of the aggregate's latest snapshot of its current state
    /// version and the stream version it was taken at, with the events after
    /// it when the snapshot store read them in the same request; the empty
    /// state at 0 when there is none, or it cannot be read (then with a
    /// warning, and without events: they would follow the unread snapshot).
    async fn latest_snapshot<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
    ) -> (A, u64, Option<Vec<StoredEvent>>) {
        if A::STATE_VERSION == 0 {
            return (A::default(), 0, None);
        }
        match self
            .snapshots
            .load_with_tail(tenant_id, A::AGGREGATE_TYPE, aggregate_id, A::STATE_VERSION)
            .await
        {
            Ok((Some(snapshot), tail)) => match A::from_snapshot(&snapshot.state) {
                Ok(state) => (state, snapshot.stream_version, tail),
                Err(reason) => {
                    tracing::warn!(%tenant_id, %aggregate_id, %reason, "a snapshot that cannot be read is ignored; replaying the stream");
                    (A::default(), 0, None)
                }
            },
            Ok((None, tail)) => (A::default(), 0, tail),
            Err(error) => {
                tracing::warn!(%tenant_id, %aggregate_id, %error, "no snapshot to be had; replaying the stream");
                (A::default(), 0, None)
            }
        }
    }

    /// Saves `state` at `version` as a snapshot, in a task of its own: the
    /// command's path never waits for it, and its failure is only logged.
    fn take_snapshot<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        state: &A,
        version: u64,
    ) {
        if A::STATE_VERSION == 0 || version == 0 {
            return;
        }
        let Some(serialized) = state.to_snapshot() else {
            return;
        };
        let snapshot = Snapshot {
            tenant_id,
            aggregate_type: A::AGGREGATE_TYPE.to_string(),
            aggregate_id,
            state_version: A::STATE_VERSION,
            stream_version: version,
            state: serialized,
        };
        let snapshots = self.snapshots.clone();
        tokio::spawn(async move {
            if let Err(error) = snapshots.save(snapshot).await {
                tracing::warn!(%tenant_id, %aggregate_id, %error, "taking a snapshot failed; the command is not affected");
            }
        });
    }

    /// Applies the events after `version` to `state`, checking that they
    /// follow on; and whether they carried personal data.
    async fn catch_up<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        state: A,
        version: u64,
    ) -> Result<(A, u64, bool), DispatchError<A::Error>> {
        let stored = self
            .store
            .load_stream_from(tenant_id, aggregate_id, version + 1)
            .await?;
        let (stored, personal) = self.opened(stored).await?;
        let (state, version) =
            self.follow_on(tenant_id, aggregate_id, state, version, stored, personal)?;
        Ok((state, version, personal))
    }

    /// Applies `stored`, the events after `version` (opened), to `state`,
    /// checking that they follow on; caches the result unless `personal`.
    fn follow_on<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        state: A,
        version: u64,
        stored: Vec<StoredEvent>,
        personal: bool,
    ) -> Result<(A, u64), DispatchError<A::Error>> {
        let stored = self.upcasters.upcast_all(stored)?;
        let events = check_stream::<A>(tenant_id, aggregate_id, version, &stored)?;
        let version = version + events.len() as u64;
        let state = events.iter().fold(state, |state, event| state.apply(event));
        if personal {
            self.cache.forget(tenant_id, aggregate_id);
        } else {
            self.cache.put(tenant_id, aggregate_id, &state, version);
        }
        Ok((state, version))
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
        self.run(tenant_id, aggregate_id, command, metadata, None)
            .await
    }

    /// Carries out `command` at most once for `command_id` (for example an
    /// HTTP request's idempotency key). Its events get ids derived from the
    /// command id ([`EventId::of_command`]), so a retry — after a timeout,
    /// from another process, at the same time — appends nothing and returns
    /// the first time's events (`repeated`), even when the state has moved
    /// on and a new decision would differ. Ids already stored in another
    /// stream are `DuplicateEvent` (ES004), as for any append.
    pub async fn dispatch_once<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        command_id: uuid::Uuid,
        command: &A::Command,
        metadata: Value,
    ) -> Result<Dispatched<A>, DispatchError<A::Error>> {
        self.run(tenant_id, aggregate_id, command, metadata, Some(command_id))
            .await
    }

    /// The first time's events of `command_id` in this stream, if it was
    /// carried out: the events whose ids derive from it, in order.
    async fn done_before<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        command_id: uuid::Uuid,
    ) -> Result<Option<Dispatched<A>>, DispatchError<A::Error>> {
        let first = EventId::of_command(tenant_id, command_id, 0);
        let stored = self.store.load_stream(tenant_id, aggregate_id).await?;
        let (stored, personal) = self.opened(stored).await?;
        let Some(start) = stored.iter().position(|e| e.event_id == first) else {
            return Ok(None);
        };
        let events: Vec<StoredEvent> = stored[start..]
            .iter()
            .enumerate()
            .take_while(|(i, e)| {
                e.event_id == EventId::of_command(tenant_id, command_id, *i as u32)
            })
            .map(|(_, e)| e.clone())
            .collect();
        // The current state, from the stream just read (no second load).
        let (state, _) =
            self.follow_on(tenant_id, aggregate_id, A::default(), 0, stored, personal)?;
        Ok(Some(Dispatched {
            state,
            events,
            attempts: 1,
            repeated: true,
        }))
    }

    async fn run<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        command: &A::Command,
        metadata: Value,
        command_id: Option<uuid::Uuid>,
    ) -> Result<Dispatched<A>, DispatchError<A::Error>> {
        let span = tracing::info_span!("command", tenant = %tenant_id, aggregate = %aggregate_id, aggregate_type = A::AGGREGATE_TYPE);
        async {
            // Whether the state rests on personal data: then it is not kept.
            let (mut state, mut version, mut fresh, mut personal) =
                match self.cache.get::<A>(tenant_id, aggregate_id) {
                    Some((state, version)) => (state, version, false, false),
                    None => {
                        let (state, version, _, personal) =
                            self.load_counting::<A>(tenant_id, aggregate_id).await?;
                        (state, version, true, personal)
                    }
                };
            let mut attempts = 1;
            loop {
                let decided = match state.handle(command) {
                    Ok(decided) => decided,
                    // A refusal must rest on the current state, not a cached one.
                    Err(_) if !fresh => {
                        let caught_up;
                        (state, version, caught_up) = self
                            .catch_up(tenant_id, aggregate_id, state, version)
                            .await?;
                        personal |= caught_up;
                        fresh = true;
                        continue;
                    }
                    Err(refusal) => {
                        // A refusal of a command carried out before is its
                        // retry on a state that has moved on.
                        if let Some(id) = command_id {
                            if let Some(done) =
                                self.done_before(tenant_id, aggregate_id, id).await?
                            {
                                return Ok(done);
                            }
                        }
                        return Err(DispatchError::Domain(refusal));
                    }
                };
                if decided.is_empty() {
                    if let Some(id) = command_id {
                        if let Some(done) = self.done_before(tenant_id, aggregate_id, id).await? {
                            return Ok(done);
                        }
                    }
                    return Ok(Dispatched {
                        state,
                        events: Vec::new(),
                        attempts,
                        repeated: false,
                    });
                }
                let mut uncommitted = decided
                    .iter()
                    .enumerate()
                    .map(|(index, event)| {
                        let new = UncommittedEvent::from_domain(
                            tenant_id,
                            A::AGGREGATE_TYPE,
                            aggregate_id,
                            event,
                        )
                        .map_err(|e| EventStoreError::InvalidAppend(e.to_string()))?
                        .with_metadata(metadata.clone())
                        .with_event_version(self.upcasters.current_version(event.event_type()));
                        Ok(match command_id {
                            Some(id) => {
                                new.with_event_id(EventId::of_command(tenant_id, id, index as u32))
                            }
                            None => new,
                        })
                    })
                    .collect::<Result<Vec<_>, EventStoreError>>()?;
                // The payloads as decided, for the reply: the store keeps
                // (and answers with) them sealed.
                let mut clear = None;
                if let Some(data) = &self.personal_data {
                    let payloads: Vec<Value> =
                        uncommitted.iter().map(|e| e.payload.clone()).collect();
                    if data.seal(&mut uncommitted).await? > 0 {
                        clear = Some(payloads);
                    }
                }
                let sealed = clear.is_some();
                let sent_at = uncommitted[0].occurred_at;
                match self
                    .store
                    .append(uncommitted, ExpectedVersion::after(version))
                    .await
                {
                    // The store's exact retry: these ids are stored with this
                    // content already (another process carried the command
                    // out at the same time, or a reply was lost).
                    Ok(stored)
                        if command_id.is_some()
                            && stored.first().is_some_and(|e| e.sequence_number <= version) =>
                    {
                        // As stored (the store's reply to a retry carries the
                        // retry's own time and metadata).
                        self.cache.forget(tenant_id, aggregate_id);
                        let id = command_id.expect("checked");
                        if let Some(done) = self.done_before(tenant_id, aggregate_id, id).await? {
                            return Ok(done);
                        }
                        let (state, _) = self.load::<A>(tenant_id, aggregate_id).await?;
                        return Ok(Dispatched {
                            state,
                            events: stored,
                            attempts,
                            repeated: true,
                        });
                    }
                    Ok(mut stored) => {
                        let state = decided
                            .iter()
                            .fold(state, |state, event| state.apply(event));
                        let now = version + stored.len() as u64;
                        if personal || sealed {
                            self.cache.forget(tenant_id, aggregate_id);
                        } else {
                            self.cache.put(tenant_id, aggregate_id, &state, now);
                            // A long replay was snapshotted by the load already.
                            if self.policy.wants(now, stored.len() as u64, 0) {
                                self.take_snapshot(tenant_id, aggregate_id, &state, now);
                            }
                        }
                        if let Some(payloads) = clear {
                            for (event, payload) in stored.iter_mut().zip(payloads) {
                                event.payload = payload;
                            }
                        }
                        let (events, repeated) = match command_id {
                            // Another process may have appended the same
                            // events from the same state a moment before (the
                            // store then answers as to a retry): read them
                            // back as stored, one short read after `version`.
                            Some(_) => {
                                let mut events = self
                                    .store
                                    .load_stream_from(tenant_id, aggregate_id, version + 1)
                                    .await?;
                                events.truncate(stored.len());
                                let (events, _) = self.opened(events).await?;
                                let repeated =
                                    events.first().is_some_and(|e| e.occurred_at != sent_at);
                                (events, repeated)
                            }
                            None => (stored, false),
                        };
                        return Ok(Dispatched {
                            state,
                            events,
                            attempts,
                            repeated,
                        });
                    }
                    // The ids are stored with other content: in this stream,
                    // the command was carried out on an older state.
                    Err(EventStoreError::DuplicateEvent(reason)) if command_id.is_some() => {
                        let id = command_id.expect("checked");
                        self.cache.forget(tenant_id, aggregate_id);
                        return match self.done_before(tenant_id, aggregate_id, id).await? {
                            Some(done) => Ok(done),
                            None => Err(EventStoreError::DuplicateEvent(reason).into()),
                        };
                    }
                    Err(
                        EventStoreError::Concurrency { .. }
                        | EventStoreError::TransactionConflict(_),
                    ) if !fresh => {
                        tracing::debug!("cached state was stale; catching up");
                    }
                    Err(
                        error @ (EventStoreError::Concurrency { .. }
                        | EventStoreError::TransactionConflict(_)),
                    ) if attempts < self.retry.max_attempts => {
                        tracing::debug!(%error, attempts, "lost a race; deciding again");
                        attempts += 1;
                    }
                    Err(error) => {
                        self.cache.forget(tenant_id, aggregate_id);
                        return Err(error.into());
                    }
                }
                let caught_up;
                (state, version, caught_up) = self
                    .catch_up(tenant_id, aggregate_id, state, version)
                    .await?;
                personal |= caught_up;
                fresh = true;
            }
        }
        .instrument(span)
        .await
    }
}

/// A cached state (as `Any`) and its version, per aggregate type and stream.
type CachedStates = HashMap<(TypeId, TenantId, AggregateId), (Box<dyn Any + Send + Sync>, u64)>;

/// The last state seen of each aggregate, bounded; a miss just means a load.
struct StateCache {
    capacity: usize,
    entries: Mutex<CachedStates>,
}

impl StateCache {
    fn new(capacity: usize) -> Self {
        StateCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CachedStates> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
    ) -> Option<(A, u64)> {
        let entries = self.lock();
        let (state, version) = entries.get(&(TypeId::of::<A>(), tenant_id, aggregate_id))?;
        state
            .downcast_ref::<A>()
            .map(|state| (state.clone(), *version))
    }

    fn put<A: Aggregate>(
        &self,
        tenant_id: TenantId,
        aggregate_id: AggregateId,
        state: &A,
        version: u64,
    ) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        let key = (TypeId::of::<A>(), tenant_id, aggregate_id);
        if entries
            .get(&key)
            .is_some_and(|(_, cached)| *cached >= version)
        {
            return; // never go back to an older state
        }
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            // Full: drop an arbitrary entry; it is only a cache.
            if let Some(victim) = entries.keys().next().copied() {
                entries.remove(&victim);
            }
        }
        entries.insert(key, (Box::new(state.clone()), version));
    }

    fn forget(&self, tenant_id: TenantId, aggregate_id: AggregateId) {
        self.lock()
            .retain(|(_, t, a), _| !(*t == tenant_id && *a == aggregate_id));
    }
}

/// Checks loaded events (right tenant, aggregate and type; sequence numbers
/// after+1, after+2, … with no gap or repeat) and decodes them.
fn check_stream<A: Aggregate>(
    tenant_id: TenantId,
    aggregate_id: AggregateId,
    after: u64,
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
            let expected = after + i as u64 + 1;
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

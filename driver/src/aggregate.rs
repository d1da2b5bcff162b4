//! The aggregate interface: pure decisions, no I/O.

use crate::event::DomainEvent;
use serde_json::Value;

/// An event-sourced aggregate: `handle` decides, `apply` evolves.
///
/// Both are pure, so an aggregate is tested with given (events) / when
/// (command) / then (events or error), with no store at all.
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// The stream's `aggregate_type`, fixed for life.
    const AGGREGATE_TYPE: &'static str;
    /// What the aggregate can be asked to do.
    type Command: Send + Sync;
    /// What it records.
    type Event: DomainEvent + Send + Sync;
    /// Why it refuses a command (domain validation or invariant).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decides the events a command causes, given the current state.
    fn handle(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// The state after `event`.
    fn apply(self, event: &Self::Event) -> Self;

    /// The schema version of this state's snapshots (see
    /// [`Aggregate::to_snapshot`]); 0, the default, means it takes none.
    /// Change it whenever the snapshot's shape changes: snapshots of another
    /// version are then not read, and the stream is replayed instead.
    const STATE_VERSION: u32 = 0;

    /// The state as a snapshot at `STATE_VERSION`; None (the default) when
    /// the aggregate takes no snapshots.
    fn to_snapshot(&self) -> Option<Value> {
        None
    }

    /// The state from a snapshot of `STATE_VERSION`, or why it cannot be
    /// read (it is then ignored and the stream replayed).
    fn from_snapshot(snapshot: &Value) -> Result<Self, String> {
        let _ = snapshot;
        Err("this aggregate takes no snapshots".into())
    }

    /// Rebuilds the state from its events, in order.
    fn rehydrate<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::default(), Self::apply)
    }
}

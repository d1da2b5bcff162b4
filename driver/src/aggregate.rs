//! The aggregate interface: pure decisions, no I/O.

use crate::event::DomainEvent;

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

    /// Rebuilds the state from its events, in order.
    fn rehydrate<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::default(), Self::apply)
    }
}

//! AI jobs: they read tenant snapshots of read models and write insights to
//! a sink, never to the event streams, and never in the way of the write path.
//! The inventory anomaly runner and its insight sink live in
//! [`crate::inventory`]; their old paths stay here.

pub mod insight_sink;
pub mod inventory_anomaly_runner;

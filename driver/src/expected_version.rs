//! Optimistic concurrency: what the caller believes about a stream's version.
//!
//! The rule and its SQL encoding live in the contract crate, shared with the
//! extension; this is its place in the driver's domain.

pub use forgeerp_contract::ExpectedVersion;

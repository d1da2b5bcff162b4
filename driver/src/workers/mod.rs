//! Background workers: projections that follow the feed.

pub mod projection_worker;

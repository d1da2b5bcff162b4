//! Projections: read models kept up to date from the feed.

pub mod inventory_stock;

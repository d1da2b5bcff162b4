//! Projections: read models kept up to date from the feed. The inventory
//! stock projection lives in [`crate::inventory`]; its old path stays here.

pub mod inventory_stock;

//! The old path of the inventory stock projection and reader, kept for users: re-exports only.

pub use crate::inventory::stock_projection::{
    InventoryStockProjection, StockLevel, StockPoint, MODEL,
};
pub use crate::inventory::stock_reader::InventoryStockReader;

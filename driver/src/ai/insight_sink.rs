//! The old path of [`crate::inventory::insight_sink`], kept for users: re-exports only.

pub use crate::inventory::insight_sink::{
    AiInsight, AiInsightSink, InMemoryInsightSink, InsightKey, PgInsightSink,
};

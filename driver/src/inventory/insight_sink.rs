//! Where AI jobs put their insights: [`InMemoryInsightSink`] for tests and
//! [`PgInsightSink`] (`forgeerp_inventory.ai_insights`, tenant-isolated) for
//! operators. Insights are not domain events: nothing here touches the streams.

use super::anomaly::{Anomaly, AnomalyDetector, AnomalyKind, InventorySnapshot, Severity};
use crate::ids::{AggregateId, TenantId};
use crate::read_model::ReadModelError;
use crate::tenant_binding::{in_bound_transaction, query_bound, Access};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// What identifies an insight: tenant, item, kind and the movement's time.
pub type InsightKey = (TenantId, AggregateId, AnomalyKind, DateTime<Utc>);

/// One finding about one item of one tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AiInsight {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The item.
    pub item: AggregateId,
    /// Its SKU.
    pub sku: Option<String>,
    /// Its name.
    pub name: String,
    /// What was found.
    pub kind: AnomalyKind,
    /// How bad.
    pub severity: Severity,
    /// The detector's score.
    pub score: f64,
    /// Units moved.
    pub observed: f64,
    /// Units expected.
    pub expected: f64,
    /// When the movement happened.
    pub occurred_at: DateTime<Utc>,
    /// In words, with the numbers.
    pub explanation: String,
}

impl AiInsight {
    /// An insight from a detector finding about `item`.
    pub fn from_anomaly(
        tenant_id: TenantId,
        sku: Option<String>,
        name: String,
        anomaly: Anomaly,
    ) -> Self {
        AiInsight {
            tenant_id,
            item: anomaly.item,
            sku,
            name,
            kind: anomaly.kind,
            severity: anomaly.severity,
            score: anomaly.score,
            observed: anomaly.observed,
            expected: anomaly.expected,
            occurred_at: anomaly.at,
            explanation: anomaly.explanation,
        }
    }

    /// Every finding of `detector` on `snapshot`, item by item, as insights
    /// of `tenant_id` (the tenant the snapshot was read for): what one
    /// runner pass emits.
    pub fn detect(
        detector: &AnomalyDetector,
        tenant_id: TenantId,
        snapshot: &InventorySnapshot,
    ) -> Vec<Self> {
        let mut insights = Vec::new();
        for item in &snapshot.items {
            for anomaly in detector.detect_item(item.item, &item.historical_trend) {
                insights.push(AiInsight::from_anomaly(
                    tenant_id,
                    item.sku.clone(),
                    item.name.clone(),
                    anomaly,
                ));
            }
        }
        insights
    }

    /// Its identity: the same finding found again replaces it.
    pub fn key(&self) -> InsightKey {
        (self.tenant_id, self.item, self.kind, self.occurred_at)
    }
}

/// Receives the insights of one tenant's run.
pub trait AiInsightSink: Send + Sync + 'static {
    /// Records `insights` (all of `tenant_id`); idempotent by [`AiInsight::key`].
    fn emit(
        &self,
        tenant_id: TenantId,
        insights: &[AiInsight],
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send;
}

/// Insights kept in memory, for tests.
#[derive(Clone, Default)]
pub struct InMemoryInsightSink {
    insights: Arc<Mutex<BTreeMap<InsightKey, AiInsight>>>,
}

impl InMemoryInsightSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every insight of `tenant_id`.
    pub fn insights(&self, tenant_id: TenantId) -> Vec<AiInsight> {
        self.insights
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|i| i.tenant_id == tenant_id)
            .cloned()
            .collect()
    }
}

impl AiInsightSink for InMemoryInsightSink {
    async fn emit(
        &self,
        tenant_id: TenantId,
        insights: &[AiInsight],
    ) -> Result<(), ReadModelError> {
        let mut stored = self.insights.lock().unwrap_or_else(|p| p.into_inner());
        for insight in insights.iter().filter(|i| i.tenant_id == tenant_id) {
            stored.insert(insight.key(), insight.clone());
        }
        Ok(())
    }
}

/// Insights in `forgeerp_inventory.ai_insights`, one row per finding, written
/// through the tenant binding.
#[derive(Clone)]
pub struct PgInsightSink {
    pool: Pool,
}

impl PgInsightSink {
    /// A sink writing through `pool`.
    pub fn new(pool: Pool) -> Self {
        PgInsightSink { pool }
    }

    /// The insights of `tenant_id`, most severe and most recent first.
    pub async fn insights(
        pool: &Pool,
        tenant_id: TenantId,
    ) -> Result<Vec<AiInsight>, ReadModelError> {
        let rows: Vec<tokio_postgres::Row> = query_bound::<ReadModelError>(
            pool,
            tenant_id,
            include_str!("../../sql/inventory/insights_of_tenant.sql"),
            &[&tenant_id.as_uuid()],
        )
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.get(3);
                let severity: String = r.get(4);
                Ok(AiInsight {
                    tenant_id,
                    item: AggregateId::new(r.get(0))
                        .map_err(|e| ReadModelError::Decode(e.to_string()))?,
                    sku: r.get(1),
                    name: r.get(2),
                    kind: serde_json::from_value(serde_json::Value::String(kind))
                        .map_err(|e| ReadModelError::Decode(e.to_string()))?,
                    severity: serde_json::from_value(serde_json::Value::String(severity))
                        .map_err(|e| ReadModelError::Decode(e.to_string()))?,
                    score: r.get(5),
                    observed: r.get(6),
                    expected: r.get(7),
                    occurred_at: r.get(8),
                    explanation: r.get(9),
                })
            })
            .collect()
    }
}

impl AiInsightSink for PgInsightSink {
    async fn emit(
        &self,
        tenant_id: TenantId,
        insights: &[AiInsight],
    ) -> Result<(), ReadModelError> {
        // One row per key (the strongest finding), or the insert would touch a row twice.
        let mut by_key: BTreeMap<InsightKey, &AiInsight> = BTreeMap::new();
        for insight in insights.iter().filter(|i| i.tenant_id == tenant_id) {
            let kept = by_key.entry(insight.key()).or_insert(insight);
            if insight.score > kept.score {
                *kept = insight;
            }
        }
        let insights: Vec<&AiInsight> = by_key.into_values().collect();
        if insights.is_empty() {
            return Ok(());
        }
        let column =
            |f: fn(&AiInsight) -> String| insights.iter().map(|i| f(i)).collect::<Vec<_>>();
        let items: Vec<uuid::Uuid> = insights.iter().map(|i| i.item.as_uuid()).collect();
        let kinds = column(|i| i.kind.as_str().to_string());
        let at: Vec<DateTime<Utc>> = insights.iter().map(|i| i.occurred_at).collect();
        let severities = column(|i| i.severity.as_str().to_string());
        let scores: Vec<f64> = insights.iter().map(|i| i.score).collect();
        let observed: Vec<f64> = insights.iter().map(|i| i.observed).collect();
        let expected: Vec<f64> = insights.iter().map(|i| i.expected).collect();
        let skus: Vec<Option<String>> = insights.iter().map(|i| i.sku.clone()).collect();
        let names = column(|i| i.name.clone());
        let explanations = column(|i| i.explanation.clone());
        in_bound_transaction::<_, ReadModelError>(
            &self.pool,
            tenant_id,
            Access::ReadWrite,
            async |tx| {
                tx.execute(
                    include_str!("../../sql/inventory/insights_upsert.sql"),
                    &[
                        &tenant_id.as_uuid(),
                        &items,
                        &kinds,
                        &at,
                        &severities,
                        &scores,
                        &observed,
                        &expected,
                        &skus,
                        &names,
                        &explanations,
                    ],
                )
                .await?;
                Ok(())
            },
        )
        .await
    }
}

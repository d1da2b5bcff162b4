//! `TenantStore<K, V>`: a read model's rows, one tenant at a time.
//!
//! Read models are disposable: clearing a tenant and replaying its events
//! rebuilds them. Every call names its tenant; no call can see another's rows.

use crate::ids::TenantId;
use crate::tenant_binding::{in_bound_transaction, Access};
use deadpool_postgres::Pool;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Mutex;

/// Why a read-model operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadModelError {
    /// No connection could be had, or it broke.
    #[error("connection failed: {0}")]
    Connection(String),
    /// A database error, with its SQLSTATE.
    #[error("database error {sqlstate}: {message}")]
    Database {
        /// The five-character SQLSTATE.
        sqlstate: String,
        /// The server's message.
        message: String,
    },
    /// A stored key or value could not be read back as `K` or `V`.
    #[error("stored entry could not be decoded: {0}")]
    Decode(String),
}

crate::db_error::from_db_failure!(ReadModelError);

/// A read model's entries, per tenant.
pub trait TenantStore<K, V>: Send + Sync {
    /// The value under `key` for `tenant_id`.
    fn get(
        &self,
        tenant_id: TenantId,
        key: &K,
    ) -> impl Future<Output = Result<Option<V>, ReadModelError>> + Send;
    /// Stores `value` under `key` (insert or replace).
    fn put(
        &self,
        tenant_id: TenantId,
        key: &K,
        value: &V,
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send;
    /// Removes `key`; whether it was there.
    fn delete(
        &self,
        tenant_id: TenantId,
        key: &K,
    ) -> impl Future<Output = Result<bool, ReadModelError>> + Send;
    /// All entries of the tenant, ordered by key text.
    fn list(
        &self,
        tenant_id: TenantId,
    ) -> impl Future<Output = Result<Vec<(K, V)>, ReadModelError>> + Send;
    /// Removes every entry of the tenant (before a rebuild); how many.
    fn clear(
        &self,
        tenant_id: TenantId,
    ) -> impl Future<Output = Result<u64, ReadModelError>> + Send;
}

/// Entries in memory, for tests.
pub struct InMemoryTenantStore<K, V> {
    entries: Mutex<HashMap<TenantId, BTreeMap<String, V>>>,
    _key: PhantomData<fn() -> K>,
}

impl<K, V> Default for InMemoryTenantStore<K, V> {
    fn default() -> Self {
        InMemoryTenantStore {
            entries: Mutex::default(),
            _key: PhantomData,
        }
    }
}

impl<K, V> InMemoryTenantStore<K, V> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, BTreeMap<String, V>>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<K, V> TenantStore<K, V> for InMemoryTenantStore<K, V>
where
    K: Display + FromStr + Send + Sync,
    V: Clone + Send + Sync,
{
    async fn get(&self, tenant_id: TenantId, key: &K) -> Result<Option<V>, ReadModelError> {
        Ok(self
            .lock()
            .get(&tenant_id)
            .and_then(|entries| entries.get(&key.to_string()).cloned()))
    }

    async fn put(&self, tenant_id: TenantId, key: &K, value: &V) -> Result<(), ReadModelError> {
        self.lock()
            .entry(tenant_id)
            .or_default()
            .insert(key.to_string(), value.clone());
        Ok(())
    }

    async fn delete(&self, tenant_id: TenantId, key: &K) -> Result<bool, ReadModelError> {
        Ok(self
            .lock()
            .get_mut(&tenant_id)
            .is_some_and(|entries| entries.remove(&key.to_string()).is_some()))
    }

    async fn list(&self, tenant_id: TenantId) -> Result<Vec<(K, V)>, ReadModelError> {
        let entries = self.lock();
        let Some(entries) = entries.get(&tenant_id) else {
            return Ok(Vec::new());
        };
        entries
            .iter()
            .map(|(key, value)| {
                let key = key
                    .parse()
                    .map_err(|_| ReadModelError::Decode(format!("key {key:?}")))?;
                Ok((key, value.clone()))
            })
            .collect()
    }

    async fn clear(&self, tenant_id: TenantId) -> Result<u64, ReadModelError> {
        Ok(self
            .lock()
            .remove(&tenant_id)
            .map_or(0, |entries| entries.len() as u64))
    }
}

/// Entries in `forgeerp_read.entries`, one `model` name per read model.
///
/// Each call is a transaction bound to its tenant (`forgeerp.bind_tenant`),
/// filters by tenant, and — for any role but a superuser — passes the
/// table's row-level security, which admits only the bound tenant's rows.
pub struct PgTenantStore<K, V> {
    pool: Pool,
    model: String,
    _entry: PhantomData<fn() -> (K, V)>,
}

impl<K, V> PgTenantStore<K, V> {
    /// The read model `model` in the database behind `pool`.
    pub fn new(pool: Pool, model: impl Into<String>) -> Self {
        PgTenantStore {
            pool,
            model: model.into(),
            _entry: PhantomData,
        }
    }
}

fn decode<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ReadModelError> {
    serde_json::from_value(value).map_err(|e| ReadModelError::Decode(e.to_string()))
}

impl<K, V> TenantStore<K, V> for PgTenantStore<K, V>
where
    K: Display + FromStr + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    async fn get(&self, tenant_id: TenantId, key: &K) -> Result<Option<V>, ReadModelError> {
        let key = key.to_string();
        in_bound_transaction::<_, ReadModelError>(&self.pool, tenant_id, Access::ReadWrite, async |tx| {
            let row = tx
                .query_opt(
                    "SELECT value FROM forgeerp_read.entries WHERE model = $1 AND tenant_id = $2 AND key = $3",
                    &[&self.model, &tenant_id.as_uuid(), &key],
                )
                .await?;
            row.map(|row| decode(row.get(0))).transpose()
        })
        .await
    }

    async fn put(&self, tenant_id: TenantId, key: &K, value: &V) -> Result<(), ReadModelError> {
        let key = key.to_string();
        let value =
            serde_json::to_value(value).map_err(|e| ReadModelError::Decode(e.to_string()))?;
        in_bound_transaction::<_, ReadModelError>(&self.pool, tenant_id, Access::ReadWrite, async |tx| {
            tx.execute(
                "INSERT INTO forgeerp_read.entries (model, tenant_id, key, value) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (model, tenant_id, key) DO UPDATE SET value = excluded.value, updated_at = now()",
                &[&self.model, &tenant_id.as_uuid(), &key, &value],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, tenant_id: TenantId, key: &K) -> Result<bool, ReadModelError> {
        let key = key.to_string();
        in_bound_transaction::<_, ReadModelError>(&self.pool, tenant_id, Access::ReadWrite, async |tx| {
            let deleted = tx
                .execute(
                    "DELETE FROM forgeerp_read.entries WHERE model = $1 AND tenant_id = $2 AND key = $3",
                    &[&self.model, &tenant_id.as_uuid(), &key],
                )
                .await?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn list(&self, tenant_id: TenantId) -> Result<Vec<(K, V)>, ReadModelError> {
        in_bound_transaction::<_, ReadModelError>(&self.pool, tenant_id, Access::ReadWrite, async |tx| {
            let rows = tx
                .query(
                    "SELECT key, value FROM forgeerp_read.entries WHERE model = $1 AND tenant_id = $2 ORDER BY key",
                    &[&self.model, &tenant_id.as_uuid()],
                )
                .await?;
            rows.into_iter()
                .map(|row| {
                    let key: String = row.get(0);
                    let parsed = key.parse().map_err(|_| ReadModelError::Decode(format!("key {key:?}")))?;
                    Ok((parsed, decode(row.get(1))?))
                })
                .collect()
        })
        .await
    }

    async fn clear(&self, tenant_id: TenantId) -> Result<u64, ReadModelError> {
        in_bound_transaction::<_, ReadModelError>(
            &self.pool,
            tenant_id,
            Access::ReadWrite,
            async |tx| {
                Ok(tx
                    .execute(
                        "DELETE FROM forgeerp_read.entries WHERE model = $1 AND tenant_id = $2",
                        &[&self.model, &tenant_id.as_uuid()],
                    )
                    .await?)
            },
        )
        .await
    }
}

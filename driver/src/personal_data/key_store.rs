//! Where the data keys live: in Postgres (`forgeerp_keys.subject_keys`,
//! migration 7, isolated by tenant with row-level security) or in memory.

use super::{PersonalDataError, WrappedKey};
use crate::ids::TenantId;
use crate::tenant_binding::{inline, simple_bound, sql_literal};
use deadpool_postgres::Pool;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio_postgres::SimpleQueryMessage;

/// What a [`KeyStore`] call returns: a boxed future, so that a key store can
/// be shared as `dyn KeyStore`.
pub type KeyStoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, PersonalDataError>> + Send + 'a>>;

/// One wrapped data key per subject of a tenant. Every method but the
/// rotation's reads and writes one tenant's keys only.
pub trait KeyStore: Send + Sync {
    /// The stored key of each of `candidates`' subjects, storing the
    /// candidate where the subject has none.
    fn keys_for<'a>(
        &'a self,
        tenant_id: TenantId,
        candidates: Vec<(String, WrappedKey)>,
    ) -> KeyStoreFuture<'a, HashMap<String, WrappedKey>>;

    /// The keys of those of `subjects` that have one.
    fn fetch<'a>(
        &'a self,
        tenant_id: TenantId,
        subjects: &'a [String],
    ) -> KeyStoreFuture<'a, HashMap<String, WrappedKey>>;

    /// Deletes the subject's key; whether it had one.
    fn forget<'a>(&'a self, tenant_id: TenantId, subject: &'a str) -> KeyStoreFuture<'a, bool>;

    /// Deletes every key of the tenant; how many.
    fn purge_tenant(&self, tenant_id: TenantId) -> KeyStoreFuture<'_, u64>;

    /// Up to `limit` keys of any tenant wrapped by master key `master_key_id`.
    fn wrapped_by<'a>(
        &'a self,
        master_key_id: &'a str,
        limit: usize,
    ) -> KeyStoreFuture<'a, Vec<(TenantId, String, WrappedKey)>>;

    /// Puts each of `keys` in place of the subject's key where that is
    /// still wrapped by `from_id`; how many it replaced.
    fn replace<'a>(
        &'a self,
        from_id: &'a str,
        keys: Vec<(TenantId, String, WrappedKey)>,
    ) -> KeyStoreFuture<'a, u64>;

    /// How many keys each master key id wraps.
    fn master_key_ids(&self) -> KeyStoreFuture<'_, Vec<(String, u64)>>;
}

/// Data keys in memory, for tests. Clones share their keys.
#[derive(Clone, Default)]
pub struct InMemoryKeyStore {
    keys: Arc<Mutex<HashMap<(TenantId, String), WrappedKey>>>,
}

impl InMemoryKeyStore {
    /// An empty key store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TenantId, String), WrappedKey>> {
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl KeyStore for InMemoryKeyStore {
    fn keys_for<'a>(
        &'a self,
        tenant_id: TenantId,
        candidates: Vec<(String, WrappedKey)>,
    ) -> KeyStoreFuture<'a, HashMap<String, WrappedKey>> {
        let mut keys = self.lock();
        let stored = candidates
            .into_iter()
            .map(|(subject, key)| {
                let stored = keys
                    .entry((tenant_id, subject.clone()))
                    .or_insert(key)
                    .clone();
                (subject, stored)
            })
            .collect();
        Box::pin(std::future::ready(Ok(stored)))
    }

    fn fetch<'a>(
        &'a self,
        tenant_id: TenantId,
        subjects: &'a [String],
    ) -> KeyStoreFuture<'a, HashMap<String, WrappedKey>> {
        let keys = self.lock();
        let found = subjects
            .iter()
            .filter_map(|s| {
                keys.get(&(tenant_id, s.clone()))
                    .map(|k| (s.clone(), k.clone()))
            })
            .collect();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn forget<'a>(&'a self, tenant_id: TenantId, subject: &'a str) -> KeyStoreFuture<'a, bool> {
        let had = self
            .lock()
            .remove(&(tenant_id, subject.to_string()))
            .is_some();
        Box::pin(std::future::ready(Ok(had)))
    }

    fn purge_tenant(&self, tenant_id: TenantId) -> KeyStoreFuture<'_, u64> {
        let mut keys = self.lock();
        let before = keys.len();
        keys.retain(|(tenant, _), _| *tenant != tenant_id);
        let removed = (before - keys.len()) as u64;
        Box::pin(std::future::ready(Ok(removed)))
    }

    fn wrapped_by<'a>(
        &'a self,
        master_key_id: &'a str,
        limit: usize,
    ) -> KeyStoreFuture<'a, Vec<(TenantId, String, WrappedKey)>> {
        let found = self
            .lock()
            .iter()
            .filter(|(_, k)| k.master_key_id == master_key_id)
            .take(limit)
            .map(|((t, s), k)| (*t, s.clone(), k.clone()))
            .collect();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn replace<'a>(
        &'a self,
        from_id: &'a str,
        replacements: Vec<(TenantId, String, WrappedKey)>,
    ) -> KeyStoreFuture<'a, u64> {
        let mut keys = self.lock();
        let mut replaced = 0;
        for (tenant_id, subject, key) in replacements {
            if let Some(stored) = keys.get_mut(&(tenant_id, subject)) {
                if stored.master_key_id == from_id {
                    *stored = key;
                    replaced += 1;
                }
            }
        }
        Box::pin(std::future::ready(Ok(replaced)))
    }

    fn master_key_ids(&self) -> KeyStoreFuture<'_, Vec<(String, u64)>> {
        let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
        for key in self.lock().values() {
            *counts.entry(key.master_key_id.clone()).or_default() += 1;
        }
        Box::pin(std::future::ready(Ok(counts.into_iter().collect())))
    }
}

/// Data keys in `forgeerp_keys.subject_keys` (run [`crate::migrate`]
/// first). Each tenant's call is one round trip bound to its tenant
/// (`forgeerp.bind_tenant`, so a tenant-scoped role reaches its own
/// tenants' keys only, and row-level security admits the bound tenant's
/// rows only). A rotation reads and writes every tenant's keys with row
/// security off: it must run as the table's owner or a role that bypasses
/// row-level security, else it is refused (42501) rather than finding nothing.
#[derive(Clone)]
pub struct PgKeyStore {
    pool: Pool,
}

impl PgKeyStore {
    /// The key store over `pool`.
    pub fn new(pool: Pool) -> Self {
        PgKeyStore { pool }
    }

    /// `sql` (with `values` inlined) run bound to `tenant_id`: its messages
    /// after `bind_tenant`'s.
    async fn bound(
        &self,
        tenant_id: TenantId,
        sql: &str,
        values: &[String],
    ) -> Result<Vec<SimpleQueryMessage>, PersonalDataError> {
        let client = self.pool.get().await?;
        let statement = inline(sql, values);
        let mut messages = simple_bound(&client, tenant_id, &statement).await?;
        // bind_tenant's row and its completion.
        let after_bind = messages
            .iter()
            .position(|m| matches!(m, SimpleQueryMessage::CommandComplete(_)))
            .map_or(0, |i| i + 1);
        Ok(messages.split_off(after_bind))
    }

    /// A transaction with row-level security off, for a rotation.
    async fn unrestricted<R>(
        &self,
        f: impl AsyncFnOnce(&tokio_postgres::Transaction<'_>) -> Result<R, tokio_postgres::Error>,
    ) -> Result<R, PersonalDataError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.batch_execute("SET LOCAL row_security = off").await?;
        let result = f(&tx).await.map_err(|error| match error.code() {
            Some(code) if *code == tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE => {
                PersonalDataError::KeyStore(format!(
                    "rotating the master key reads every tenant's data keys: connect as the owner of forgeerp_keys.subject_keys or a role with BYPASSRLS ({})",
                    error.as_db_error().map_or(String::new(), |e| e.message().to_string())
                ))
            }
            _ => PersonalDataError::from(error),
        })?;
        tx.commit().await?;
        Ok(result)
    }
}

/// `text` as an SQL literal, or the error of a subject that cannot be one.
fn text_literal(text: &str) -> Result<String, PersonalDataError> {
    sql_literal(text).ok_or_else(|| {
        PersonalDataError::KeyStore(format!("a subject cannot hold a NUL character: {text:?}"))
    })
}

/// `ARRAY[…]::<ty>[]` of literals.
fn array(items: impl Iterator<Item = String>, ty: &str) -> String {
    format!("ARRAY[{}]::{ty}[]", items.collect::<Vec<_>>().join(", "))
}

/// `bytes` as a bytea literal.
fn bytea(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(4 + 2 * bytes.len());
    text.push_str("'\\x");
    for b in bytes {
        text.push_str(&format!("{b:02x}"));
    }
    text.push('\'');
    text
}

/// The bytes of a bytea's text output (`\x…`).
fn bytea_of(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The row count of the first statement of `messages`.
fn rows_affected(messages: &[SimpleQueryMessage]) -> u64 {
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(0)
}

/// The `(subject, key)` rows of `messages`.
fn key_rows(
    messages: Vec<SimpleQueryMessage>,
) -> Result<HashMap<String, WrappedKey>, PersonalDataError> {
    let mut keys = HashMap::new();
    for message in messages {
        let SimpleQueryMessage::Row(row) = message else {
            continue;
        };
        let bad = || PersonalDataError::KeyStore("a data key row that does not read".into());
        let subject = row.get(0).ok_or_else(bad)?.to_string();
        let master_key_id = row.get(1).ok_or_else(bad)?.to_string();
        let bytes = row.get(2).and_then(bytea_of).ok_or_else(bad)?;
        keys.insert(
            subject,
            WrappedKey {
                master_key_id,
                bytes,
            },
        );
    }
    Ok(keys)
}

impl KeyStore for PgKeyStore {
    fn keys_for<'a>(
        &'a self,
        tenant_id: TenantId,
        candidates: Vec<(String, WrappedKey)>,
    ) -> KeyStoreFuture<'a, HashMap<String, WrappedKey>> {
        Box::pin(async move {
            let values = [
                format!("'{}'", tenant_id.as_uuid()),
                array(
                    candidates
                        .iter()
                        .map(|(s, _)| text_literal(s))
                        .collect::<Result<Vec<_>, _>>()?
                        .into_iter(),
                    "text",
                ),
                array(
                    candidates
                        .iter()
                        .map(|(_, k)| text_literal(&k.master_key_id))
                        .collect::<Result<Vec<_>, _>>()?
                        .into_iter(),
                    "text",
                ),
                array(candidates.iter().map(|(_, k)| bytea(&k.bytes)), "bytea"),
            ];
            let sql = include_str!("../../sql/keys/keys_for.sql");
            let mut keys = key_rows(self.bound(tenant_id, sql, &values).await?)?;
            if keys.len() < candidates.len() {
                // Another transaction stored some of them after this
                // statement's snapshot was taken: now they are visible.
                keys = key_rows(self.bound(tenant_id, sql, &values).await?)?;
            }
            Ok(keys)
        })
    }

    fn fetch<'a>(
        &'a self,
        tenant_id: TenantId,
        subjects: &'a [String],
    ) -> KeyStoreFuture<'a, HashMap<String, WrappedKey>> {
        Box::pin(async move {
            let values = [
                format!("'{}'", tenant_id.as_uuid()),
                array(
                    subjects
                        .iter()
                        .map(|s| text_literal(s))
                        .collect::<Result<Vec<_>, _>>()?
                        .into_iter(),
                    "text",
                ),
            ];
            key_rows(
                self.bound(tenant_id, include_str!("../../sql/keys/fetch.sql"), &values)
                    .await?,
            )
        })
    }

    fn forget<'a>(&'a self, tenant_id: TenantId, subject: &'a str) -> KeyStoreFuture<'a, bool> {
        Box::pin(async move {
            let values = [format!("'{}'", tenant_id.as_uuid()), text_literal(subject)?];
            let messages = self
                .bound(
                    tenant_id,
                    include_str!("../../sql/keys/forget.sql"),
                    &values,
                )
                .await?;
            Ok(rows_affected(&messages) > 0)
        })
    }

    fn purge_tenant(&self, tenant_id: TenantId) -> KeyStoreFuture<'_, u64> {
        Box::pin(async move {
            let values = [format!("'{}'", tenant_id.as_uuid())];
            let messages = self
                .bound(
                    tenant_id,
                    "DELETE FROM forgeerp_keys.subject_keys WHERE tenant_id = $1::uuid",
                    &values,
                )
                .await?;
            Ok(rows_affected(&messages))
        })
    }

    fn wrapped_by<'a>(
        &'a self,
        master_key_id: &'a str,
        limit: usize,
    ) -> KeyStoreFuture<'a, Vec<(TenantId, String, WrappedKey)>> {
        Box::pin(async move {
            let rows = self
                .unrestricted(async |tx| {
                    tx.query(
                        include_str!("../../sql/keys/wrapped_by.sql"),
                        &[&master_key_id, &(limit as i64)],
                    )
                    .await
                })
                .await?;
            rows.iter()
                .map(|row| {
                    let tenant_id = TenantId::new(row.get(0))
                        .map_err(|e| PersonalDataError::KeyStore(e.to_string()))?;
                    Ok((
                        tenant_id,
                        row.get::<_, String>(1),
                        WrappedKey {
                            master_key_id: master_key_id.to_string(),
                            bytes: row.get(2),
                        },
                    ))
                })
                .collect()
        })
    }

    fn replace<'a>(
        &'a self,
        from_id: &'a str,
        keys: Vec<(TenantId, String, WrappedKey)>,
    ) -> KeyStoreFuture<'a, u64> {
        Box::pin(async move {
            let Some(to_id) = keys.first().map(|(_, _, k)| k.master_key_id.clone()) else {
                return Ok(0);
            };
            let tenants: Vec<uuid::Uuid> = keys.iter().map(|(t, _, _)| t.as_uuid()).collect();
            let subjects: Vec<&str> = keys.iter().map(|(_, s, _)| s.as_str()).collect();
            let wrapped: Vec<&[u8]> = keys.iter().map(|(_, _, k)| k.bytes.as_slice()).collect();
            self.unrestricted(async |tx| {
                tx.execute(
                    include_str!("../../sql/keys/replace.sql"),
                    &[&from_id, &to_id, &tenants, &subjects, &wrapped],
                )
                .await
            })
            .await
        })
    }

    fn master_key_ids(&self) -> KeyStoreFuture<'_, Vec<(String, u64)>> {
        Box::pin(async move {
            let rows = self
                .unrestricted(async |tx| {
                    tx.query(include_str!("../../sql/keys/master_key_ids.sql"), &[])
                        .await
                })
                .await?;
            Ok(rows
                .iter()
                .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1) as u64))
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytea_literals_and_outputs_round_trip() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(bytea(&bytes), "'\\x0001abff'");
        assert_eq!(bytea_of("\\x0001abff"), Some(bytes.to_vec()));
        assert_eq!(bytea_of("0001"), None);
        assert_eq!(bytea_of("\\x0g"), None);
    }
}

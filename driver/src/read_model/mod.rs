//! Read models: disposable, tenant-isolated key-value views built from events.

pub mod tenant_store;

use crate::ids::TenantId;
use std::future::Future;

pub use tenant_store::ReadModelError;

/// How AI jobs read a read model: one tenant's snapshot at a time, through
/// the tenant binding, never the raw event store.
pub trait ReadModelReader<S>: Send + Sync + 'static {
    /// The current snapshot of `tenant_id`'s read model.
    fn snapshot(
        &self,
        tenant_id: TenantId,
    ) -> impl Future<Output = Result<S, ReadModelError>> + Send;
}

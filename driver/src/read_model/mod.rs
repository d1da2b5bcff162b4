//! Read models: disposable, tenant-isolated key-value views built from events.

pub mod tenant_store;

//! The names the extension and its clients must agree on: the notification
//! channel and the settings.

use std::ffi::CStr;

/// The LISTEN/NOTIFY channel (and the Redis channel of the Redis bus) on
/// which appends wake subscribers up.
pub const CHANNEL: &str = "forgeerp_events";

/// A setting (GUC) of the extension: its name as SQL spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting(&'static CStr);

impl Setting {
    /// The name, as `SET` and `current_setting` take it.
    pub fn name(self) -> &'static str {
        self.0.to_str().expect("setting names are ASCII")
    }

    /// The name as a C string, for PostgreSQL's GUC functions.
    pub const fn c_name(self) -> &'static CStr {
        self.0
    }
}

/// The transaction's tenant binding, set by `forgeerp.bind_tenant`.
pub const TENANT_ID: Setting = Setting(c"forgeerp.tenant_id");
/// Most events one append may store (default [`crate::Limits::default`]).
pub const MAX_BATCH_EVENTS: Setting = Setting(c"forgeerp.max_batch_events");
/// Most bytes one event's payload plus metadata may take, as `jsonb` text.
pub const MAX_EVENT_BYTES: Setting = Setting(c"forgeerp.max_event_bytes");
/// `on` in a transaction that may call `forgeerp.purge_tenant` (superusers only).
pub const ALLOW_PURGE: Setting = Setting(c"forgeerp.allow_purge");
/// The tenant `forgeerp.purge_tenant` is deleting right now: the one state in
/// which the append-only trigger lets a DELETE through (superusers only, set
/// by the function itself).
pub const PURGING: Setting = Setting(c"forgeerp.purging");

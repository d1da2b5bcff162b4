//! The extension's settings: batch limits and the transaction's tenant binding.

use forgeerp_contract::names;
use forgeerp_contract::Limits;
use pgrx::{pg_sys, GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CStr;

/// The contract's defaults ([`Limits::default`]), as GUC defaults.
const DEFAULTS: Limits = Limits::DEFAULT;
static MAX_BATCH_EVENTS: GucSetting<i32> = GucSetting::<i32>::new(DEFAULTS.max_batch_events as i32);
static MAX_EVENT_BYTES: GucSetting<i32> = GucSetting::<i32>::new(DEFAULTS.max_event_bytes as i32);
static ALLOW_PURGE: GucSetting<bool> = GucSetting::<bool>::new(false);
static PURGING: GucSetting<Option<std::ffi::CString>> =
    GucSetting::<Option<std::ffi::CString>>::new(None);

/// Registers the GUCs; called once from `_PG_init`.
pub fn init() {
    GucRegistry::define_int_guc(
        names::MAX_BATCH_EVENTS.c_name(),
        c"Most events one forgeerp.append may store.",
        c"A larger batch is refused with ES003. Superusers only.",
        &MAX_BATCH_EVENTS,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        names::MAX_EVENT_BYTES.c_name(),
        c"Most bytes one event's payload plus metadata may take, as jsonb text.",
        c"A larger event is refused with ES003. Superusers only.",
        &MAX_EVENT_BYTES,
        2,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        names::ALLOW_PURGE.c_name(),
        c"Whether this transaction may call forgeerp.purge_tenant.",
        c"SET LOCAL forgeerp.allow_purge = on, as a superuser, before purging a tenant.",
        &ALLOW_PURGE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        names::PURGING.c_name(),
        c"The tenant forgeerp.purge_tenant is deleting (internal).",
        c"Set by forgeerp.purge_tenant only, for the length of its DELETE.",
        &PURGING,
        GucContext::Suset,
        GucFlags::NO_SHOW_ALL,
    );
}

/// The limits in force now.
pub fn limits() -> Limits {
    Limits {
        max_batch_events: MAX_BATCH_EVENTS.get() as usize,
        max_event_bytes: MAX_EVENT_BYTES.get() as usize,
    }
}

/// The tenant the current transaction is bound to (lower case), or None.
///
/// Same reading as the SQL function `forgeerp.bound_tenant()`.
pub fn bound_tenant() -> Option<String> {
    // SAFETY: GetConfigOption returns NULL or a valid string owned by the GUC machinery.
    let value = unsafe { pg_sys::GetConfigOption(names::TENANT_ID.c_name().as_ptr(), true, false) };
    if value.is_null() {
        return None;
    }
    let value = unsafe { CStr::from_ptr(value) }
        .to_string_lossy()
        .to_ascii_lowercase();
    (!value.is_empty()).then_some(value)
}

//! The tenant scope of the role calling `forgeerp.append`, read from
//! `forgeerp.role_scopes` directly (no SQL at call time).
//!
//! The rule is the one `forgeerp.caller_scopes` states in SQL for the read
//! functions (`sql/fn_scope_of.sql`): the scopes that bind a role are those
//! of every scoped role whose privileges it has, itself included; superusers
//! are never scoped. "Has the privileges of" is PostgreSQL's own
//! `has_privs_of_role` (membership through roles with INHERIT, from its
//! membership cache), which the recursive query in `caller_scopes` spells out.
//! `tests/tests/scopes.rs` holds both to the same cases.

use crate::error::{ContractError, SqlState};
use forgeerp_contract::uuid_text::uuid_text;
use pgrx::pg_sys;
use std::cell::Cell;
use std::ffi::CStr;

thread_local! {
    static ROLE_SCOPES: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

/// `forgeerp.role_scopes`, found by its schema once per backend (and again
/// should the table have been made anew).
fn role_scopes() -> pg_sys::Oid {
    let known = ROLE_SCOPES.get();
    if known != pg_sys::InvalidOid
        && unsafe { pg_sys::get_rel_namespace(known) } != pg_sys::InvalidOid
    {
        return known;
    }
    let found = unsafe {
        let schema = pg_sys::get_namespace_oid(c"forgeerp".as_ptr(), false);
        pg_sys::get_relname_relid(c"role_scopes".as_ptr(), schema)
    };
    if found == pg_sys::InvalidOid {
        pgrx::error!("forgeerp: table forgeerp.role_scopes does not exist");
    }
    ROLE_SCOPES.set(found);
    found
}

/// The tenant `caller` is scoped to (lower-case text), None when unscoped;
/// ES002 when it has the privileges of roles scoped to two tenants.
pub fn scope_of(caller: pg_sys::Oid) -> Result<Option<String>, ContractError> {
    if unsafe { pg_sys::superuser_arg(caller) } {
        return Ok(None);
    }
    let mut tenants: Vec<[u8; 16]> = Vec::new();
    unsafe {
        let rel = pg_sys::table_open(role_scopes(), pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot());
        let scan = pg_sys::table_beginscan(rel, snapshot, 0, std::ptr::null_mut());
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        while pg_sys::table_scan_getnextslot(
            scan,
            pg_sys::ScanDirection::ForwardScanDirection,
            slot,
        ) {
            let (mut role_null, mut tenant_null) = (false, false);
            let role = pg_sys::slot_getattr(slot, 1, &mut role_null);
            let tenant = pg_sys::slot_getattr(slot, 2, &mut tenant_null);
            if role_null || tenant_null {
                continue;
            }
            let role = pg_sys::Oid::from(role.value() as u32);
            if pg_sys::has_privs_of_role(caller, role) {
                let mut bytes = [0u8; 16];
                std::ptr::copy_nonoverlapping(tenant.cast_mut_ptr::<u8>(), bytes.as_mut_ptr(), 16);
                if !tenants.contains(&bytes) {
                    tenants.push(bytes);
                }
            }
        }
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::table_endscan(scan);
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    }
    match tenants.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(uuid_text(one))),
        several => {
            let name = unsafe {
                let name = pg_sys::GetUserNameFromId(caller, true);
                if name.is_null() {
                    caller.to_u32().to_string()
                } else {
                    CStr::from_ptr(name).to_string_lossy().into_owned()
                }
            };
            Err(ContractError::new(
                SqlState::TenantIsolation,
                format!(
                    "role {name} has the privileges of roles scoped to {} different tenants, so it may use none",
                    several.len()
                ),
            ))
        }
    }
}

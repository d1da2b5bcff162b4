//! Wake-ups on channel `forgeerp_events` for committed appends.
//!
//! Postgres delivers a NOTIFY only if its transaction commits, so a
//! rolled-back append wakes nobody.

use pgrx::{direct_function_call, pg_sys, IntoDatum};

/// The channel listeners wait on.
pub const CHANNEL: &str = "forgeerp_events";

/// Queues the wake-up for an append that will be delivered at commit.
pub fn appended(tenant_id: &str, aggregate_id: &str, transaction_id: i64, last_position: i64) {
    let payload = format!(
        r#"{{"tenant_id":"{tenant_id}","aggregate_id":"{aggregate_id}","transaction_id":{transaction_id},"global_position":{last_position}}}"#
    );
    unsafe {
        direct_function_call::<()>(
            pg_sys::pg_notify,
            &[CHANNEL.into_datum(), payload.into_datum()],
        );
    }
}

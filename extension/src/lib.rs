//! forgeerp: append-only, multi-tenant event streams inside PostgreSQL.
//!
//! The public SQL surface is `docs/API.md`. Tables, triggers and the read
//! functions are plain SQL files under `sql/`; Rust carries what pays off in
//! Rust: the append hot path, which validates with the contract's own rules
//! (crate `forgeerp-contract`), and the notifier.

use pgrx::prelude::*;

mod append;
mod error;
mod events_table;
mod jsonb_text;
mod notify;
mod release;
mod scopes;
mod settings;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!(
    "../../sql/guard_new_schema.sql",
    name = "guard_new_schema",
    bootstrap
);
extension_sql_file!(
    "../../sql/table_events.sql",
    name = "table_events",
    requires = ["guard_new_schema"]
);
extension_sql_file!(
    "../../sql/trigger_events_append_only.sql",
    name = "trigger_events_append_only",
    requires = ["table_events"]
);
extension_sql_file!(
    "../../sql/table_role_scopes.sql",
    name = "table_role_scopes",
    requires = ["table_events"]
);
extension_sql_file!(
    "../../sql/fn_scope_of.sql",
    name = "fn_scope_of",
    requires = ["table_role_scopes"]
);
extension_sql_file!(
    "../../sql/fn_tenant_binding.sql",
    name = "fn_tenant_binding",
    requires = ["fn_scope_of"]
);
extension_sql_file!(
    "../../sql/fn_stream_version.sql",
    name = "fn_stream_version",
    requires = ["fn_tenant_binding"]
);
extension_sql_file!(
    "../../sql/fn_load_stream.sql",
    name = "fn_load_stream",
    requires = ["fn_tenant_binding"]
);
extension_sql_file!(
    "../../sql/fn_read_all.sql",
    name = "fn_read_all",
    requires = ["fn_tenant_binding"]
);
extension_sql_file!(
    "../../sql/view_feed_holdback.sql",
    name = "view_feed_holdback",
    requires = ["fn_read_all"]
);
extension_sql_file!(
    "../../sql/fn_purge_tenant.sql",
    name = "fn_purge_tenant",
    requires = ["trigger_events_append_only"]
);
extension_sql_file!(
    "../../sql/fn_version.sql",
    name = "fn_version",
    requires = ["table_events"]
);
extension_sql_file!(
    "../../sql/fn_grant_usage.sql",
    name = "fn_grant_usage",
    requires = [
        "fn_load_stream",
        "fn_stream_version",
        "fn_read_all",
        "fn_version",
        append_as_caller
    ]
);
extension_sql_file!("../../sql/privileges.sql", name = "privileges", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // pgrx attaches a Rust backtrace to the DETAIL of an error that passed
    // through Rust when the environment asks for backtraces (RUST_BACKTRACE).
    // No client may ever see one, whatever the server's environment: this
    // takes precedence for std's Backtrace::capture, in this process and the
    // backends forked from it.
    // _PG_init runs once, before this process starts any thread.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    settings::init();
    notify::init();
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}

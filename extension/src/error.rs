//! Raising the contract's errors (`forgeerp_contract::ContractError`) with
//! their own SQLSTATE.
//!
//! pgrx reports errors through `PgSqlErrorCode`, a closed enum of the standard
//! codes: a custom code such as `ES001` would come out as `XX000`. So these
//! errors are raised with Postgres' own `ereport` calls, once every Rust value
//! on the way has been dropped (see [`Raise::raise`]).

use pgrx::pg_sys;
use std::ffi::{c_char, c_int, CString};

pub use forgeerp_contract::{ContractError, SqlState};

/// How the extension reports a [`ContractError`]: raised as a PostgreSQL
/// ERROR with its own SQLSTATE, or made from a caught Rust panic.
pub trait Raise {
    /// A Rust panic inside `function`, as a client may see it: no panic text,
    /// no place in our source, no backtrace. Those go to the server log only
    /// (`LOG_SERVER_ONLY`, which no client setting brings to the client).
    fn internal(function: &str, cause: pgrx::pg_sys::panic::CaughtError) -> Self;

    /// Raises this error as a Postgres ERROR and does not return.
    ///
    /// Call it only from the top of a `#[pg_extern]` function, with nothing
    /// left on the Rust stack that needs dropping: `errfinish` longjmps out.
    /// The strings are copied into Postgres memory first, which the error
    /// cleanup frees.
    fn raise(self) -> !;
}

impl Raise for ContractError {
    fn internal(function: &str, cause: pgrx::pg_sys::panic::CaughtError) -> Self {
        if let pgrx::pg_sys::panic::CaughtError::RustPanic { ereport, .. } = &cause {
            pgrx::ereport!(
                pgrx::PgLogLevel::LOG_SERVER_ONLY,
                pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!(
                    "forgeerp: {function} panicked at {}:{}: {}",
                    ereport.file(),
                    ereport.line_number(),
                    ereport.message()
                )
            );
        }
        ContractError::new(
            SqlState::Internal,
            format!("{function} failed on an internal error of forgeerp; the server log has the details"),
        )
    }

    fn raise(self) -> ! {
        unsafe extern "C-unwind" {
            fn errstart(elevel: c_int, domain: *const c_char) -> bool;
            fn errcode(sqlerrcode: c_int) -> c_int;
            fn errmsg(fmt: *const c_char, ...) -> c_int;
            fn errdetail(fmt: *const c_char, ...) -> c_int;
            fn errhint(fmt: *const c_char, ...) -> c_int;
            fn errfinish(filename: *const c_char, lineno: c_int, funcname: *const c_char);
        }
        let code = self.state.packed();
        let message = palloc_cstr(&self.message);
        let detail = self.detail.as_deref().map(palloc_cstr);
        let hint = self.hint.as_deref().map(palloc_cstr);
        drop(self);
        unsafe {
            if errstart(pgrx::PgLogLevel::ERROR as c_int, std::ptr::null()) {
                errcode(code);
                errmsg(c"%s".as_ptr(), message);
                if let Some(detail) = detail {
                    errdetail(c"%s".as_ptr(), detail);
                }
                if let Some(hint) = hint {
                    errhint(c"%s".as_ptr(), hint);
                }
                errfinish(c"append.rs".as_ptr(), 0, c"forgeerp.append".as_ptr());
            }
        }
        unreachable!("errfinish returned from an ERROR")
    }
}

/// Copies `s` into a palloc'd C string (interior NULs, impossible in text
/// values, are replaced rather than trusted).
fn palloc_cstr(s: &str) -> *const c_char {
    let owned = CString::new(s.replace('\0', "\\u0000")).expect("NULs were replaced");
    unsafe { pg_sys::pstrdup(owned.as_ptr()) }
}

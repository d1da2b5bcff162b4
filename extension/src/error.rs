//! Errors of the append path, each with the contract's own SQLSTATE.
//!
//! pgrx reports errors through `PgSqlErrorCode`, a closed enum of the standard
//! codes: a custom code such as `ES001` would come out as `XX000`. So these
//! errors are raised with Postgres' own `ereport` calls, once every Rust value
//! on the way has been dropped (see [`StoreError::raise`]).

use pgrx::pg_sys;
use std::ffi::{c_char, c_int, CString};

/// The contract's SQLSTATEs (`docs/API.md`, "Errors").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlState {
    /// ES001: wrong expected version.
    WrongExpectedVersion,
    /// ES002: tenant isolation violation.
    TenantIsolation,
    /// ES003: invalid argument.
    InvalidArgument,
    /// ES004: duplicate event id.
    DuplicateEventId,
    /// ES005: aggregate type mismatch.
    AggregateTypeMismatch,
    /// 40001: serialization failure (a lost race under REPEATABLE READ or SERIALIZABLE).
    SerializationFailure,
    /// 55000: the database's extension is at a version this library does not serve.
    ObjectNotInPrerequisiteState,
    /// XX000: a bug of ours (a Rust panic), reported without its text.
    Internal,
}

impl SqlState {
    /// The five-character code.
    pub fn code(self) -> &'static str {
        match self {
            SqlState::WrongExpectedVersion => "ES001",
            SqlState::TenantIsolation => "ES002",
            SqlState::InvalidArgument => "ES003",
            SqlState::DuplicateEventId => "ES004",
            SqlState::AggregateTypeMismatch => "ES005",
            SqlState::SerializationFailure => "40001",
            SqlState::ObjectNotInPrerequisiteState => "55000",
            SqlState::Internal => "XX000",
        }
    }

    /// Postgres' packed form of the code (`MAKE_SQLSTATE`).
    pub(crate) fn packed(self) -> c_int {
        self.code()
            .bytes()
            .enumerate()
            .map(|(i, ch)| (((ch - b'0') & 0x3F) as c_int) << (6 * i))
            .sum()
    }
}

/// A failed append: SQLSTATE, message naming the bad value, optional detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub state: SqlState,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl StoreError {
    pub fn new(state: SqlState, message: impl Into<String>) -> Self {
        StoreError {
            state,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(SqlState::InvalidArgument, message)
    }

    /// A Rust panic inside `function`, as a client may see it: no panic text,
    /// no place in our source, no backtrace. Those go to the server log only
    /// (`LOG_SERVER_ONLY`, which no client setting brings to the client).
    pub fn internal(function: &str, cause: pgrx::pg_sys::panic::CaughtError) -> Self {
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
        StoreError::new(
            SqlState::Internal,
            format!("{function} failed on an internal error of forgeerp; the server log has the details"),
        )
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Raises this error as a Postgres ERROR and does not return.
    ///
    /// Call it only from the top of a `#[pg_extern]` function, with nothing
    /// left on the Rust stack that needs dropping: `errfinish` longjmps out.
    /// The strings are copied into Postgres memory first, which the error
    /// cleanup frees.
    pub fn raise(self) -> ! {
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

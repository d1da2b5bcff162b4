//! Which released SQL versions this library serves.
//!
//! A database keeps the SQL objects of the version it was created at or last
//! updated to, while `forgeerp.so` is whatever was installed last: after an
//! upgrade of the package, every database still runs its old SQL on the new
//! library until someone runs `ALTER EXTENSION forgeerp UPDATE`.
//!
//! The rule that keeps that safe (`docs/releases.md`): every C symbol that a
//! released script names stays in the library, with the meaning it had in
//! that release, for as long as the version is listed in [`SERVED`]. A
//! function whose SQL signature or meaning changes gets a new symbol in the
//! new version; the old symbol keeps serving the old scripts. And the append
//! path checks once per backend that its database is at a version listed
//! here, so a database the library does not know fails with a clear error
//! instead of being written by code that does not match its schema.

use crate::error::{ContractError, SqlState};
use pgrx::pg_sys;
use pgrx::spi::Spi;
use std::cell::Cell;

/// The SQL versions whose databases this library serves, oldest first: every
/// release since the first, and this library's own version last.
pub const SERVED: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0", "0.6.0"];

/// This library's version.
pub const LIBRARY: &str = env!("CARGO_PKG_VERSION");

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// A version bump without its entry here fails the build.
const _: () = assert!(
    same(SERVED[SERVED.len() - 1], LIBRARY),
    "release::SERVED must end with the crate's version"
);

thread_local! {
    /// The extension's owner, once this backend has checked its database's
    /// version (InvalidOid before).
    static OWNER: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

/// Refuses, once per backend, a database whose extension is at a version
/// this library does not serve; notes the extension's owner.
pub fn check_database() -> Result<(), ContractError> {
    if OWNER.get() != pg_sys::InvalidOid {
        return Ok(());
    }
    let found = Spi::connect(|client| {
        client
            .select(
                "SELECT extversion::pg_catalog.text, extowner FROM pg_catalog.pg_extension WHERE extname = 'forgeerp'",
                Some(1),
                &[],
            )
            .ok()
            .and_then(|rows| rows.first().get_two::<String, pg_sys::Oid>().ok())
    });
    match found {
        Some((Some(version), Some(owner))) if SERVED.contains(&version.as_str()) => {
            OWNER.set(owner);
            Ok(())
        }
        found => Err(unserved(
            found.and_then(|(v, _)| v).as_deref().unwrap_or("(none)"),
        )),
    }
}

/// The extension's owner, whose rights the append runs with; valid once
/// [`check_database`] has succeeded in this backend.
pub fn owner() -> pg_sys::Oid {
    OWNER.get()
}

fn unserved(version: &str) -> ContractError {
    ContractError::new(
        SqlState::ObjectNotInPrerequisiteState,
        format!(
            "this database's forgeerp extension is at version {version}, which the installed library {LIBRARY} does not serve"
        ),
    )
    .with_detail(format!("the library serves versions {}", SERVED.join(", ")))
    .with_hint(format!(
        "Run ALTER EXTENSION forgeerp UPDATE to bring the database to version {LIBRARY}; a database at a newer version needs the library of that version."
    ))
}

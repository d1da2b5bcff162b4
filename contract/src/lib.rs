//! The rules of the forgeerp contract (`docs/API.md`), each written once.
//!
//! The extension validates every append with this crate; the driver's
//! in-memory store applies the same rules, the Postgres store maps the
//! server's SQLSTATEs with its table, and the CLI passes batches through to
//! the extension unchanged. No pgrx and no tokio: it is plain Rust.
//!
//! - [`batch`]: the `events` argument of `forgeerp.append`, and the limits;
//! - [`ExpectedVersion`]: optimistic concurrency and its SQL encoding;
//! - [`append`]: an append against its stream: retry or ES004, ES005, ES001;
//! - [`SqlState`] and [`ContractError`]: the SQLSTATE table;
//! - [`names`]: the channel and the settings;
//! - [`uuid_text`]: a uuid's text as PostgreSQL writes it;
//! - [`sharding`]: the shard of a tenant in a sharded deployment.

#![warn(missing_docs)]

pub mod append;
pub mod batch;
pub mod error;
pub mod expected_version;
pub mod names;
pub mod rfc3339;
pub mod sharding;
pub mod uuid_text;

pub use append::{AppendTarget, Reuse, StoredMatch};
pub use batch::{EventBatch, Limits, ValidEvent};
pub use error::{ContractError, SqlState};
pub use expected_version::ExpectedVersion;

//! The CLI's errors: one line that says what is wrong and what to do.

use forgeerp_infra::{DbFailure, EventStoreError, ProjectionError, ReadModelError};
use std::fmt;

/// A failure the user sees as one line on stderr, with a non-zero exit.
#[derive(Debug)]
pub struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// Bad input, from the argument parser or refused by the store (ES003): exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 2,
        }
    }

    /// Anything else: exit code 1.
    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 1,
        }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<EventStoreError> for CliError {
    fn from(error: EventStoreError) -> Self {
        match error {
            EventStoreError::Connection(message) => CliError::failed(format!(
                "lost the connection to PostgreSQL ({message}); check the server and retry"
            )),
            // ES003: the input was bad, as much as a malformed argument is.
            invalid @ EventStoreError::InvalidAppend(_) => CliError::usage(invalid.to_string()),
            other => CliError::failed(other.to_string()),
        }
    }
}

impl From<ReadModelError> for CliError {
    fn from(error: ReadModelError) -> Self {
        CliError::failed(error.to_string())
    }
}

impl From<ProjectionError> for CliError {
    fn from(error: ProjectionError) -> Self {
        CliError::failed(error.to_string())
    }
}

impl From<tokio_postgres::Error> for CliError {
    fn from(error: tokio_postgres::Error) -> Self {
        match DbFailure::of(&error) {
            DbFailure::Refused { sqlstate, message } => {
                CliError::failed(format!("{message} ({sqlstate})"))
            }
            DbFailure::Connection(message) => {
                CliError::failed(format!("database connection failed: {message}"))
            }
        }
    }
}

impl From<deadpool_postgres::PoolError> for CliError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        CliError::failed(format!("no database connection: {error}"))
    }
}

impl From<forgeerp_infra::MigrationError> for CliError {
    fn from(error: forgeerp_infra::MigrationError) -> Self {
        CliError::failed(format!("the driver's schema: {error}"))
    }
}

//! The CLI's errors: one line that says what is wrong and what to do.

use forgeerp_infra::{DbFailure, EventStoreError, ProjectionError, ReadModelError};
use std::fmt;

/// A failure the user sees as one line on stderr, `forgeerp: <message>
/// (<SQLSTATE>)`, with a non-zero exit: 2 for bad input, 3 for a conflict
/// with the stored streams, 1 for everything else.
#[derive(Debug)]
pub struct CliError {
    message: String,
    sqlstate: Option<String>,
    code: u8,
}

/// Exit code 2: bad input, from the argument parser or refused by the store (ES003).
pub const EXIT_USAGE: u8 = 2;
/// Exit code 3: a conflict with what is stored (ES001, ES004, ES005).
pub const EXIT_CONFLICT: u8 = 3;
/// Exit code 1: everything else.
pub const EXIT_FAILED: u8 = 1;

impl CliError {
    /// Bad input: exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            sqlstate: None,
            code: EXIT_USAGE,
        }
    }

    /// Anything else: exit code 1.
    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            sqlstate: None,
            code: EXIT_FAILED,
        }
    }

    /// The same error, reported with the server's SQLSTATE, whose class
    /// sets the exit code.
    pub fn with_sqlstate(mut self, sqlstate: &str) -> Self {
        self.code = exit_code_of(sqlstate).unwrap_or(self.code);
        self.sqlstate = Some(sqlstate.to_string());
        self
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

/// The exit code a SQLSTATE calls for, when it calls for one other than 1.
fn exit_code_of(sqlstate: &str) -> Option<u8> {
    use forgeerp_infra::contract::SqlState;
    match SqlState::from_code(sqlstate)? {
        SqlState::InvalidArgument | SqlState::UntranslatableCharacter => Some(EXIT_USAGE),
        SqlState::WrongExpectedVersion
        | SqlState::DuplicateEventId
        | SqlState::AggregateTypeMismatch => Some(EXIT_CONFLICT),
        _ => None,
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(sqlstate) = &self.sqlstate {
            write!(f, " ({sqlstate})")?;
        }
        Ok(())
    }
}

impl From<EventStoreError> for CliError {
    fn from(error: EventStoreError) -> Self {
        let sqlstate = error.sqlstate().map(str::to_string);
        let message = match error {
            EventStoreError::Connection(message) => {
                return CliError::failed(format!(
                    "lost the connection to PostgreSQL ({message}); check the server and retry"
                ))
            }
            // The server's own words; the SQLSTATE follows in parentheses.
            EventStoreError::Database { message, .. } => message,
            other => other.to_string(),
        };
        let error = CliError::failed(message);
        match sqlstate {
            Some(sqlstate) => error.with_sqlstate(&sqlstate),
            None => error,
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
                CliError::failed(message).with_sqlstate(&sqlstate)
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

impl From<forgeerp_infra::PersonalDataError> for CliError {
    fn from(error: forgeerp_infra::PersonalDataError) -> Self {
        use forgeerp_infra::PersonalDataError as E;
        match error {
            E::InvalidMasterKey(_) => CliError::usage(error.to_string()),
            E::Database(DbFailure::Refused { sqlstate, message }) => {
                CliError::failed(format!("key store: {message}")).with_sqlstate(&sqlstate)
            }
            other => CliError::failed(other.to_string()),
        }
    }
}

impl From<forgeerp_infra::PurgeError> for CliError {
    fn from(error: forgeerp_infra::PurgeError) -> Self {
        use forgeerp_infra::PurgeError as E;
        match error {
            E::NotPermitted(message) => CliError::failed(format!(
                "purging a tenant needs a superuser: connect as one ({message})"
            ))
            .with_sqlstate("42501"),
            E::Database(DbFailure::Refused { sqlstate, message }) => {
                CliError::failed(format!("purge failed: {message}")).with_sqlstate(&sqlstate)
            }
            other => CliError::failed(other.to_string()),
        }
    }
}

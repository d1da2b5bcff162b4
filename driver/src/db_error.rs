//! One reading of a failed database call, shared by every error type of the
//! driver: a broken connection, or the server's refusal with its SQLSTATE,
//! looked up in the contract's table (`forgeerp_contract::SqlState`).

use forgeerp_contract::SqlState;

/// What a failed tokio-postgres or pool call comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbFailure {
    /// No connection could be had, or it broke: there is no SQLSTATE.
    Connection(String),
    /// The server refused the statement.
    Refused {
        /// The five-character SQLSTATE.
        sqlstate: String,
        /// The server's message, with its DETAIL in parentheses when it has one.
        message: String,
    },
}

impl DbFailure {
    /// The failure `error` reports.
    pub fn of(error: &tokio_postgres::Error) -> Self {
        match error.as_db_error() {
            Some(db) => DbFailure::Refused {
                sqlstate: db.code().code().to_string(),
                message: match db.detail() {
                    Some(detail) => format!("{} ({detail})", db.message()),
                    None => db.message().to_string(),
                },
            },
            None => DbFailure::Connection(error.to_string()),
        }
    }

    /// The failure of taking a connection from a pool.
    pub fn of_pool(error: &deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => DbFailure::of(error),
            other => DbFailure::Connection(other.to_string()),
        }
    }

    /// The contract's meaning of the SQLSTATE, if it gives it one.
    pub fn state(&self) -> Option<SqlState> {
        match self {
            DbFailure::Connection(_) => None,
            DbFailure::Refused { sqlstate, .. } => SqlState::from_code(sqlstate),
        }
    }
}

impl From<tokio_postgres::Error> for DbFailure {
    fn from(error: tokio_postgres::Error) -> Self {
        DbFailure::of(&error)
    }
}

impl From<deadpool_postgres::PoolError> for DbFailure {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        DbFailure::of_pool(&error)
    }
}

/// `From` a [`DbFailure`], a `tokio_postgres::Error` and a pool error, for
/// an error type with `Connection(String)` and `Database { sqlstate, message }`
/// variants: the one mapping every such type uses.
macro_rules! from_db_failure {
    ($error:ty) => {
        impl From<$crate::db_error::DbFailure> for $error {
            fn from(failure: $crate::db_error::DbFailure) -> Self {
                match failure {
                    $crate::db_error::DbFailure::Connection(message) => Self::Connection(message),
                    $crate::db_error::DbFailure::Refused { sqlstate, message } => {
                        Self::Database { sqlstate, message }
                    }
                }
            }
        }

        impl From<tokio_postgres::Error> for $error {
            fn from(error: tokio_postgres::Error) -> Self {
                $crate::db_error::DbFailure::of(&error).into()
            }
        }

        impl From<deadpool_postgres::PoolError> for $error {
            fn from(error: deadpool_postgres::PoolError) -> Self {
                $crate::db_error::DbFailure::of_pool(&error).into()
            }
        }
    };
}
pub(crate) use from_db_failure;

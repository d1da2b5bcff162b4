//! Optimistic concurrency: what the caller believes about a stream's version,
//! and its encoding as `forgeerp.append`'s `expected_version` argument.

use crate::error::ContractError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The version a stream must have for an append to go in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Any version, including a stream that does not exist yet (SQL NULL).
    Any,
    /// The stream must not exist yet: version 0 (SQL 0).
    NoStream,
    /// The stream must exist: version 1 or more (SQL -1).
    StreamExists,
    /// The stream's version must be exactly this (SQL n > 0).
    Exact(u64),
}

impl ExpectedVersion {
    /// The contract's encoding for `forgeerp.append`: NULL, 0, -1 or n.
    pub fn to_sql(self) -> Option<i64> {
        match self {
            ExpectedVersion::Any => None,
            ExpectedVersion::NoStream => Some(0),
            ExpectedVersion::StreamExists => Some(-1),
            ExpectedVersion::Exact(n) => Some(i64::try_from(n).unwrap_or(i64::MAX)),
        }
    }

    /// The expectation an `expected_version` argument encodes; ES003 for a
    /// negative number other than -1.
    pub fn from_sql(arg: Option<i64>) -> Result<Self, ContractError> {
        match arg {
            None => Ok(ExpectedVersion::Any),
            Some(0) => Ok(ExpectedVersion::NoStream),
            Some(-1) => Ok(ExpectedVersion::StreamExists),
            Some(n) if n > 0 => Ok(ExpectedVersion::Exact(n as u64)),
            Some(n) => Err(ContractError::invalid(format!(
                "expected_version must be NULL, 0, -1 or a positive version, got {n}"
            ))),
        }
    }

    /// Whether a stream at version `actual` (0: no stream) satisfies this expectation.
    pub fn allows(self, actual: u64) -> bool {
        let (lowest, highest) = self.allowed_versions();
        (lowest..=highest).contains(&actual)
    }

    /// The versions this expectation allows, lowest and highest, as one
    /// range: how a SQL statement checks the stream's head without restating
    /// the encoding.
    pub fn allowed_versions(self) -> (u64, u64) {
        match self {
            ExpectedVersion::Any => (0, i64::MAX as u64),
            ExpectedVersion::NoStream => (0, 0),
            ExpectedVersion::StreamExists => (1, i64::MAX as u64),
            ExpectedVersion::Exact(n) => (n, n),
        }
    }

    /// The expectation for a stream loaded at `version`: what a command
    /// dispatcher passes so that nobody appended in between.
    pub fn after(version: u64) -> Self {
        if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        }
    }
}

/// As error messages name it: "any version", "no stream (0)", "an existing
/// stream (-1)", "version n".
impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream (0)"),
            ExpectedVersion::StreamExists => f.write_str("an existing stream (-1)"),
            ExpectedVersion::Exact(n) => write!(f, "version {n}"),
        }
    }
}

/// The spelling of tools: `any`, `no-stream`, `exists` or a version number;
/// the error's message names the text, for the tool to say where it came from.
impl FromStr for ExpectedVersion {
    type Err = ContractError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(ExpectedVersion::Any),
            "no-stream" => Ok(ExpectedVersion::NoStream),
            "exists" => Ok(ExpectedVersion::StreamExists),
            n => match n.parse::<u64>() {
                Ok(0) => Ok(ExpectedVersion::NoStream),
                Ok(n) => Ok(ExpectedVersion::Exact(n)),
                Err(_) => Err(ContractError::invalid(format!(
                    "{n:?} is not any, no-stream, exists or a version number"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_rules_match_the_contract() {
        assert_eq!(ExpectedVersion::Any.to_sql(), None);
        assert_eq!(ExpectedVersion::NoStream.to_sql(), Some(0));
        assert_eq!(ExpectedVersion::StreamExists.to_sql(), Some(-1));
        assert_eq!(ExpectedVersion::Exact(7).to_sql(), Some(7));
        assert!(ExpectedVersion::NoStream.allows(0) && !ExpectedVersion::NoStream.allows(1));
        assert!(
            !ExpectedVersion::StreamExists.allows(0) && ExpectedVersion::StreamExists.allows(3)
        );
        assert!(ExpectedVersion::Exact(3).allows(3) && !ExpectedVersion::Exact(3).allows(2));
        assert!(ExpectedVersion::Any.allows(0) && ExpectedVersion::Any.allows(u64::MAX >> 1));
        assert_eq!(ExpectedVersion::after(0), ExpectedVersion::NoStream);
        assert_eq!(ExpectedVersion::after(4), ExpectedVersion::Exact(4));
    }

    #[test]
    fn the_sql_encoding_round_trips_and_refuses_other_negatives() {
        for expected in [
            ExpectedVersion::Any,
            ExpectedVersion::NoStream,
            ExpectedVersion::StreamExists,
            ExpectedVersion::Exact(1),
            ExpectedVersion::Exact(i64::MAX as u64),
        ] {
            assert_eq!(ExpectedVersion::from_sql(expected.to_sql()), Ok(expected));
        }
        let error = ExpectedVersion::from_sql(Some(-2)).unwrap_err();
        assert_eq!(error.state, crate::SqlState::InvalidArgument);
        assert!(error.message.contains("got -2"), "{}", error.message);
    }

    #[test]
    fn tools_spell_it_in_words() {
        assert_eq!("any".parse(), Ok(ExpectedVersion::Any));
        assert_eq!("no-stream".parse(), Ok(ExpectedVersion::NoStream));
        assert_eq!("exists".parse(), Ok(ExpectedVersion::StreamExists));
        assert_eq!("12".parse(), Ok(ExpectedVersion::Exact(12)));
        assert_eq!("0".parse(), Ok(ExpectedVersion::NoStream));
        assert!("-1".parse::<ExpectedVersion>().is_err());
        assert!("latest".parse::<ExpectedVersion>().is_err());
    }
}

//! Optimistic concurrency: what the caller believes about a stream's version.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The version a stream must have for an append to go in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Any version, including a stream that does not exist yet.
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream must exist (version 1 or more).
    StreamExists,
    /// The stream's version must be exactly this.
    Exact(u64),
}

impl ExpectedVersion {
    /// The contract's encoding for `forgeerp.append`: NULL, 0, -1 or n.
    pub fn to_sql(self) -> Option<i64> {
        match self {
            ExpectedVersion::Any => None,
            ExpectedVersion::NoStream => Some(0),
            ExpectedVersion::StreamExists => Some(-1),
            ExpectedVersion::Exact(n) => Some(n as i64),
        }
    }

    /// Whether a stream at version `actual` satisfies this expectation.
    pub fn allows(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::StreamExists => actual >= 1,
            ExpectedVersion::Exact(n) => actual == n,
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

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("an existing stream"),
            ExpectedVersion::Exact(n) => write!(f, "version {n}"),
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
        assert_eq!(ExpectedVersion::after(0), ExpectedVersion::NoStream);
        assert_eq!(ExpectedVersion::after(4), ExpectedVersion::Exact(4));
    }
}

//! The contract's SQLSTATEs and the error every rule of this crate returns.
//!
//! The table is the one in `docs/API.md` ("Errors"). The extension raises
//! these codes; the driver maps a server error to its own variants by looking
//! the code up here ([`SqlState::from_code`]), never by message text.

use std::fmt;

/// A SQLSTATE the contract gives a meaning to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SqlState {
    /// ES001: wrong expected version (also a lost race between two writers).
    WrongExpectedVersion,
    /// ES002: tenant isolation violation.
    TenantIsolation,
    /// ES003: invalid argument (shape, type, size, NULL or nil tenant, limits).
    InvalidArgument,
    /// ES004: duplicate event id.
    DuplicateEventId,
    /// ES005: aggregate type mismatch.
    AggregateTypeMismatch,
    /// ES006: append-only violation.
    AppendOnly,
    /// 40001: serialization failure (a lost race under REPEATABLE READ or SERIALIZABLE).
    SerializationFailure,
    /// 40P01: deadlock detected; like 40001, the transaction may be retried.
    DeadlockDetected,
    /// 22P05: a character `jsonb` cannot hold (`\u0000`), refused by
    /// PostgreSQL before the extension sees the batch: an invalid argument.
    UntranslatableCharacter,
    /// 42501: insufficient privilege.
    InsufficientPrivilege,
    /// 55000: the database's extension is at a version this library does not serve.
    ObjectNotInPrerequisiteState,
    /// XX000: a bug of ours (a Rust panic), reported without its text.
    Internal,
}

impl SqlState {
    /// Every state of the table, in the order above.
    pub const ALL: [SqlState; 12] = [
        SqlState::WrongExpectedVersion,
        SqlState::TenantIsolation,
        SqlState::InvalidArgument,
        SqlState::DuplicateEventId,
        SqlState::AggregateTypeMismatch,
        SqlState::AppendOnly,
        SqlState::SerializationFailure,
        SqlState::DeadlockDetected,
        SqlState::UntranslatableCharacter,
        SqlState::InsufficientPrivilege,
        SqlState::ObjectNotInPrerequisiteState,
        SqlState::Internal,
    ];

    /// The five-character code.
    pub const fn code(self) -> &'static str {
        match self {
            SqlState::WrongExpectedVersion => "ES001",
            SqlState::TenantIsolation => "ES002",
            SqlState::InvalidArgument => "ES003",
            SqlState::DuplicateEventId => "ES004",
            SqlState::AggregateTypeMismatch => "ES005",
            SqlState::AppendOnly => "ES006",
            SqlState::SerializationFailure => "40001",
            SqlState::DeadlockDetected => "40P01",
            SqlState::UntranslatableCharacter => "22P05",
            SqlState::InsufficientPrivilege => "42501",
            SqlState::ObjectNotInPrerequisiteState => "55000",
            SqlState::Internal => "XX000",
        }
    }

    /// The state of a five-character code, None for a code the contract
    /// gives no meaning to.
    pub fn from_code(code: &str) -> Option<SqlState> {
        SqlState::ALL.into_iter().find(|state| state.code() == code)
    }

    /// Whether retrying the whole transaction may succeed (40001, 40P01).
    pub const fn is_transaction_conflict(self) -> bool {
        matches!(
            self,
            SqlState::SerializationFailure | SqlState::DeadlockDetected
        )
    }

    /// PostgreSQL's packed form of the code (`MAKE_SQLSTATE`), as `errcode` takes it.
    pub fn packed(self) -> i32 {
        self.code()
            .bytes()
            .enumerate()
            .map(|(i, ch)| (((ch - b'0') & 0x3F) as i32) << (6 * i))
            .sum()
    }
}

impl fmt::Display for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A broken rule: its SQLSTATE, a message naming the bad value, and an
/// optional DETAIL and HINT, as the extension raises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractError {
    /// The SQLSTATE.
    pub state: SqlState,
    /// The message: what is wrong, naming the value.
    pub message: String,
    /// PostgreSQL's DETAIL: the numbers behind the message.
    pub detail: Option<String>,
    /// PostgreSQL's HINT: what to do about it.
    pub hint: Option<String>,
}

impl ContractError {
    /// An error with a message and no detail or hint.
    pub fn new(state: SqlState, message: impl Into<String>) -> Self {
        ContractError {
            state,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// An ES003 (invalid argument).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(SqlState::InvalidArgument, message)
    }

    /// The same error with a DETAIL.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The same error with a HINT.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.state)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ContractError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_back_to_its_state() {
        for state in SqlState::ALL {
            assert_eq!(SqlState::from_code(state.code()), Some(state));
        }
        assert_eq!(SqlState::from_code("23505"), None);
        assert_eq!(SqlState::from_code("es001"), None);
    }

    #[test]
    fn packing_follows_make_sqlstate() {
        // MAKE_SQLSTATE('E','S','0','0','1') from PostgreSQL's elog.h.
        let p = |c: u8| ((c - b'0') & 0x3F) as i32;
        let es001 = p(b'E') | p(b'S') << 6 | p(b'0') << 12 | p(b'0') << 18 | p(b'1') << 24;
        assert_eq!(SqlState::WrongExpectedVersion.packed(), es001);
    }
}

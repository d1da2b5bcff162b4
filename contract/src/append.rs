//! The rules of one append against its stream, after the arguments are
//! valid: a batch whose event ids are stored already (an exact retry, or
//! ES004), the stream's aggregate type (ES005) and its version (ES001), with
//! the errors the contract reports for each.

use crate::error::{ContractError, SqlState};
use crate::expected_version::ExpectedVersion;
use crate::uuid_text::uuid_text;

/// A stream's stable 64-bit hash: FNV-1a over its tenant's and then its
/// aggregate's 16 bytes. The same in every process, version and machine:
/// the key of the extension's stream lock, and what the driver splits a
/// projection's partitions by.
pub fn stream_hash(tenant: &[u8; 16], aggregate: &[u8; 16]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in tenant.iter().chain(aggregate) {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The stream an append goes to, and how many events it brings.
#[derive(Clone, Copy, Debug)]
pub struct AppendTarget<'a> {
    /// The tenant's uuid.
    pub tenant_id: [u8; 16],
    /// The aggregate type the append names.
    pub aggregate_type: &'a str,
    /// The aggregate's uuid.
    pub aggregate_id: [u8; 16],
    /// How many events the batch has.
    pub batch_len: usize,
}

/// A stored event of the tenant whose id the batch reuses.
#[derive(Clone, Copy, Debug)]
pub struct StoredMatch<'a> {
    /// Which event of the batch reuses the id, from 0.
    pub index: usize,
    /// The reused id.
    pub event_id: [u8; 16],
    /// The stored event's aggregate.
    pub aggregate_id: [u8; 16],
    /// The stored event's aggregate type.
    pub aggregate_type: &'a str,
    /// The stored event's sequence number.
    pub sequence_number: u64,
    /// Whether the stored event has the batch event's type and payload.
    pub same_content: bool,
}

/// What the stored ids make of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// No id of the batch is stored: append it.
    None,
    /// The batch repeats an append that stands whole: return its stored
    /// events, store nothing.
    Retry,
}

const RETRY_HINT: &str = "A retry must repeat the original batch exactly; new events need new ids.";

impl AppendTarget<'_> {
    /// Judges the batch's reused ids, `matches` in batch order. An exact
    /// retry repeats every event of one earlier append, in order, in this
    /// stream, with the same content; anything else that reuses an id is
    /// ES004, and a retry naming another aggregate type is ES005.
    pub fn judge_reuse(&self, matches: &[StoredMatch<'_>]) -> Result<Reuse, ContractError> {
        let Some(first) = matches.first() else {
            return Ok(Reuse::None);
        };
        let is_retry = matches.len() == self.batch_len
            && matches.iter().enumerate().all(|(i, m)| {
                m.index == i
                    && m.aggregate_id == self.aggregate_id
                    && m.sequence_number == first.sequence_number + i as u64
                    && m.same_content
            });
        if is_retry {
            if first.aggregate_type != self.aggregate_type {
                return Err(self.aggregate_type_mismatch(first.aggregate_type));
            }
            return Ok(Reuse::Retry);
        }
        let (what, clash) = match matches.iter().find(|m| m.aggregate_id != self.aggregate_id) {
            Some(other) => ("in another stream", other),
            None => match matches.iter().find(|m| !m.same_content) {
                Some(changed) => ("with other content", changed),
                None => ("and the batch repeats it only in part", first),
            },
        };
        Err(ContractError::new(
            SqlState::DuplicateEventId,
            format!(
                "event_id {} already exists {what}",
                uuid_text(&clash.event_id)
            ),
        )
        .with_detail(format!(
            "tenant {}: stored as sequence {} of aggregate {}; it is event {} of the {}-event batch",
            uuid_text(&self.tenant_id),
            clash.sequence_number,
            uuid_text(&clash.aggregate_id),
            clash.index + 1,
            self.batch_len
        ))
        .with_hint(RETRY_HINT))
    }

    /// ES004 for an event id given twice in the batch itself.
    pub fn repeated_in_batch(event_id: &str) -> ContractError {
        ContractError::new(
            SqlState::DuplicateEventId,
            format!("event_id {event_id} appears more than once in the batch"),
        )
    }

    /// ES004 for an id stored concurrently by another transaction (a unique
    /// violation under READ COMMITTED).
    pub fn stored_concurrently(&self) -> ContractError {
        ContractError::new(
            SqlState::DuplicateEventId,
            format!(
                "an event id of this batch was stored concurrently in tenant {}",
                uuid_text(&self.tenant_id)
            ),
        )
        .with_hint(RETRY_HINT)
    }

    /// 40001 for an append that lost a race under REPEATABLE READ or SERIALIZABLE.
    pub fn serialization_failure(&self) -> ContractError {
        ContractError::new(
            SqlState::SerializationFailure,
            format!(
                "could not serialize the append to aggregate {} of tenant {}: it changed after this transaction's snapshot",
                uuid_text(&self.aggregate_id),
                uuid_text(&self.tenant_id)
            ),
        )
        .with_hint("Retry the transaction.")
    }

    /// ES005 unless the stream (whose stored type is `stored_type`, None for
    /// a new stream) has the append's aggregate type.
    pub fn check_aggregate_type(&self, stored_type: Option<&str>) -> Result<(), ContractError> {
        match stored_type {
            Some(stored) if stored != self.aggregate_type => {
                Err(self.aggregate_type_mismatch(stored))
            }
            _ => Ok(()),
        }
    }

    /// ES001 unless a stream at version `actual` satisfies `expected`.
    pub fn check_version(
        &self,
        expected: ExpectedVersion,
        actual: u64,
    ) -> Result<(), ContractError> {
        if expected.allows(actual) {
            return Ok(());
        }
        let aggregate = uuid_text(&self.aggregate_id);
        Err(ContractError::new(
            SqlState::WrongExpectedVersion,
            format!("wrong expected version for aggregate {aggregate}: expected {expected}, actual {actual}"),
        )
        .with_detail(format!(
            "tenant {}, aggregate {aggregate}: expected_version {}, actual version {actual}",
            uuid_text(&self.tenant_id),
            expected
                .to_sql()
                .map_or_else(|| "NULL".to_string(), |n| n.to_string())
        )))
    }

    fn aggregate_type_mismatch(&self, stored_type: &str) -> ContractError {
        ContractError::new(
            SqlState::AggregateTypeMismatch,
            format!(
                "aggregate {} is a \"{stored_type}\", not a \"{}\"",
                uuid_text(&self.aggregate_id),
                self.aggregate_type
            ),
        )
        .with_detail(format!(
            "tenant {}: a stream keeps its aggregate type for life",
            uuid_text(&self.tenant_id)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: AppendTarget<'static> = AppendTarget {
        tenant_id: [1; 16],
        aggregate_type: "Item",
        aggregate_id: [2; 16],
        batch_len: 2,
    };

    fn stored(index: usize, sequence_number: u64) -> StoredMatch<'static> {
        StoredMatch {
            index,
            event_id: [10 + index as u8; 16],
            aggregate_id: [2; 16],
            aggregate_type: "Item",
            sequence_number,
            same_content: true,
        }
    }

    #[test]
    fn an_exact_repeat_is_a_retry_and_no_match_is_new() {
        assert_eq!(TARGET.judge_reuse(&[]), Ok(Reuse::None));
        assert_eq!(
            TARGET.judge_reuse(&[stored(0, 4), stored(1, 5)]),
            Ok(Reuse::Retry)
        );
    }

    #[test]
    fn every_other_reuse_is_es004_and_says_why() {
        let partial = TARGET.judge_reuse(&[stored(0, 4)]).unwrap_err();
        assert_eq!(partial.state, SqlState::DuplicateEventId);
        assert!(
            partial.message.ends_with("only in part"),
            "{}",
            partial.message
        );

        let changed = StoredMatch {
            same_content: false,
            ..stored(1, 5)
        };
        let error = TARGET.judge_reuse(&[stored(0, 4), changed]).unwrap_err();
        assert!(
            error.message.ends_with("with other content"),
            "{}",
            error.message
        );
        assert!(error
            .detail
            .unwrap()
            .contains("event 2 of the 2-event batch"));

        let elsewhere = StoredMatch {
            aggregate_id: [3; 16],
            ..stored(0, 4)
        };
        let error = TARGET.judge_reuse(&[elsewhere, stored(1, 5)]).unwrap_err();
        assert!(
            error.message.ends_with("in another stream"),
            "{}",
            error.message
        );

        let gap = TARGET
            .judge_reuse(&[stored(0, 4), stored(1, 6)])
            .unwrap_err();
        assert_eq!(gap.state, SqlState::DuplicateEventId);
    }

    #[test]
    fn a_retry_under_another_aggregate_type_is_es005() {
        let other = AppendTarget {
            aggregate_type: "Order",
            ..TARGET
        };
        let error = other
            .judge_reuse(&[stored(0, 4), stored(1, 5)])
            .unwrap_err();
        assert_eq!(error.state, SqlState::AggregateTypeMismatch);
        assert!(
            error.message.contains("is a \"Item\", not a \"Order\""),
            "{}",
            error.message
        );
    }

    #[test]
    fn type_and_version_checks() {
        assert_eq!(TARGET.check_aggregate_type(None), Ok(()));
        assert_eq!(TARGET.check_aggregate_type(Some("Item")), Ok(()));
        assert_eq!(
            TARGET
                .check_aggregate_type(Some("Order"))
                .unwrap_err()
                .state,
            SqlState::AggregateTypeMismatch
        );
        assert_eq!(TARGET.check_version(ExpectedVersion::Exact(3), 3), Ok(()));
        let error = TARGET
            .check_version(ExpectedVersion::Exact(3), 0)
            .unwrap_err();
        assert_eq!(error.state, SqlState::WrongExpectedVersion);
        assert!(
            error.message.ends_with("expected version 3, actual 0"),
            "{}",
            error.message
        );
        assert!(error
            .detail
            .unwrap()
            .contains("expected_version 3, actual version 0"));
    }
}

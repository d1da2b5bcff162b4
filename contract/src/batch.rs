//! Validation of `forgeerp.append`'s arguments, above all its `events` batch.
//!
//! The extension checks the batch on PostgreSQL's own text of the `jsonb`
//! value, so sizes are exactly the sizes the contract names; the driver's
//! in-memory store checks serde_json's text of the same batch.

use crate::error::ContractError;
use crate::names::{MAX_BATCH_EVENTS, MAX_EVENT_BYTES};
use crate::rfc3339;
use crate::uuid_text::{parse_uuid, uuid_text};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashSet};

/// Limits that apply to one batch: the settings `forgeerp.max_batch_events`
/// and `forgeerp.max_event_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most events one append may store.
    pub max_batch_events: usize,
    /// Most bytes one event's payload plus metadata may take, as JSON text.
    pub max_event_bytes: usize,
}

impl Limits {
    /// The settings' defaults: 10,000 events, 1 MiB per event.
    pub const DEFAULT: Limits = Limits {
        max_batch_events: 10_000,
        max_event_bytes: 1_048_576,
    };
}

impl Default for Limits {
    /// [`Limits::DEFAULT`].
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// What the append path needs to know about a valid batch.
#[derive(Debug, PartialEq, Eq)]
pub struct EventBatch {
    /// Number of events.
    pub len: usize,
    /// Each event's scalar fields, in batch order (payload and metadata stay
    /// where they are: the store takes them from the batch itself).
    pub events: Vec<ValidEvent>,
    /// How many events carry their own `event_id`.
    pub with_event_id: usize,
    /// The first `event_id` that appears twice in the batch, if any. It is
    /// reported as ES004 once the tenant check has passed.
    pub repeated_event_id: Option<String>,
}

/// One valid event's scalar fields, as the store writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidEvent {
    /// `event_type`.
    pub event_type: String,
    /// `event_id`, when the event brings its own.
    pub event_id: Option<[u8; 16]>,
    /// `event_version` (1 when absent).
    pub event_version: i32,
    /// `occurred_at` as given (strict RFC 3339), None when absent: the time
    /// of the append.
    pub occurred_at: Option<String>,
    /// Whether `metadata` is given (not absent, not JSON null).
    pub has_metadata: bool,
}

/// The keys an event object may have.
pub const EVENT_KEYS: [&str; 6] = [
    "event_type",
    "payload",
    "event_id",
    "event_version",
    "metadata",
    "occurred_at",
];
/// Most bytes an `event_type` or `aggregate_type` may take.
pub const MAX_TYPE_BYTES: usize = 255;

/// `aggregate_type`: 1 to [`MAX_TYPE_BYTES`] bytes (ES003 otherwise).
pub fn check_aggregate_type(aggregate_type: Option<&str>) -> Result<&str, ContractError> {
    match aggregate_type {
        None => Err(ContractError::invalid("aggregate_type must not be NULL")),
        Some("") => Err(ContractError::invalid("aggregate_type must not be empty")),
        Some(t) if t.len() > MAX_TYPE_BYTES => Err(ContractError::invalid(format!(
            "aggregate_type is {} bytes long, more than {MAX_TYPE_BYTES}: \"{}…\"",
            t.len(),
            prefix(t, 40)
        ))),
        Some(t) if t.contains('\0') => Err(ContractError::invalid(
            "aggregate_type contains a NUL character, which PostgreSQL's text cannot hold",
        )),
        Some(t) => Ok(t),
    }
}

/// A tenant or aggregate id (its 16 bytes): not NULL, not the nil uuid (ES003).
/// `what` names the argument.
pub fn check_id(id: Option<[u8; 16]>, what: &str) -> Result<[u8; 16], ContractError> {
    match id {
        None => Err(ContractError::invalid(format!("{what} must not be NULL"))),
        Some(bytes) if bytes == [0; 16] => Err(ContractError::invalid(format!(
            "{what} must not be the nil uuid"
        ))),
        Some(bytes) => Ok(bytes),
    }
}

/// ES003 when JSON text holds an escaped NUL character (`\u0000`), which
/// PostgreSQL's `jsonb` refuses (22P05) before the extension sees a batch:
/// how a store without PostgreSQL applies that rule.
pub fn check_storable(text: &str) -> Result<(), ContractError> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text[from..].find("u0000").map(|i| from + i) {
        let backslashes = bytes[..at]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count();
        if backslashes % 2 == 1 {
            return Err(ContractError::invalid(
                "events contain a NUL character (\\u0000), which PostgreSQL's jsonb cannot hold",
            ));
        }
        from = at + 1;
    }
    Ok(())
}

/// Checks the whole batch; the first problem found is the error.
pub fn validate(text: &str, limits: Limits) -> Result<EventBatch, ContractError> {
    let elements: Vec<&RawValue> = match serde_json::from_str(text) {
        Ok(elements) => elements,
        Err(_) => {
            return Err(ContractError::invalid(format!(
                "events must be a JSON array of event objects, got {}",
                describe(text)
            )))
        }
    };
    if elements.is_empty() {
        return Err(ContractError::invalid(
            "events must contain at least one event, got []",
        ));
    }
    if elements.len() > limits.max_batch_events {
        return Err(ContractError::invalid(format!(
            "events has {} events, more than {} ({})",
            elements.len(),
            MAX_BATCH_EVENTS.name(),
            limits.max_batch_events
        ))
        .with_hint(format!(
            "Split the batch, or ask a superuser to raise {}.",
            MAX_BATCH_EVENTS.name()
        )));
    }

    let mut seen = HashSet::new();
    let mut repeated_event_id = None;
    let mut with_event_id = 0;
    let mut events = Vec::with_capacity(elements.len());
    for (index, element) in elements.iter().enumerate() {
        let event = validate_event(index, element.get(), limits)?;
        if let Some(id) = event.event_id {
            with_event_id += 1;
            if !seen.insert(id) && repeated_event_id.is_none() {
                repeated_event_id = Some(uuid_text(&id));
            }
        }
        events.push(event);
    }
    Ok(EventBatch {
        len: elements.len(),
        events,
        with_event_id,
        repeated_event_id,
    })
}

/// Checks one event object; returns its scalar fields.
fn validate_event(index: usize, text: &str, limits: Limits) -> Result<ValidEvent, ContractError> {
    let at = |key: &str| format!("events[{index}].{key}");
    let fields: BTreeMap<String, &RawValue> = match serde_json::from_str(text) {
        Ok(fields) => fields,
        Err(_) => {
            return Err(ContractError::invalid(format!(
                "events[{index}] must be a JSON object, got {}",
                describe(text)
            )))
        }
    };
    if let Some(unknown) = fields.keys().find(|k| !EVENT_KEYS.contains(&k.as_str())) {
        return Err(ContractError::invalid(format!(
            "events[{index}] has an unknown key \"{unknown}\""
        ))
        .with_hint(
            "Allowed keys: event_type, payload, event_id, event_version, metadata, occurred_at.",
        ));
    }
    // JSON null counts as absent for every optional key.
    let present = |key: &str| fields.get(key).map(|v| v.get()).filter(|v| *v != "null");

    let event_type = match present("event_type") {
        None => {
            return Err(ContractError::invalid(format!(
                "{} is required",
                at("event_type")
            )))
        }
        Some(raw) => match serde_json::from_str::<String>(raw) {
            Ok(s) => s,
            Err(_) => {
                return Err(ContractError::invalid(format!(
                    "{} must be a string, got {}",
                    at("event_type"),
                    describe(raw)
                )))
            }
        },
    };
    if event_type.is_empty() {
        return Err(ContractError::invalid(format!(
            "{} must not be empty",
            at("event_type")
        )));
    }
    if event_type.len() > MAX_TYPE_BYTES {
        return Err(ContractError::invalid(format!(
            "{} is {} bytes long, more than {MAX_TYPE_BYTES}: \"{}…\"",
            at("event_type"),
            event_type.len(),
            prefix(&event_type, 40)
        )));
    }

    let payload = match present("payload") {
        None => {
            return Err(ContractError::invalid(format!(
                "{} is required",
                at("payload")
            )))
        }
        Some(raw) if raw.starts_with('{') => raw,
        Some(raw) => {
            return Err(ContractError::invalid(format!(
                "{} must be a JSON object, got {}",
                at("payload"),
                describe(raw)
            )))
        }
    };
    let metadata = match present("metadata") {
        None => "",
        Some(raw) if raw.starts_with('{') => raw,
        Some(raw) => {
            return Err(ContractError::invalid(format!(
                "{} must be a JSON object, got {}",
                at("metadata"),
                describe(raw)
            )))
        }
    };
    let bytes = payload.len() + metadata.len();
    if bytes > limits.max_event_bytes {
        return Err(ContractError::invalid(format!(
            "events[{index}] payload and metadata take {bytes} bytes, more than {} ({})",
            MAX_EVENT_BYTES.name(),
            limits.max_event_bytes
        ))
        .with_detail(format!(
            "payload: {} bytes, metadata: {} bytes",
            payload.len(),
            metadata.len()
        )));
    }

    let event_id = match present("event_id") {
        None => None,
        Some(raw) => match serde_json::from_str::<String>(raw)
            .ok()
            .and_then(|s| parse_uuid(&s))
        {
            Some(id) => Some(id),
            None => {
                return Err(ContractError::invalid(format!(
                    "{} must be a uuid string, got {}",
                    at("event_id"),
                    describe(raw)
                )))
            }
        },
    };

    let mut event_version = 1;
    if let Some(raw) = present("event_version") {
        match serde_json::from_str::<i64>(raw) {
            Ok(v) if (1..=i64::from(i32::MAX)).contains(&v) => event_version = v as i32,
            _ => {
                return Err(ContractError::invalid(format!(
                    "{} must be an integer from 1 to {}, got {}",
                    at("event_version"),
                    i32::MAX,
                    describe(raw)
                )))
            }
        }
    }

    let mut occurred_at = None;
    if let Some(raw) = present("occurred_at") {
        let parsed = serde_json::from_str::<String>(raw)
            .map_err(|_| "expected a string")
            .and_then(|s| rfc3339::check(&s).map(|()| s));
        match parsed {
            Ok(at) => occurred_at = Some(at),
            Err(why) => {
                return Err(ContractError::invalid(format!(
                    "{} must be an RFC 3339 timestamp, got {} ({why})",
                    at("occurred_at"),
                    describe(raw)
                )))
            }
        }
    }
    Ok(ValidEvent {
        event_type,
        event_id,
        event_version,
        occurred_at,
        has_metadata: !metadata.is_empty(),
    })
}

/// A JSON value named for an error message: its kind and its first bytes.
fn describe(raw: &str) -> String {
    let raw = raw.trim();
    let kind = match raw.as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    };
    if raw.len() > 60 {
        format!("{kind} {}…", prefix(raw, 60))
    } else {
        format!("{kind} {raw}")
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl EventBatch {
    /// The ES004 error for an event id given twice in this batch.
    pub fn repeated_event_id_error(&self) -> Option<ContractError> {
        self.repeated_event_id
            .as_deref()
            .map(crate::append::AppendTarget::repeated_in_batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqlState;

    const LIMITS: Limits = Limits {
        max_batch_events: 10,
        max_event_bytes: 1_000_000,
    };

    #[test]
    fn a_valid_batch_is_summarised() {
        let text = r#"[{"event_type": "A", "payload": {}, "event_id": "6f1c1a52-8c36-4a4e-9d55-2a4a7c1f0b10"}, {"event_type": "B", "payload": {}, "event_id": "6F1C1A52-8C36-4A4E-9D55-2A4A7C1F0B10"}, {"event_type": "C", "payload": {}}]"#;
        let batch = validate(text, LIMITS).unwrap();
        assert_eq!(batch.len, 3);
        assert_eq!(batch.with_event_id, 2);
        assert_eq!(
            batch.repeated_event_id.as_deref(),
            Some("6f1c1a52-8c36-4a4e-9d55-2a4a7c1f0b10")
        );
        assert_eq!(
            batch.repeated_event_id_error().unwrap().state,
            SqlState::DuplicateEventId
        );
    }

    #[test]
    fn a_valid_batch_hands_over_each_event_s_scalar_fields() {
        let text = r#"[{"event_type": "A", "payload": {}, "event_id": "{6F1C1A52-8C36-4A4E-9D55-2A4A7C1F0B10}", "event_version": 3, "metadata": {"by": 1}, "occurred_at": "2020-01-01T00:00:00Z"}, {"event_type": "B", "payload": {}, "metadata": null, "occurred_at": null}]"#;
        let batch = validate(text, LIMITS).unwrap();
        assert_eq!(
            batch.events,
            [
                ValidEvent {
                    event_type: "A".into(),
                    event_id: crate::uuid_text::parse_uuid("6f1c1a52-8c36-4a4e-9d55-2a4a7c1f0b10"),
                    event_version: 3,
                    occurred_at: Some("2020-01-01T00:00:00Z".into()),
                    has_metadata: true,
                },
                ValidEvent {
                    event_type: "B".into(),
                    event_id: None,
                    event_version: 1,
                    occurred_at: None,
                    has_metadata: false,
                },
            ]
        );
    }

    #[test]
    fn the_first_problem_is_reported_with_its_position() {
        let text = r#"[{"event_type": "A", "payload": {}}, {"event_type": "B", "payload": 1, "event_version": 0}]"#;
        let error = validate(text, LIMITS).unwrap_err();
        assert_eq!(
            error.message,
            "events[1].payload must be a JSON object, got number 1"
        );
        let too_many = format!(
            "[{}]",
            [r#"{"event_type": "A", "payload": {}}"#; 11].join(", ")
        );
        let error = validate(&too_many, LIMITS).unwrap_err();
        assert!(
            error
                .message
                .contains("11 events, more than forgeerp.max_batch_events (10)"),
            "{}",
            error.message
        );
    }

    #[test]
    fn an_unknown_key_and_a_bad_occurred_at_are_refused() {
        let error = validate(
            r#"[{"event_type": "A", "payload": {}, "bogus": 1}]"#,
            LIMITS,
        )
        .unwrap_err();
        assert_eq!(error.message, "events[0] has an unknown key \"bogus\"");
        let error = validate(
            r#"[{"event_type": "A", "payload": {}, "occurred_at": "yesterday"}]"#,
            LIMITS,
        )
        .unwrap_err();
        assert!(error
            .message
            .starts_with("events[0].occurred_at must be an RFC 3339 timestamp"));
    }

    #[test]
    fn only_a_real_escaped_nul_is_unstorable() {
        assert!(check_storable(r#"{"a": "x\u0000y"}"#).is_err());
        assert!(check_storable(r#"{"a": "\\\u0000"}"#).is_err());
        // A backslash, then the text u0000: no NUL.
        assert_eq!(check_storable(r#"{"a": "\\u0000"}"#), Ok(()));
        assert_eq!(check_storable(r#"{"u0000": 1}"#), Ok(()));
    }

    #[test]
    fn ids_and_aggregate_types() {
        assert_eq!(check_id(Some([7; 16]), "tenant_id"), Ok([7; 16]));
        assert_eq!(
            check_id(Some([0; 16]), "tenant_id").unwrap_err().message,
            "tenant_id must not be the nil uuid"
        );
        assert_eq!(
            check_id(None, "aggregate_id").unwrap_err().message,
            "aggregate_id must not be NULL"
        );
        assert_eq!(check_aggregate_type(Some("Item")), Ok("Item"));
        assert!(check_aggregate_type(Some("")).is_err());
        assert!(check_aggregate_type(Some(&"x".repeat(256))).is_err());
        assert!(check_aggregate_type(Some("a\0b")).is_err());
    }
}

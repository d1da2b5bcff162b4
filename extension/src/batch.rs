//! Validation of the `events` argument of `forgeerp.append`.
//!
//! The batch is checked on Postgres' own text of the `jsonb` value, so sizes
//! are exactly the sizes the contract names. Nothing is copied out for
//! writing: the insert reads the fields from the original `jsonb` datum.

use crate::error::{SqlState, StoreError};
use crate::rfc3339;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashSet};

/// Limits that apply to one batch.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_batch_events: usize,
    pub max_event_bytes: usize,
}

/// What the append path needs to know about a valid batch.
#[derive(Debug, PartialEq, Eq)]
pub struct EventBatch {
    /// Number of events.
    pub len: usize,
    /// How many events carry their own `event_id`.
    pub with_event_id: usize,
    /// The first `event_id` that appears twice in the batch, if any. It is
    /// reported as ES004 once the tenant check has passed.
    pub repeated_event_id: Option<String>,
}

const KEYS: [&str; 6] = [
    "event_type",
    "payload",
    "event_id",
    "event_version",
    "metadata",
    "occurred_at",
];
const MAX_TYPE_BYTES: usize = 255;

/// Checks the whole batch; the first problem found is the error.
pub fn validate(text: &str, limits: Limits) -> Result<EventBatch, StoreError> {
    let elements: Vec<&RawValue> = match serde_json::from_str(text) {
        Ok(elements) => elements,
        Err(_) => {
            return Err(StoreError::invalid(format!(
                "events must be a JSON array of event objects, got {}",
                describe(text)
            )))
        }
    };
    if elements.is_empty() {
        return Err(StoreError::invalid(
            "events must contain at least one event, got []",
        ));
    }
    if elements.len() > limits.max_batch_events {
        return Err(StoreError::invalid(format!(
            "events has {} events, more than forgeerp.max_batch_events ({})",
            elements.len(),
            limits.max_batch_events
        ))
        .with_hint("Split the batch, or ask a superuser to raise forgeerp.max_batch_events."));
    }

    let mut seen = HashSet::new();
    let mut repeated_event_id = None;
    let mut with_event_id = 0;
    for (index, element) in elements.iter().enumerate() {
        let event_id = validate_event(index, element.get(), limits)?;
        if let Some(id) = event_id {
            with_event_id += 1;
            if !seen.insert(id.clone()) && repeated_event_id.is_none() {
                repeated_event_id = Some(id);
            }
        }
    }
    Ok(EventBatch {
        len: elements.len(),
        with_event_id,
        repeated_event_id,
    })
}

/// Checks one event object; returns its `event_id` (lower case) when given.
fn validate_event(index: usize, text: &str, limits: Limits) -> Result<Option<String>, StoreError> {
    let at = |key: &str| format!("events[{index}].{key}");
    let fields: BTreeMap<String, &RawValue> = match serde_json::from_str(text) {
        Ok(fields) => fields,
        Err(_) => {
            return Err(StoreError::invalid(format!(
                "events[{index}] must be a JSON object, got {}",
                describe(text)
            )))
        }
    };
    if let Some(unknown) = fields.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(StoreError::invalid(format!(
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
            return Err(StoreError::invalid(format!(
                "{} is required",
                at("event_type")
            )))
        }
        Some(raw) => match serde_json::from_str::<String>(raw) {
            Ok(s) => s,
            Err(_) => {
                return Err(StoreError::invalid(format!(
                    "{} must be a string, got {}",
                    at("event_type"),
                    describe(raw)
                )))
            }
        },
    };
    if event_type.is_empty() {
        return Err(StoreError::invalid(format!(
            "{} must not be empty",
            at("event_type")
        )));
    }
    if event_type.len() > MAX_TYPE_BYTES {
        return Err(StoreError::invalid(format!(
            "{} is {} bytes long, more than {MAX_TYPE_BYTES}: \"{}…\"",
            at("event_type"),
            event_type.len(),
            prefix(&event_type, 40)
        )));
    }

    let payload = match present("payload") {
        None => {
            return Err(StoreError::invalid(format!(
                "{} is required",
                at("payload")
            )))
        }
        Some(raw) if raw.starts_with('{') => raw,
        Some(raw) => {
            return Err(StoreError::invalid(format!(
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
            return Err(StoreError::invalid(format!(
                "{} must be a JSON object, got {}",
                at("metadata"),
                describe(raw)
            )))
        }
    };
    let bytes = payload.len() + metadata.len();
    if bytes > limits.max_event_bytes {
        return Err(StoreError::invalid(format!(
            "events[{index}] payload and metadata take {bytes} bytes, more than forgeerp.max_event_bytes ({})",
            limits.max_event_bytes
        ))
        .with_detail(format!("payload: {} bytes, metadata: {} bytes", payload.len(), metadata.len())));
    }

    let event_id = match present("event_id") {
        None => None,
        Some(raw) => match serde_json::from_str::<String>(raw)
            .ok()
            .and_then(|s| canonical_uuid(&s))
        {
            Some(id) => Some(id),
            None => {
                return Err(StoreError::invalid(format!(
                    "{} must be a uuid string, got {}",
                    at("event_id"),
                    describe(raw)
                )))
            }
        },
    };

    if let Some(raw) = present("event_version") {
        match serde_json::from_str::<i64>(raw) {
            Ok(v) if (1..=i64::from(i32::MAX)).contains(&v) => {}
            _ => {
                return Err(StoreError::invalid(format!(
                    "{} must be an integer from 1 to {}, got {}",
                    at("event_version"),
                    i32::MAX,
                    describe(raw)
                )))
            }
        }
    }

    if let Some(raw) = present("occurred_at") {
        let parsed = serde_json::from_str::<String>(raw)
            .map_err(|_| "expected a string")
            .and_then(|s| rfc3339::check(&s));
        if let Err(why) = parsed {
            return Err(StoreError::invalid(format!(
                "{} must be an RFC 3339 timestamp, got {} ({why})",
                at("occurred_at"),
                describe(raw)
            )));
        }
    }
    Ok(event_id)
}

/// The canonical (lower-case, hyphenated) text of a uuid in any of the forms
/// Postgres' `uuid` input accepts, or None.
pub fn canonical_uuid(s: &str) -> Option<String> {
    let inner = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(s);
    let hex: String = inner.chars().filter(|c| *c != '-').collect();
    let hyphens_ok = match inner.len() {
        32 => !inner.contains('-'),
        36 => {
            [8, 13, 18, 23].iter().all(|&i| inner.as_bytes()[i] == b'-')
                && inner.matches('-').count() == 4
        }
        _ => false,
    };
    if !hyphens_ok || hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(uuid_text(&bytes))
}

/// The canonical text (lower case, hyphenated) of a uuid's 16 bytes.
pub fn uuid_text(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
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
    pub fn repeated_event_id_error(&self) -> Option<StoreError> {
        self.repeated_event_id.as_ref().map(|id| {
            StoreError::new(
                SqlState::DuplicateEventId,
                format!("event_id {id} appears more than once in the batch"),
            )
        })
    }
}

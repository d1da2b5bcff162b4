//! `forgeerp append` and `forgeerp load`: one stream, through the driver.

use crate::connect::connect;
use crate::error::CliError;
use forgeerp_infra::{
    AggregateId, EventId, EventStore, ExpectedVersion, StoredEvent, TenantId, UncommittedEvent,
};
use serde_json::Value;

/// Appends the JSON array `events` to one stream and prints what was stored.
pub async fn append(
    url: &str,
    tenant: TenantId,
    aggregate_type: &str,
    aggregate: AggregateId,
    expected: &str,
    events: &str,
) -> Result<(), CliError> {
    let expected = parse_expected(expected)?;
    let batch = parse_events(tenant, aggregate_type, aggregate, events)?;
    let store = connect(url, 1).await?;
    for event in store.append(batch, expected).await? {
        print_event(&event);
    }
    Ok(())
}

/// Prints every event of one stream.
pub async fn load(url: &str, tenant: TenantId, aggregate: AggregateId) -> Result<(), CliError> {
    let store = connect(url, 1).await?;
    for event in store.load_stream(tenant, aggregate).await? {
        print_event(&event);
    }
    Ok(())
}

/// One event as one line of JSON.
pub fn print_event(event: &StoredEvent) {
    println!(
        "{}",
        serde_json::to_string(event).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    );
}

fn parse_expected(expected: &str) -> Result<ExpectedVersion, CliError> {
    match expected {
        "any" => Ok(ExpectedVersion::Any),
        "no-stream" => Ok(ExpectedVersion::NoStream),
        "exists" => Ok(ExpectedVersion::StreamExists),
        n => n.parse::<u64>().map(ExpectedVersion::Exact).map_err(|_| {
            CliError::usage(format!(
                "--expected {n:?} is not any, no-stream, exists or a version number"
            ))
        }),
    }
}

fn parse_events(
    tenant: TenantId,
    aggregate_type: &str,
    aggregate: AggregateId,
    events: &str,
) -> Result<Vec<UncommittedEvent>, CliError> {
    let value: Value = serde_json::from_str(events)
        .map_err(|e| CliError::usage(format!("the events are not JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(CliError::usage(
            "the events must be a JSON array of objects",
        ));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let field = |name: &str| item.get(name).cloned();
            let event_type = field("event_type")
                .and_then(|v| v.as_str().map(str::to_string))
                .ok_or_else(|| {
                    CliError::usage(format!("event {i}: event_type (a string) is missing"))
                })?;
            let payload = field("payload")
                .ok_or_else(|| CliError::usage(format!("event {i}: payload is missing")))?;
            let mut event =
                UncommittedEvent::new(tenant, aggregate_type, aggregate, event_type, payload);
            if let Some(metadata) = field("metadata") {
                event = event.with_metadata(metadata);
            }
            if let Some(id) = field("event_id") {
                let id = id
                    .as_str()
                    .and_then(|s| uuid::Uuid::parse_str(s).ok())
                    .map(EventId)
                    .ok_or_else(|| {
                        CliError::usage(format!("event {i}: event_id {id} is not a uuid"))
                    })?;
                event = event.with_event_id(id);
            }
            if let Some(version) = field("event_version") {
                let version = version
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .filter(|v| *v >= 1)
                    .ok_or_else(|| {
                        CliError::usage(format!(
                            "event {i}: event_version {version} is not a number >= 1"
                        ))
                    })?;
                event = event.with_event_version(version);
            }
            Ok(event)
        })
        .collect()
}

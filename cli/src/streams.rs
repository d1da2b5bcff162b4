//! `forgeerp append` and `forgeerp load`: one stream, through the driver.

use crate::connect::{connect, Database};
use crate::error::CliError;
use forgeerp_infra::{AggregateId, EventStore, ExpectedVersion, StoredEvent, TenantId};
use serde_json::Value;

/// Appends the JSON array `events` to one stream and prints what was stored.
pub async fn append(
    db: &Database,
    tenant: TenantId,
    aggregate_type: &str,
    aggregate: AggregateId,
    expected: &str,
    events: &str,
) -> Result<(), CliError> {
    let expected = parse_expected(expected)?;
    let batch = parse_events(&read_events(events)?)?;
    let store = connect(db, 1).await?;
    for event in store
        .append_json(tenant, aggregate_type, aggregate, expected, &batch)
        .await?
    {
        println!("{}", serde_json::to_string(&event).unwrap_or_default());
    }
    Ok(())
}

/// Prints every event of one stream.
pub async fn load(db: &Database, tenant: TenantId, aggregate: AggregateId) -> Result<(), CliError> {
    let store = connect(db, 1).await?;
    let personal = crate::personal::from_env(&store)?;
    let events = store.load_stream(tenant, aggregate).await?;
    for event in crate::personal::opened(personal.as_ref(), events).await? {
        print_event(event)?;
    }
    Ok(())
}

/// One event as one line of JSON, at its current version (the inventory's
/// upcasters; events of other types as stored). An event of a version newer
/// than this build knows is an error naming it, not a misread.
pub fn print_event(event: StoredEvent) -> Result<(), CliError> {
    static UPCASTERS: std::sync::OnceLock<forgeerp_infra::Upcasters> = std::sync::OnceLock::new();
    let current = UPCASTERS
        .get_or_init(forgeerp_infra::inventory::upcasters)
        .upcast(event)
        .map_err(|e| CliError::failed(e.to_string()))?;
    println!(
        "{}",
        serde_json::to_string(&current).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    );
    Ok(())
}

/// `--expected`, spelled as the contract's `ExpectedVersion` reads it.
fn parse_expected(expected: &str) -> Result<ExpectedVersion, CliError> {
    expected
        .parse()
        .map_err(|e: forgeerp_infra::contract::ContractError| {
            CliError::usage(format!("--expected {}", e.message))
        })
}

/// The events argument's text: itself, stdin for `-`, a file for `@FILE`.
fn read_events(argument: &str) -> Result<String, CliError> {
    use std::io::Read;
    if argument == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::usage(format!("cannot read the events from stdin: {e}")))?;
        return Ok(text);
    }
    match argument.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("cannot read the events from {path}: {e}"))),
        None => Ok(argument.to_string()),
    }
}

/// The events as JSON, passed to `forgeerp.append` unchanged: the extension
/// validates the batch (every key, `occurred_at` included), so the CLI cannot
/// drift from it.
fn parse_events(events: &str) -> Result<Value, CliError> {
    let value: Value = serde_json::from_str(events)
        .map_err(|e| CliError::usage(format!("the events are not JSON: {e}")))?;
    if !value.is_array() {
        return Err(CliError::usage(
            "the events must be a JSON array of objects",
        ));
    }
    Ok(value)
}

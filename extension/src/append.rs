//! `forgeerp.append`: the hot path, one round trip per batch.
//!
//! Order of checks (the first failure decides the SQLSTATE): arguments
//! (ES003), tenant binding (ES002), retry or duplicate event id (ES004),
//! aggregate type (ES005), expected version (ES001).
//!
//! No SQL runs at call time (`events_table`): the stream's append lock (a
//! heavyweight lock that writes nothing), one backward index step for the
//! stream's head (version and aggregate type), then the executor's
//! single-row insert for each event. Batches that carry their own event ids
//! add one index lookup per id, for retry detection. Tenant scopes are read
//! from `forgeerp.role_scopes` directly (`scopes`).

use crate::error::{ContractError, Raise, SqlState};
use crate::events_table::{self, EventsTable, RowValues};
use crate::jsonb_text::JsonbText;
use crate::notify;
use crate::release;
use crate::scopes;
use crate::settings;
use forgeerp_contract::batch::{self, EventBatch};
use forgeerp_contract::uuid_text::uuid_text;
use forgeerp_contract::{AppendTarget, ExpectedVersion, Reuse, StoredMatch};
use pgrx::prelude::*;
use pgrx::{pg_sys, Uuid};

/// One stored event as `append` returns it: event id, sequence number,
/// global position, transaction id, recorded at.
type AppendedRow = (Uuid, i64, i64, i64, TimestampWithTimeZone);

/// `append`'s result, one row per stored event (pgrx needs the type spelled
/// out in each `#[pg_extern]` signature).
type AppendResult = TableIterator<
    'static,
    (
        name!(event_id, Uuid),
        name!(sequence_number, i64),
        name!(global_position, i64),
        name!(transaction_id, i64),
        name!(recorded_at, TimestampWithTimeZone),
    ),
>;

/// `forgeerp.append` of releases 0.1.0 to 0.3.0 (C symbol `append_wrapper`),
/// kept for databases not yet updated (`docs/releases.md`): SECURITY
/// DEFINER, and they have no tenant scopes. From 0.4.0 `forgeerp.append` is
/// [`append_as_caller`], so this emits no SQL.
#[pg_extern(sql = false, security_definer, volatile, parallel_unsafe)]
#[search_path(pg_catalog, forgeerp, pg_temp)]
fn append(
    tenant_id: Option<Uuid>,
    aggregate_type: Option<&str>,
    aggregate_id: Option<Uuid>,
    expected_version: Option<i64>,
    events: Option<JsonbText>,
) -> TableIterator<
    'static,
    (
        name!(event_id, Uuid),
        name!(sequence_number, i64),
        name!(global_position, i64),
        name!(transaction_id, i64),
        name!(recorded_at, TimestampWithTimeZone),
    ),
> {
    append_entry(
        Caller::Unscoped,
        tenant_id,
        aggregate_type,
        aggregate_id,
        expected_version,
        events,
    )
}

/// `forgeerp.append` from 0.4.0 (see `docs/API.md`; C symbol
/// `append_as_caller_wrapper`). Not SECURITY DEFINER: it learns the role
/// really calling (`GetUserId`, which a SECURITY DEFINER function would have
/// replaced by its owner), then switches to the extension's owner for the
/// work and back, as PostgreSQL's own SECURITY DEFINER call does. An error
/// on the way out is safe too: ending the (sub)transaction restores the
/// user, as it does for SECURITY DEFINER functions.
#[pg_extern(name = "append", volatile, parallel_unsafe)]
#[search_path(pg_catalog, forgeerp, pg_temp)]
fn append_as_caller(
    tenant_id: Option<Uuid>,
    aggregate_type: Option<&str>,
    aggregate_id: Option<Uuid>,
    expected_version: Option<i64>,
    events: Option<JsonbText>,
) -> TableIterator<
    'static,
    (
        name!(event_id, Uuid),
        name!(sequence_number, i64),
        name!(global_position, i64),
        name!(transaction_id, i64),
        name!(recorded_at, TimestampWithTimeZone),
    ),
> {
    append_entry(
        Caller::Current(unsafe { pg_sys::GetUserId() }),
        tenant_id,
        aggregate_type,
        aggregate_id,
        expected_version,
        events,
    )
}

/// Who calls: the current role, whose tenant scopes apply; or, through the
/// entry point of 0.1.0 to 0.3.0, nobody in particular (no scopes existed).
#[derive(Clone, Copy)]
enum Caller {
    Unscoped,
    Current(pg_sys::Oid),
}

fn append_entry(
    caller: Caller,
    tenant_id: Option<Uuid>,
    aggregate_type: Option<&str>,
    aggregate_id: Option<Uuid>,
    expected_version: Option<i64>,
    events: Option<JsonbText>,
) -> AppendResult {
    // A Rust panic (a bug of ours) reaches the client as one plain XX000
    // line; its text and place go to the server log only.
    let result = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        append_checked(
            caller,
            tenant_id,
            aggregate_type,
            aggregate_id,
            expected_version,
            events,
        )
    }))
    .catch_rust_panic(|cause| Err(ContractError::internal("forgeerp.append", cause)))
    .execute();
    match result {
        Ok(rows) => TableIterator::new(rows),
        Err(error) => error.raise(),
    }
}

/// A validated append.
struct AppendRequest<'a> {
    tenant_id: Uuid,
    tenant_text: String,
    aggregate_id: Uuid,
    target: AppendTarget<'a>,
    expected: ExpectedVersion,
    events: JsonbText,
    batch: EventBatch,
}

fn append_checked(
    caller: Caller,
    tenant_id: Option<Uuid>,
    aggregate_type: Option<&str>,
    aggregate_id: Option<Uuid>,
    expected_version: Option<i64>,
    events: Option<JsonbText>,
) -> Result<Vec<AppendedRow>, ContractError> {
    let tenant_id = batch::check_id(tenant_id.map(|id| *id.as_bytes()), "tenant_id")?;
    let aggregate_type = batch::check_aggregate_type(aggregate_type)?;
    let aggregate_id = batch::check_id(aggregate_id.map(|id| *id.as_bytes()), "aggregate_id")?;
    let expected = ExpectedVersion::from_sql(expected_version)?;
    let events = events.ok_or_else(|| ContractError::invalid("events must not be NULL"))?;
    let batch = batch::validate(events.text(), settings::limits())?;

    let request = AppendRequest {
        tenant_id: Uuid::from_bytes(tenant_id),
        tenant_text: uuid_text(&tenant_id),
        aggregate_id: Uuid::from_bytes(aggregate_id),
        target: AppendTarget {
            tenant_id,
            aggregate_type,
            aggregate_id,
            batch_len: batch.len,
        },
        expected,
        events,
        batch,
    };
    release::check_database()?;
    let Caller::Current(caller) = caller else {
        // 0.1.0 to 0.3.0: SECURITY DEFINER already runs this as the owner.
        return append_as_owner(None, &request);
    };
    let mut saved = (pg_sys::InvalidOid, 0);
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved.0, &mut saved.1);
        pg_sys::SetUserIdAndSecContext(
            release::owner(),
            saved.1 | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    let result = append_as_owner(Some(caller), &request);
    unsafe { pg_sys::SetUserIdAndSecContext(saved.0, saved.1) };
    result
}

/// The append once the owner's rights are in force: tenant access for
/// `caller` (None: no scopes), then the checks and the write.
fn append_as_owner(
    caller: Option<pg_sys::Oid>,
    request: &AppendRequest<'_>,
) -> Result<Vec<AppendedRow>, ContractError> {
    check_tenant_access(caller, &request.tenant_text)?;
    if let Some(error) = request.batch.repeated_event_id_error() {
        return Err(error);
    }
    append_to_stream(request)
}

/// ES002 unless the caller may use the tenant: not outside its role's scope
/// (when scopes exist), and the transaction not bound to another tenant.
fn check_tenant_access(
    caller: Option<pg_sys::Oid>,
    tenant_text: &str,
) -> Result<(), ContractError> {
    if let Some(caller) = caller {
        if let Some(scope) = scopes::scope_of(caller)? {
            if scope != tenant_text {
                return Err(ContractError::new(
                    SqlState::TenantIsolation,
                    format!("tenant {tenant_text} is outside the scope of this role"),
                )
                .with_detail(format!("the role is scoped to tenant {scope}")));
            }
        }
    }
    if let Some(bound) = settings::bound_tenant() {
        if bound != tenant_text {
            return Err(ContractError::new(
                SqlState::TenantIsolation,
                format!("tenant {tenant_text} is not the tenant this transaction is bound to"),
            )
            .with_detail(format!("bound tenant: {bound}")));
        }
    }
    Ok(())
}

/// Takes the stream's append lock until the transaction ends.
///
/// A heavyweight lock of the advisory kind, keyed by a hash of (tenant,
/// aggregate) in a key space of its own (`objsubid` 3 in `pg_locks`, where
/// `pg_advisory_lock` uses 1 and 2). It writes nothing, unlike a row lock, and
/// takes part in deadlock detection and `lock_timeout`. Two streams whose
/// keys collide only queue behind each other.
fn lock_stream(tenant_id: &Uuid, aggregate_id: &Uuid) {
    let hash =
        forgeerp_contract::append::stream_hash(tenant_id.as_bytes(), aggregate_id.as_bytes());
    let tag = pg_sys::LOCKTAG {
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: (hash >> 32) as u32,
        locktag_field3: hash as u32,
        locktag_field4: 3,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    };
    unsafe {
        pg_sys::LockAcquire(
            &tag,
            pg_sys::ExclusiveLock as pg_sys::LOCKMODE,
            false,
            false,
        )
    };
}

fn append_to_stream(req: &AppendRequest<'_>) -> Result<Vec<AppendedRow>, ContractError> {
    lock_stream(&req.tenant_id, &req.aggregate_id);
    // The table is opened with a snapshot taken after the lock: under READ
    // COMMITTED it sees every append that held the lock before.
    let table = EventsTable::open();
    let tenant = *req.tenant_id.as_bytes();
    let aggregate = *req.aggregate_id.as_bytes();

    // ES004 (a retry, or a reused id) goes before ES005 and ES001.
    if let Some(stored) = resolve_existing(&table, req)? {
        table.close();
        return Ok(stored);
    }
    let head = table.head(&tenant, &aggregate);
    req.target
        .check_aggregate_type(head.aggregate_type.as_deref())?;
    req.target
        .check_version(req.expected, head.version as u64)?;

    let transaction_id = unsafe { pg_sys::GetTopFullTransactionId() }.value as i64;
    let row = RowValues::new(
        &tenant,
        &aggregate,
        req.target.aggregate_type,
        transaction_id,
        head.version,
        req.events.datum(),
    );
    // A unique violation here means another transaction stored a row this
    // one could not see: under READ COMMITTED, the same event id in another
    // stream at the same moment; under REPEATABLE READ or SERIALIZABLE, any
    // append after this transaction's snapshot.
    let stored = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        Ok(table.insert(&row, &req.batch.events))
    }))
    .catch_when(PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION, |_| {
        if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
            Err(req.target.serialization_failure())
        } else {
            Err(req.target.stored_concurrently())
        }
    })
    .execute()?;
    table.close();
    notify::appended(req.tenant_id.as_bytes(), &req.tenant_text);
    let recorded_at = recorded_at(row.now);
    Ok(stored
        .into_iter()
        .map(|(event_id, sequence, position)| {
            (
                Uuid::from_bytes(event_id),
                sequence,
                position,
                transaction_id,
                recorded_at,
            )
        })
        .collect())
}

fn recorded_at(at: pg_sys::TimestampTz) -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(at).expect("the transaction's start is a valid timestamp")
}

/// The stored events whose ids the batch reuses, judged by the contract's
/// rule ([`AppendTarget::judge_reuse`]): None when there are none, their
/// rows for an exact retry, ES004 or ES005 otherwise.
fn resolve_existing(
    table: &EventsTable,
    req: &AppendRequest<'_>,
) -> Result<Option<Vec<AppendedRow>>, ContractError> {
    if req.batch.with_event_id == 0 {
        return Ok(None);
    }
    let tenant = *req.tenant_id.as_bytes();
    let found: Vec<(usize, events_table::Stored)> = req
        .batch
        .events
        .iter()
        .enumerate()
        .filter_map(|(i, event)| {
            let id = event.event_id?;
            table.by_event_id(&tenant, &id).map(|stored| (i, stored))
        })
        .collect();
    let matches: Vec<StoredMatch<'_>> = found
        .iter()
        .map(|(index, stored)| StoredMatch {
            index: *index,
            event_id: stored.event_id,
            aggregate_id: stored.aggregate_id,
            aggregate_type: &stored.aggregate_type,
            sequence_number: stored.sequence_number as u64,
            same_content: stored.event_type == req.batch.events[*index].event_type
                && events_table::same_payload(stored.payload, req.events.datum(), *index),
        })
        .collect();
    match req.target.judge_reuse(&matches)? {
        Reuse::None => Ok(None),
        Reuse::Retry => Ok(Some(
            found
                .into_iter()
                .map(|(_, stored)| {
                    (
                        Uuid::from_bytes(stored.event_id),
                        stored.sequence_number,
                        stored.global_position,
                        stored.transaction_id,
                        recorded_at(stored.recorded_at),
                    )
                })
                .collect(),
        )),
    }
}

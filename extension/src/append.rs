//! `forgeerp.append`: the hot path, one round trip per batch.
//!
//! Order of checks (the first failure decides the SQLSTATE): arguments
//! (ES003), tenant binding (ES002), retry or duplicate event id (ES004),
//! aggregate type (ES005), expected version (ES001).
//!
//! The common case costs a lock and one statement: the stream's append lock
//! (a heavyweight lock that writes nothing), then one `INSERT … SELECT` that
//! reads the stream's head (version and aggregate type), checks both and
//! stores the whole batch after it. Batches that carry their own event ids
//! add one statement that looks the ids up, for retry detection.

use crate::error::{ContractError, Raise, SqlState};
use crate::jsonb_text::JsonbText;
use crate::notify;
use crate::release;
use crate::settings;
use forgeerp_contract::batch::{self, EventBatch};
use forgeerp_contract::uuid_text::uuid_text;
use forgeerp_contract::{AppendTarget, ExpectedVersion, Reuse, StoredMatch};
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient};
use pgrx::{pg_sys, PgOid, Uuid};
use std::cell::OnceCell;

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
    Spi::connect_mut(|client| {
        release::check_database(client)?;
        let Caller::Current(caller) = caller else {
            // 0.1.0 to 0.3.0: SECURITY DEFINER already runs this as the owner.
            return append_as_owner(client, None, &request);
        };
        let mut saved = (pg_sys::InvalidOid, 0);
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut saved.0, &mut saved.1);
            pg_sys::SetUserIdAndSecContext(
                release::owner(),
                saved.1 | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
            );
        }
        let result = append_as_owner(client, Some(caller), &request);
        unsafe { pg_sys::SetUserIdAndSecContext(saved.0, saved.1) };
        result
    })
}

/// The append once the owner's rights are in force: tenant access for
/// `caller` (None: no scopes), then the checks and the write.
fn append_as_owner(
    client: &mut SpiClient<'_>,
    caller: Option<pg_sys::Oid>,
    request: &AppendRequest<'_>,
) -> Result<Vec<AppendedRow>, ContractError> {
    check_tenant_access(client, caller, &request.tenant_text)?;
    if let Some(error) = request.batch.repeated_event_id_error() {
        return Err(error);
    }
    append_to_stream(client, request)
}

/// ES002 unless the caller may use the tenant: not outside its role's scope
/// (when scopes exist), and the transaction not bound to another tenant.
fn check_tenant_access(
    client: &SpiClient<'_>,
    caller: Option<pg_sys::Oid>,
    tenant_text: &str,
) -> Result<(), ContractError> {
    if let Some(caller) = caller {
        if let Some(scope) = caller_scope(client, caller)? {
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

thread_local! {
    static CALLER_SCOPE: OnceCell<&'static OwnedPreparedStatement> = const { OnceCell::new() };
}

/// The tenant `caller` is scoped to (lower-case text), None when unscoped;
/// ES002 when it has the privileges of roles scoped to two tenants. The rule
/// itself is `forgeerp.caller_scopes`, shared with the SQL functions; the
/// caller is known here, so its claim check does not apply.
fn caller_scope(
    client: &SpiClient<'_>,
    caller: pg_sys::Oid,
) -> Result<Option<String>, ContractError> {
    let plan = CALLER_SCOPE.with(|cell| {
        *cell.get_or_init(|| {
            Box::leak(Box::new(prepare(
                client,
                include_str!("../../sql/query_caller_scope.sql"),
                &[OID],
            )))
        })
    });
    let rows = client
        .select(plan, Some(1), &[caller.into()])
        .unwrap_or_else(|e| spi_failed(e));
    if rows.is_empty() {
        return Ok(None); // a role dropped under a running session: no scope row can name it
    }
    let row = rows.first();
    let scopes = row.get::<i32>(1).ok().flatten().unwrap_or(0);
    if scopes > 1 {
        let name = row.get::<String>(3).ok().flatten().unwrap_or_default();
        return Err(ContractError::new(
            SqlState::TenantIsolation,
            format!(
                "role {name} has the privileges of roles scoped to {scopes} different tenants, so it may use none"
            ),
        ));
    }
    Ok(row
        .get::<Uuid>(2)
        .ok()
        .flatten()
        .map(|s| uuid_text(s.as_bytes())))
}

/// The prepared statements of the append path, planned once per backend.
struct Plans {
    append_batch: OwnedPreparedStatement,
    stream_head: OwnedPreparedStatement,
    find_existing: OwnedPreparedStatement,
}

thread_local! {
    static PLANS: OnceCell<&'static Plans> = const { OnceCell::new() };
}

const UUID: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::UUIDOID);
const TEXT: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::TEXTOID);
const INT8: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::INT8OID);
const JSONB: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::JSONBOID);
const OID: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::OIDOID);

fn prepare(client: &SpiClient<'_>, sql: &str, args: &[PgOid]) -> OwnedPreparedStatement {
    client
        .prepare_mut(sql, args)
        .unwrap_or_else(|e| pgrx::error!("forgeerp: cannot prepare the append path: {e}"))
        .keep()
}

/// The backend's plans, made on first use and kept for the backend's life.
fn plans(client: &SpiClient<'_>) -> &'static Plans {
    PLANS.with(|cell| {
        *cell.get_or_init(|| {
            Box::leak(Box::new(Plans {
                stream_head: prepare(
                    client,
                    include_str!("../../sql/query_stream_head.sql"),
                    &[UUID, UUID],
                ),
                append_batch: prepare(
                    client,
                    include_str!("../../sql/query_append_batch.sql"),
                    &[INT8, UUID, TEXT, UUID, INT8, INT8, JSONB],
                ),
                find_existing: prepare(
                    client,
                    include_str!("../../sql/query_find_existing_events.sql"),
                    &[UUID, JSONB],
                ),
            }))
        })
    })
}

fn spi_failed(e: pgrx::spi::SpiError) -> ! {
    pgrx::error!("forgeerp: the append path failed inside SPI: {e}")
}

/// Takes the stream's append lock until the transaction ends.
///
/// A heavyweight lock of the advisory kind, keyed by a hash of (tenant,
/// aggregate) in a key space of its own (`objsubid` 3 in `pg_locks`, where
/// `pg_advisory_lock` uses 1 and 2). It writes nothing, unlike a row lock, and
/// takes part in deadlock detection and `lock_timeout`. Two streams whose
/// keys collide only queue behind each other.
fn lock_stream(tenant_id: &Uuid, aggregate_id: &Uuid) {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
    for byte in tenant_id.as_bytes().iter().chain(aggregate_id.as_bytes()) {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
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

fn append_to_stream(
    client: &mut SpiClient<'_>,
    req: &AppendRequest<'_>,
) -> Result<Vec<AppendedRow>, ContractError> {
    lock_stream(&req.tenant_id, &req.aggregate_id);
    // Under READ COMMITTED every statement from here on takes a snapshot that
    // sees all appends that held the lock before.

    // ES004 (a retry, or a reused id) goes before ES005 and ES001.
    if let Some(stored) = resolve_existing(client, req)? {
        return Ok(stored);
    }

    let plans = plans(client);
    let transaction_id = unsafe { pg_sys::GetTopFullTransactionId() }.value as i64;
    let (lowest, highest) = req.expected.allowed_versions();
    let args = [
        transaction_id.into(),
        req.tenant_id.into(),
        req.target.aggregate_type.into(),
        req.aggregate_id.into(),
        (lowest as i64).into(),
        (highest as i64).into(),
        req.events.as_arg(),
    ];
    // A unique violation here means another transaction stored a row this
    // one could not see: under READ COMMITTED, the same event id in another
    // stream at the same moment; under REPEATABLE READ or SERIALIZABLE, any
    // append after this transaction's snapshot.
    let rows = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        Ok(client
            .update(&plans.append_batch, None, &args)
            .unwrap_or_else(|e| spi_failed(e))
            .map(|row| appended_row(&row))
            .collect::<Vec<_>>())
    }))
    .catch_when(PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION, |_| {
        if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
            Err(req.target.serialization_failure())
        } else {
            Err(req.target.stored_concurrently())
        }
    })
    .execute()?;

    if rows.is_empty() {
        // A check failed inside the statement: name it.
        let head = client
            .update(
                &plans.stream_head,
                Some(1),
                &[req.tenant_id.into(), req.aggregate_id.into()],
            )
            .unwrap_or_else(|e| spi_failed(e));
        let (version, stored_type) = match head.is_empty() {
            true => (0, None),
            false => {
                let (version, stored_type) = head
                    .first()
                    .get_two::<i64, String>()
                    .unwrap_or_else(|e| spi_failed(e));
                (version.unwrap_or(0), stored_type)
            }
        };
        req.target.check_aggregate_type(stored_type.as_deref())?;
        req.target.check_version(req.expected, version as u64)?;
        return Err(ContractError::new(
            SqlState::Internal,
            "forgeerp.append stored nothing, yet the stream's head passes its checks",
        ));
    }
    notify::appended(req.tenant_id.as_bytes(), &req.tenant_text);
    Ok(rows)
}

fn appended_row(row: &pgrx::spi::SpiHeapTupleData<'_>) -> AppendedRow {
    let column = |n| row.get::<i64>(n).ok().flatten().expect("NOT NULL column");
    (
        row.get::<Uuid>(1)
            .ok()
            .flatten()
            .expect("event_id is NOT NULL"),
        column(2),
        column(3),
        column(4),
        row.get::<TimestampWithTimeZone>(5)
            .ok()
            .flatten()
            .expect("recorded_at is NOT NULL"),
    )
}

/// Looks up the stored events whose ids the batch reuses.
///
/// None: there are none. Some(rows): the batch is a retry of an append that
/// stands whole, and these are its stored rows. Any other overlap is ES004
/// (the rule is the contract's [`AppendTarget::judge_reuse`]).
fn resolve_existing(
    client: &mut SpiClient<'_>,
    req: &AppendRequest<'_>,
) -> Result<Option<Vec<AppendedRow>>, ContractError> {
    if req.batch.with_event_id == 0 {
        return Ok(None);
    }
    struct Existing {
        ord: i64,
        aggregate_id: Uuid,
        aggregate_type: String,
        same_content: bool,
        row: AppendedRow,
    }
    let plans = plans(client);
    let existing: Vec<Existing> = client
        .update(
            &plans.find_existing,
            None,
            &[req.tenant_id.into(), req.events.as_arg()],
        )
        .unwrap_or_else(|e| spi_failed(e))
        .map(|row| Existing {
            row: appended_row(&row),
            ord: row.get::<i64>(6).ok().flatten().expect("ordinality"),
            aggregate_id: row.get::<Uuid>(7).ok().flatten().expect("aggregate_id"),
            aggregate_type: row.get::<String>(8).ok().flatten().expect("aggregate_type"),
            same_content: row.get::<bool>(9).ok().flatten().unwrap_or(false),
        })
        .collect();
    let matches: Vec<StoredMatch<'_>> = existing
        .iter()
        .map(|e| StoredMatch {
            index: (e.ord - 1) as usize,
            event_id: *e.row.0.as_bytes(),
            aggregate_id: *e.aggregate_id.as_bytes(),
            aggregate_type: &e.aggregate_type,
            sequence_number: e.row.1 as u64,
            same_content: e.same_content,
        })
        .collect();
    match req.target.judge_reuse(&matches)? {
        Reuse::None => Ok(None),
        Reuse::Retry => Ok(Some(existing.into_iter().map(|e| e.row).collect())),
    }
}

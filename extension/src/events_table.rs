//! `forgeerp.events` read and written directly: no SQL at call time.
//!
//! The append path finds the table, its indexes and its sequence once per
//! backend by their catalog entries (the extension's schema, then objects
//! by oid and by column: no name lookup that a `search_path` could reach),
//! and then, per call:
//!
//! - reads a stream's head with a backward scan of the index on
//!   `(tenant_id, aggregate_id, sequence_number)`;
//! - looks event ids up in the index on `(tenant_id, event_id)`;
//! - inserts rows with the executor's single-row insert,
//!   `ExecSimpleRelationInsert` (the routine logical replication's apply
//!   worker uses): every index entry is made and checked for uniqueness,
//!   every CHECK constraint and NOT NULL evaluated, every trigger fired.

use forgeerp_contract::ValidEvent;
use pgrx::pg_sys;
use pgrx::{direct_function_call_as_datum, IntoDatum};
use std::cell::Cell;
use std::ffi::{c_void, CStr, CString};

/// The columns of `forgeerp.events`, as attribute numbers.
#[derive(Clone, Copy, Debug, Default)]
struct Columns {
    global_position: i16,
    transaction_id: i16,
    tenant_id: i16,
    aggregate_type: i16,
    aggregate_id: i16,
    sequence_number: i16,
    event_id: i16,
    event_type: i16,
    event_version: i16,
    payload: i16,
    metadata: i16,
    occurred_at: i16,
    recorded_at: i16,
}

/// What the path needs of the catalog, found once per backend.
#[derive(Clone, Copy, Debug)]
struct Catalog {
    events: pg_sys::Oid,
    /// `(tenant_id, aggregate_id, sequence_number)`.
    stream_index: pg_sys::Oid,
    /// `(tenant_id, event_id)`.
    event_id_index: pg_sys::Oid,
    /// The sequence of `global_position`.
    global_position_seq: pg_sys::Oid,
    columns: Columns,
    natts: usize,
}

thread_local! {
    static CATALOG: Cell<Option<Catalog>> = const { Cell::new(None) };
    /// `'{}'::jsonb`, in TopMemoryContext: absent metadata.
    static EMPTY_OBJECT: Cell<Option<pg_sys::Datum>> = const { Cell::new(None) };
}

/// The catalog entries and `forgeerp.events` opened with `lockmode`, the
/// entries checked to be still the ones this backend found (an extension
/// dropped and created again gets new oids) on the same open.
unsafe fn open_events(lockmode: pg_sys::LOCKMODE) -> (Catalog, pg_sys::Relation) {
    if let Some(found) = CATALOG.get() {
        let rel = pg_sys::try_table_open(found.events, lockmode);
        if !rel.is_null() {
            let same = CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr()) == c"events"
                && [found.stream_index, found.event_id_index]
                    .iter()
                    .all(|oid| pg_sys::get_rel_namespace(*oid) != pg_sys::InvalidOid);
            if same {
                return (found, rel);
            }
            pg_sys::table_close(rel, lockmode);
        }
    }
    let found = find_catalog();
    CATALOG.set(Some(found));
    (found, pg_sys::table_open(found.events, lockmode))
}

unsafe fn find_catalog() -> Catalog {
    let schema = pg_sys::get_namespace_oid(c"forgeerp".as_ptr(), false);
    let events = pg_sys::get_relname_relid(c"events".as_ptr(), schema);
    if events == pg_sys::InvalidOid {
        pgrx::error!("forgeerp: table forgeerp.events does not exist");
    }
    let rel = pg_sys::table_open(events, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    let desc = (*rel).rd_att;
    let natts = (*desc).natts as usize;
    let mut columns = Columns::default();
    for (i, attribute) in (*desc).attrs.as_slice(natts).iter().enumerate() {
        if attribute.attisdropped {
            continue;
        }
        let number = i as i16 + 1;
        let name = CStr::from_ptr(attribute.attname.data.as_ptr()).to_bytes();
        let slot = match name {
            b"global_position" => &mut columns.global_position,
            b"transaction_id" => &mut columns.transaction_id,
            b"tenant_id" => &mut columns.tenant_id,
            b"aggregate_type" => &mut columns.aggregate_type,
            b"aggregate_id" => &mut columns.aggregate_id,
            b"sequence_number" => &mut columns.sequence_number,
            b"event_id" => &mut columns.event_id,
            b"event_type" => &mut columns.event_type,
            b"event_version" => &mut columns.event_version,
            b"payload" => &mut columns.payload,
            b"metadata" => &mut columns.metadata,
            b"occurred_at" => &mut columns.occurred_at,
            b"recorded_at" => &mut columns.recorded_at,
            _ => continue,
        };
        *slot = number;
    }
    let wanted_stream = [
        columns.tenant_id,
        columns.aggregate_id,
        columns.sequence_number,
    ];
    let wanted_event_id = [columns.tenant_id, columns.event_id];
    let (mut stream_index, mut event_id_index) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
    let indexes = pg_sys::RelationGetIndexList(rel);
    for oid in oids(indexes) {
        let index = pg_sys::index_open(oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let form = (*index).rd_index;
        let keys = (*form).indkey.values.as_slice((*form).indnatts as usize);
        if (*form).indisunique && (*form).indisvalid {
            if keys == wanted_stream {
                stream_index = oid;
            } else if keys == wanted_event_id {
                event_id_index = oid;
            }
        }
        pg_sys::index_close(index, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    }
    let sequences = oids(pg_sys::getOwnedSequences(events));
    pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    let global_position_seq = sequences.first().copied().unwrap_or(pg_sys::InvalidOid);
    if stream_index == pg_sys::InvalidOid
        || event_id_index == pg_sys::InvalidOid
        || global_position_seq == pg_sys::InvalidOid
        || columns.global_position == 0
        || columns.recorded_at == 0
    {
        pgrx::error!(
            "forgeerp: forgeerp.events lacks a column, index or sequence the append path needs"
        );
    }
    Catalog {
        events,
        stream_index,
        event_id_index,
        global_position_seq,
        columns,
        natts,
    }
}

unsafe fn oids(list: *mut pg_sys::List) -> Vec<pg_sys::Oid> {
    if list.is_null() {
        return Vec::new();
    }
    (0..(*list).length as usize)
        .map(|i| (*(*list).elements.add(i)).oid_value)
        .collect()
}

/// A stream's head: its version (0 for a new stream) and aggregate type.
pub struct Head {
    pub version: i64,
    pub aggregate_type: Option<String>,
}

/// A stored event found by its id.
pub struct Stored {
    pub event_id: [u8; 16],
    pub sequence_number: i64,
    pub global_position: i64,
    pub transaction_id: i64,
    pub recorded_at: pg_sys::TimestampTz,
    pub aggregate_id: [u8; 16],
    pub aggregate_type: String,
    pub event_type: String,
    pub payload: pg_sys::Datum,
}

/// The table open for one append, with the snapshot its reads use.
pub struct EventsTable {
    catalog: Catalog,
    rel: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
}

impl EventsTable {
    /// Opens the table for writing. Call with the stream lock held: the
    /// snapshot taken here sees every append that held it before, and this
    /// transaction's own earlier appends.
    pub fn open() -> Self {
        unsafe {
            pg_sys::CommandCounterIncrement();
            let (catalog, rel) = open_events(pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
            let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot());
            EventsTable {
                catalog,
                rel,
                snapshot,
            }
        }
    }

    /// The head of stream `(tenant, aggregate)`: one backward index step.
    pub fn head(&self, tenant: &[u8; 16], aggregate: &[u8; 16]) -> Head {
        let c = self.catalog.columns;
        let mut head = Head {
            version: 0,
            aggregate_type: None,
        };
        self.scan(
            self.catalog.stream_index,
            [tenant, aggregate],
            pg_sys::ScanDirection::BackwardScanDirection,
            |slot| unsafe {
                head.version = get_i64(slot, c.sequence_number);
                head.aggregate_type = Some(get_text(slot, c.aggregate_type));
            },
        );
        head
    }

    /// The stored event of `tenant` with id `event_id`, if any.
    pub fn by_event_id(&self, tenant: &[u8; 16], event_id: &[u8; 16]) -> Option<Stored> {
        let c = self.catalog.columns;
        let mut found = None;
        self.scan(
            self.catalog.event_id_index,
            [tenant, event_id],
            pg_sys::ScanDirection::ForwardScanDirection,
            |slot| unsafe {
                found = Some(Stored {
                    event_id: *event_id,
                    sequence_number: get_i64(slot, c.sequence_number),
                    global_position: get_i64(slot, c.global_position),
                    transaction_id: get_i64(slot, c.transaction_id),
                    recorded_at: get_datum(slot, c.recorded_at).value() as pg_sys::TimestampTz,
                    aggregate_id: get_uuid(slot, c.aggregate_id),
                    aggregate_type: get_text(slot, c.aggregate_type),
                    event_type: get_text(slot, c.event_type),
                    // Copied out of the slot, which the scan reuses.
                    payload: pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(
                        get_datum(slot, c.payload).cast_mut_ptr(),
                    )),
                });
            },
        );
        found
    }

    /// The first tuple of an equality scan on the first two columns of
    /// `index`, in `direction`, handed to `found`.
    fn scan(
        &self,
        index: pg_sys::Oid,
        keys: [&[u8; 16]; 2],
        direction: pg_sys::ScanDirection::Type,
        found: impl FnOnce(*mut pg_sys::TupleTableSlot),
    ) {
        unsafe {
            let index = pg_sys::index_open(index, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            let mut scankeys: [pg_sys::ScanKeyData; 2] = std::mem::zeroed();
            let datums: Vec<pg_sys::Datum> = keys.iter().map(|k| uuid_datum(k)).collect();
            for (i, datum) in datums.iter().enumerate() {
                pg_sys::ScanKeyInit(
                    &mut scankeys[i],
                    (i + 1) as pg_sys::AttrNumber,
                    pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
                    pg_sys::F_UUID_EQ.into(),
                    *datum,
                );
            }
            let scan = pg_sys::index_beginscan(self.rel, index, self.snapshot, 2, 0);
            pg_sys::index_rescan(scan, scankeys.as_mut_ptr(), 2, std::ptr::null_mut(), 0);
            let slot = pg_sys::table_slot_create(self.rel, std::ptr::null_mut());
            if pg_sys::index_getnext_slot(scan, direction, slot) {
                found(slot);
            }
            pg_sys::ExecDropSingleTupleTableSlot(slot);
            pg_sys::index_endscan(scan);
            pg_sys::index_close(index, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        }
    }

    /// Inserts the batch after a stream at `version`; returns, per event,
    /// (event id, sequence number, global position). The rows of the batch
    /// are the `events` array's elements, their scalar fields `fields`.
    pub fn insert(&self, row: &RowValues<'_>, fields: &[ValidEvent]) -> Vec<([u8; 16], i64, i64)> {
        let c = self.catalog.columns;
        let mut stored = Vec::with_capacity(fields.len());
        unsafe {
            let estate = pg_sys::CreateExecutorState();
            let rte = pg_sys::palloc0(std::mem::size_of::<pg_sys::RangeTblEntry>())
                as *mut pg_sys::RangeTblEntry;
            (*rte).type_ = pg_sys::NodeTag::T_RangeTblEntry;
            (*rte).rtekind = pg_sys::RTEKind::RTE_RELATION;
            (*rte).relid = self.catalog.events;
            (*rte).relkind = pg_sys::RELKIND_RELATION as std::ffi::c_char;
            (*rte).rellockmode = pg_sys::RowExclusiveLock as i32;
            pg_sys::ExecInitRangeTable(estate, pg_sys::lappend(std::ptr::null_mut(), rte.cast()));
            let info = pg_sys::palloc0(std::mem::size_of::<pg_sys::ResultRelInfo>())
                as *mut pg_sys::ResultRelInfo;
            pg_sys::InitResultRelInfo(info, self.rel, 1, std::ptr::null_mut(), 0);
            (*estate).es_output_cid = pg_sys::GetCurrentCommandId(true);
            pg_sys::ExecOpenIndices(info, false);
            pg_sys::AfterTriggerBeginQuery();
            let slot =
                pg_sys::ExecInitExtraTupleSlot(estate, (*self.rel).rd_att, &pg_sys::TTSOpsVirtual);
            let per_row = pg_sys::MakePerTupleExprContext(estate);
            for (i, event) in fields.iter().enumerate() {
                pg_sys::ExecClearTuple(slot);
                let values = std::slice::from_raw_parts_mut((*slot).tts_values, self.catalog.natts);
                let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, self.catalog.natts);
                nulls.fill(true);
                let old = pg_sys::MemoryContextSwitchTo((*per_row).ecxt_per_tuple_memory);
                let event_id = event.event_id.unwrap_or_else(random_uuid);
                let sequence_number = row.version + 1 + i as i64;
                let global_position = direct_function_call_as_datum(
                    pg_sys::nextval_oid,
                    &[self.catalog.global_position_seq.into_datum()],
                )
                .expect("nextval returns a value")
                .value() as i64;
                let element = row.element(i as i32);
                let mut set = |column: i16, datum: pg_sys::Datum| {
                    values[column as usize - 1] = datum;
                    nulls[column as usize - 1] = false;
                };
                set(c.global_position, global_position.into());
                set(c.transaction_id, row.transaction_id.into());
                set(c.tenant_id, uuid_datum(row.tenant));
                set(c.aggregate_type, row.aggregate_type);
                set(c.aggregate_id, uuid_datum(row.aggregate));
                set(c.sequence_number, sequence_number.into());
                set(c.event_id, uuid_datum(&event_id));
                set(c.event_type, text_datum(&event.event_type));
                set(c.event_version, event.event_version.into());
                set(
                    c.payload,
                    object_field(element, row.payload_key).expect("a validated payload"),
                );
                set(
                    c.metadata,
                    match event.has_metadata {
                        true => {
                            object_field(element, row.metadata_key).expect("validated metadata")
                        }
                        false => empty_object(),
                    },
                );
                set(
                    c.occurred_at,
                    match &event.occurred_at {
                        Some(at) => timestamptz(at),
                        None => row.now.into(),
                    },
                );
                set(c.recorded_at, row.now.into());
                pg_sys::ExecStoreVirtualTuple(slot);
                pg_sys::ExecSimpleRelationInsert(info, estate, slot);
                pg_sys::MemoryContextSwitchTo(old);
                pg_sys::MemoryContextReset((*per_row).ecxt_per_tuple_memory);
                stored.push((event_id, sequence_number, global_position));
            }
            pg_sys::AfterTriggerEndQuery(estate);
            pg_sys::ExecCloseIndices(info);
            pg_sys::ExecResetTupleTable((*estate).es_tupleTable, false);
            pg_sys::FreeExecutorState(estate);
        }
        stored
    }
}

impl EventsTable {
    /// Lets go of the snapshot and the relation (its lock stays until the
    /// transaction ends). Only on success: every failure raises an ERROR,
    /// and the (sub)transaction's abort releases both, with no call into
    /// PostgreSQL while an error is on its way out.
    pub fn close(self) {
        unsafe {
            pg_sys::UnregisterSnapshot(self.snapshot);
            pg_sys::table_close(self.rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        }
    }
}

/// What every row of one append shares, and the batch it comes from.
pub struct RowValues<'a> {
    pub tenant: &'a [u8; 16],
    pub aggregate: &'a [u8; 16],
    /// `aggregate_type` as a `text` datum.
    pub aggregate_type: pg_sys::Datum,
    pub transaction_id: i64,
    /// The stream's version before the batch.
    pub version: i64,
    /// The append's time: `recorded_at`, and `occurred_at` when absent.
    pub now: pg_sys::TimestampTz,
    /// The `events` argument, a `jsonb` array.
    pub events: pg_sys::Datum,
    payload_key: pg_sys::Datum,
    metadata_key: pg_sys::Datum,
}

impl<'a> RowValues<'a> {
    /// The shared values of an append of `events` (a jsonb datum).
    pub fn new(
        tenant: &'a [u8; 16],
        aggregate: &'a [u8; 16],
        aggregate_type: &str,
        transaction_id: i64,
        version: i64,
        events: pg_sys::Datum,
    ) -> Self {
        RowValues {
            tenant,
            aggregate,
            aggregate_type: text_datum(aggregate_type),
            transaction_id,
            version,
            now: unsafe { pg_sys::GetCurrentTransactionStartTimestamp() },
            events,
            payload_key: text_datum("payload"),
            metadata_key: text_datum("metadata"),
        }
    }

    /// Element `i` of the batch (a validated object).
    fn element(&self, i: i32) -> pg_sys::Datum {
        unsafe {
            direct_function_call_as_datum(
                pg_sys::jsonb_array_element,
                &[Some(self.events), i.into_datum()],
            )
        }
        .expect("a validated batch has this element")
    }
}

/// `object -> key`, None when the key is absent.
fn object_field(object: pg_sys::Datum, key: pg_sys::Datum) -> Option<pg_sys::Datum> {
    unsafe { direct_function_call_as_datum(pg_sys::jsonb_object_field, &[Some(object), Some(key)]) }
}

fn empty_object() -> pg_sys::Datum {
    if let Some(datum) = EMPTY_OBJECT.get() {
        return datum;
    }
    let datum = unsafe {
        pgrx::PgMemoryContexts::TopMemoryContext.switch_to(|_| {
            direct_function_call_as_datum(
                pg_sys::jsonb_in,
                &[Some(pg_sys::Datum::from(c"{}".as_ptr()))],
            )
            .expect("'{}' is jsonb")
        })
    };
    EMPTY_OBJECT.set(Some(datum));
    datum
}

/// `text` of a validated RFC 3339 timestamp, as `timestamptz` input reads it.
fn timestamptz(text: &str) -> pg_sys::Datum {
    let text = CString::new(text).expect("a validated timestamp has no NUL");
    unsafe {
        direct_function_call_as_datum(
            pg_sys::timestamptz_in,
            &[
                Some(pg_sys::Datum::from(text.as_ptr())),
                pg_sys::InvalidOid.into_datum(),
                (-1i32).into_datum(),
            ],
        )
    }
    .expect("a validated timestamp converts")
}

fn text_datum(s: &str) -> pg_sys::Datum {
    unsafe {
        pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
            s.as_ptr().cast(),
            s.len() as i32,
        ))
    }
}

/// A uuid datum (pass by reference): 16 bytes in palloc'd memory.
fn uuid_datum(bytes: &[u8; 16]) -> pg_sys::Datum {
    unsafe {
        let copy = pg_sys::palloc(16) as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), copy, 16);
        pg_sys::Datum::from(copy as *mut c_void)
    }
}

/// A version 4 uuid from PostgreSQL's strong random source, like
/// `gen_random_uuid()`.
fn random_uuid() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    if !unsafe { pg_sys::pg_strong_random(bytes.as_mut_ptr().cast(), 16) } {
        pgrx::error!("forgeerp: could not generate a random uuid");
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
}

unsafe fn get_datum(slot: *mut pg_sys::TupleTableSlot, column: i16) -> pg_sys::Datum {
    let mut isnull = false;
    let datum = pg_sys::slot_getattr(slot, column as i32, &mut isnull);
    assert!(!isnull, "forgeerp.events has no NULLs");
    datum
}

unsafe fn get_i64(slot: *mut pg_sys::TupleTableSlot, column: i16) -> i64 {
    get_datum(slot, column).value() as i64
}

unsafe fn get_uuid(slot: *mut pg_sys::TupleTableSlot, column: i16) -> [u8; 16] {
    let ptr = get_datum(slot, column).cast_mut_ptr::<u8>();
    let mut bytes = [0u8; 16];
    std::ptr::copy_nonoverlapping(ptr, bytes.as_mut_ptr(), 16);
    bytes
}

unsafe fn get_text(slot: *mut pg_sys::TupleTableSlot, column: i16) -> String {
    let datum = get_datum(slot, column);
    let text = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr()) as *const pg_sys::varlena;
    pgrx::varlena::text_to_rust_str_unchecked(text).to_owned()
}

/// Whether `stored` (a payload read back) equals the payload of event
/// `index` of the `events` array: jsonb equality, as `=` decides it.
pub fn same_payload(stored: pg_sys::Datum, events: pg_sys::Datum, index: usize) -> bool {
    unsafe {
        let element = direct_function_call_as_datum(
            pg_sys::jsonb_array_element,
            &[Some(events), (index as i32).into_datum()],
        );
        let Some(payload) = element.and_then(|e| object_field(e, text_datum("payload"))) else {
            return false;
        };
        direct_function_call_as_datum(pg_sys::jsonb_eq, &[Some(stored), Some(payload)])
            .is_some_and(|equal| equal.value() != 0)
    }
}

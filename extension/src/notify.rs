//! Wake-ups on channel `forgeerp_events` for committed appends.
//!
//! A `NOTIFY` in the appending transaction costs that transaction a
//! cluster-wide lock held through its commit, which serializes every notifying
//! commit (measured in `bench/README.md`). So when the library is preloaded
//! (`shared_preload_libraries = 'forgeerp'`), an append only notes its tenant;
//! after the commit is durable, a transaction callback hands the tenants to a
//! per-database background worker (the *notifier*) through shared memory and
//! sets its latch; the notifier sends one `NOTIFY` per pending tenant in its own
//! transaction. A rolled-back append never reaches the callback, so it wakes
//! nobody; neither does one whose savepoint rolled back (each noted tenant
//! keeps the xid of the subtransaction that appended, and the pre-commit
//! callback drops those that aborted).
//!
//! The pre-commit callback also checks that a notifier is running: while one
//! is still starting, or when none can start (every background worker slot
//! taken), the transaction notifies in itself instead, so a wake-up is never
//! promised to a slot nobody serves. A slot whose notifier is gone and that
//! nothing uses (a dropped database's) is reused when no slot is free.
//!
//! Without preloading (no shared memory), or with `forgeerp.notify_in_transaction`
//! on, or when no worker can be started, the append notifies in its own
//! transaction instead: Postgres delivers that at commit only, too.

use forgeerp_contract::uuid_text::uuid_text;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;
use pgrx::{
    direct_function_call, pg_shmem_init, register_xact_callback, GucContext, GucFlags, GucRegistry,
    GucSetting, IntoDatum, PGRXSharedMemory, PgLwLock, PgXactCallbackEvent,
};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The channel listeners wait on.
pub use forgeerp_contract::names::CHANNEL;

/// Databases that can have a notifier at once.
const SLOTS: usize = 32;
/// Distinct tenants a notifier keeps pending; past that it sends one
/// `{"tenant_id": null}` wake-up meaning "any tenant".
const PENDING: usize = 512;
/// A notifier with nothing to do for this long exits; the next append
/// starts a new one. A plain DROP DATABASE waits up to 5 s for the
/// database's other sessions to end: the notifier, which checks once a
/// second, is gone within 4 s of its last work, so the drop goes through
/// once appends have stopped.
const IDLE_EXIT: Duration = Duration::from_secs(3);
/// The shortest time between two NOTIFY transactions of one notifier; bounds
/// its load and adds at most this much to a wake-up's latency.
const BATCH_INTERVAL: Duration = Duration::from_millis(10);
/// A notifier requested this long ago that never reported in is requested again.
const STARTUP_GRACE: Duration = Duration::from_secs(10);

static PRELOADED: AtomicBool = AtomicBool::new(false);
static NOTIFY_IN_TRANSACTION: GucSetting<bool> = GucSetting::<bool>::new(false);
static NOTIFIERS: PgLwLock<Notifiers> = unsafe { PgLwLock::new(c"forgeerp_notifiers") };

#[derive(Clone, Copy)]
#[repr(C)]
struct Slot {
    /// Database oid; 0 = free slot.
    database: u32,
    /// The notifier's latch (a `*mut Latch` into shared memory); 0 until it runs.
    latch: usize,
    /// When the notifier was requested (µs since the epoch; 0 once running).
    requested_at: i64,
    /// Appending transactions of this database that have not ended yet.
    in_flight: u32,
    overflow: bool,
    pending_len: u16,
    pending: [[u8; 16]; PENDING],
}

const FREE: Slot = Slot {
    database: 0,
    latch: 0,
    requested_at: 0,
    in_flight: 0,
    overflow: false,
    pending_len: 0,
    pending: [[0; 16]; PENDING],
};

#[derive(Clone, Copy)]
#[repr(C)]
struct Notifiers {
    slots: [Slot; SLOTS],
}

impl Default for Notifiers {
    fn default() -> Self {
        Notifiers {
            slots: [FREE; SLOTS],
        }
    }
}

// SAFETY: plain data, no pointers into process-local memory (the latch lives
// in shared memory, at the same address in every process).
unsafe impl PGRXSharedMemory for Notifiers {}

impl Notifiers {
    fn slot_of(&mut self, database: u32) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.database == database)
    }

    /// A free slot, or else one whose notifier is gone and that nothing
    /// uses (a dropped database's, say): its pending wake-ups are hints only.
    fn reusable_slot(&mut self, now: i64) -> Option<&mut Slot> {
        let dead = |s: &Slot| {
            s.latch == 0
                && s.in_flight == 0
                && now - s.requested_at > STARTUP_GRACE.as_micros() as i64
        };
        let index = self
            .slots
            .iter()
            .position(|s| s.database == 0)
            .or_else(|| self.slots.iter().position(dead))?;
        Some(&mut self.slots[index])
    }
}

/// Registers the GUC, and the shared memory when preloaded; from `_PG_init`.
pub fn init() {
    GucRegistry::define_bool_guc(
        c"forgeerp.notify_in_transaction",
        c"NOTIFY forgeerp_events inside each appending transaction instead of through the notifier worker.",
        c"Simpler, but serializes appending commits cluster-wide. Always on when forgeerp is not in shared_preload_libraries.",
        &NOTIFY_IN_TRANSACTION,
        GucContext::Suset,
        GucFlags::default(),
    );
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        pg_shmem_init!(NOTIFIERS);
        PRELOADED.store(true, Ordering::Relaxed);
    }
}

thread_local! {
    /// Tenants appended to by the current transaction, each with the xid of
    /// the (sub)transaction that appended: what a rolled-back savepoint
    /// appended is dropped before the hand-over.
    static TENANTS: RefCell<Vec<([u8; 16], pg_sys::TransactionId)>> = const { RefCell::new(Vec::new()) };
    /// Whether the current transaction has registered its callbacks.
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Arranges the wake-up for an append that becomes visible at commit.
pub fn appended(tenant_id: &[u8; 16], tenant_text: &str) {
    if !PRELOADED.load(Ordering::Relaxed)
        || NOTIFY_IN_TRANSACTION.get()
        || !note_for_notifier(tenant_id)
    {
        // In the current (sub)transaction: PostgreSQL itself drops it if a
        // savepoint rolls back, and delivers it at commit only.
        notify_now(&format!(r#"{{"tenant_id":"{tenant_text}"}}"#));
    }
}

/// `pg_notify(CHANNEL, payload)` in the current transaction.
fn notify_now(payload: &str) {
    unsafe {
        direct_function_call::<()>(
            pg_sys::pg_notify,
            &[CHANNEL.into_datum(), payload.into_datum()],
        );
    }
}

/// Notes the tenant for the notifier; false when no notifier can be had.
fn note_for_notifier(tenant_id: &[u8; 16]) -> bool {
    let database = unsafe { pg_sys::MyDatabaseId }.to_u32();
    if !REGISTERED.get() {
        if !ensure_notifier(database) {
            return false;
        }
        REGISTERED.set(true);
        register_xact_callback(PgXactCallbackEvent::PreCommit, move || {
            before_commit(database)
        });
        register_xact_callback(PgXactCallbackEvent::Commit, move || hand_over(database));
        // A prepared transaction commits later, maybe elsewhere: no wake-up
        // then; listeners' periodic reads of the feed pick its events up.
        for event in [PgXactCallbackEvent::Abort, PgXactCallbackEvent::Prepare] {
            register_xact_callback(event, move || forget(database));
        }
    }
    // The append has written, so its (sub)transaction has an xid.
    let xid = unsafe { pg_sys::GetCurrentTransactionId() };
    TENANTS.with(|t| {
        let mut tenants = t.borrow_mut();
        if !tenants.contains(&(*tenant_id, xid)) {
            tenants.push((*tenant_id, xid));
        }
    });
    true
}

/// Makes sure this database has a notifier (requesting one if needed) and
/// counts this transaction in flight, so the notifier does not exit under it.
fn ensure_notifier(database: u32) -> bool {
    let now = now_micros();
    let request = {
        let mut notifiers = NOTIFIERS.exclusive();
        match notifiers.slot_of(database) {
            Some(slot) => {
                slot.in_flight += 1;
                let stuck =
                    slot.latch == 0 && now - slot.requested_at > STARTUP_GRACE.as_micros() as i64;
                if stuck {
                    slot.requested_at = now;
                }
                stuck
            }
            None => match notifiers.reusable_slot(now) {
                Some(free) => {
                    *free = Slot {
                        database,
                        requested_at: now,
                        in_flight: 1,
                        ..FREE
                    };
                    true
                }
                None => return false, // more databases than slots: notify in the transaction
            },
        }
    };
    if request && start_notifier(database).is_err() {
        let mut notifiers = NOTIFIERS.exclusive();
        if let Some(slot) = notifiers.slot_of(database) {
            slot.in_flight = slot.in_flight.saturating_sub(1);
            // Ask again on the next append rather than after the grace.
            slot.requested_at = i64::MIN / 2;
            if slot.latch == 0 && slot.in_flight == 0 {
                *slot = FREE;
            }
        }
        return false;
    }
    true
}

fn start_notifier(database: u32) -> Result<(), pgrx::bgworkers::DynamicBackgroundWorkerLoadError> {
    BackgroundWorkerBuilder::new(&format!("forgeerp notifier for database {database}"))
        .set_type("forgeerp notifier")
        .set_library("forgeerp")
        .set_function("forgeerp_notifier_main")
        .set_argument(Some(pg_sys::Datum::from(database)))
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .load_dynamic()
        .map(|_| ())
}

/// Abort (or prepare) callback: nothing to hand over. Must not fail.
fn forget(database: u32) {
    REGISTERED.set(false);
    TENANTS.with(|t| t.borrow_mut().clear());
    if let Some(slot) = NOTIFIERS.exclusive().slot_of(database) {
        slot.in_flight = slot.in_flight.saturating_sub(1);
    }
}

/// Pre-commit callback, still inside the transaction: drops what rolled-back
/// savepoints appended, and notifies in the transaction itself when no
/// notifier is running yet (one requested but still starting, or none to be
/// had): a notifier's wake-up is never promised to a slot nobody serves.
fn before_commit(database: u32) {
    TENANTS.with(|t| {
        t.borrow_mut()
            .retain(|(_, xid)| !unsafe { pg_sys::TransactionIdDidAbort(*xid) })
    });
    let served = NOTIFIERS
        .share()
        .slots
        .iter()
        .any(|s| s.database == database && s.latch != 0);
    if !served {
        let tenants = TENANTS.with(|t| std::mem::take(&mut *t.borrow_mut()));
        for (tenant, _) in tenants {
            notify_now(&format!(r#"{{"tenant_id":"{}"}}"#, uuid_text(&tenant)));
        }
    }
}

/// Commit callback: the transaction is durable and visible. Must not fail.
fn hand_over(database: u32) {
    REGISTERED.set(false);
    let tenants = TENANTS.with(|t| std::mem::take(&mut *t.borrow_mut()));
    let latch = {
        let mut notifiers = NOTIFIERS.exclusive();
        let Some(slot) = notifiers.slot_of(database) else {
            return;
        };
        slot.in_flight = slot.in_flight.saturating_sub(1);
        // Only the commit that makes the pending set non-empty wakes the
        // notifier: any later one finds it already woken (or still busy
        // with its last round, after which it looks again). A wake-up is a
        // signal to another process, the dearest step of a small append.
        let was_empty = slot.pending_len == 0 && !slot.overflow;
        for (tenant, _) in &tenants {
            let len = slot.pending_len as usize;
            if slot.pending[..len].contains(tenant) {
                continue;
            }
            if len == PENDING {
                slot.overflow = true;
            } else {
                slot.pending[len] = *tenant;
                slot.pending_len += 1;
            }
        }
        let became_pending = was_empty && (slot.pending_len > 0 || slot.overflow);
        if became_pending {
            slot.latch
        } else {
            0
        }
    };
    if latch != 0 {
        unsafe { pg_sys::SetLatch(latch as *mut pg_sys::Latch) };
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The notifier: one per database, started by the first append that needs it.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn forgeerp_notifier_main(arg: pg_sys::Datum) {
    let database = arg.value() as u32;
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(database)), None);
    unsafe {
        pg_sys::before_shmem_exit(Some(release_slot), pg_sys::Datum::from(database));
        // Queuing a notification assigns the notifier's transaction an xid, so
        // it writes a commit record: never wait for its flush. A notification
        // lost in a crash costs nothing (listeners read from checkpoints).
        pg_sys::SetConfigOption(
            c"synchronous_commit".as_ptr(),
            c"off".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
        );
    }
    {
        let mut notifiers = NOTIFIERS.exclusive();
        let latch = unsafe { &raw mut (*pg_sys::MyProc).procLatch } as usize;
        match notifiers.slot_of(database) {
            Some(slot) if slot.latch == 0 => {
                slot.latch = latch;
                slot.requested_at = 0;
            }
            _ => return, // another notifier already serves this database
        }
    }

    let mut idle_since = Instant::now();
    let mut last_sent = Instant::now() - BATCH_INTERVAL;
    while BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
        // Under load, let commits gather for a moment: one NOTIFY transaction
        // per interval at most, whatever the append rate.
        let since = last_sent.elapsed();
        if since < BATCH_INTERVAL {
            std::thread::sleep(BATCH_INTERVAL - since);
        }
        let (tenants, overflow, in_flight) = {
            let mut notifiers = NOTIFIERS.exclusive();
            let Some(slot) = notifiers.slot_of(database) else {
                return;
            };
            let tenants = slot.pending[..slot.pending_len as usize].to_vec();
            let overflow = slot.overflow;
            slot.pending_len = 0;
            slot.overflow = false;
            if tenants.is_empty()
                && !overflow
                && slot.in_flight == 0
                && idle_since.elapsed() >= IDLE_EXIT
            {
                *slot = FREE;
                return;
            }
            (tenants, overflow, slot.in_flight)
        };
        if tenants.is_empty() && !overflow {
            if in_flight > 0 {
                idle_since = Instant::now();
            }
            continue;
        }
        idle_since = Instant::now();
        last_sent = Instant::now();
        BackgroundWorker::transaction(|| {
            for tenant in &tenants {
                notify_now(&format!(r#"{{"tenant_id":"{}"}}"#, uuid_text(tenant)));
            }
            if overflow {
                notify_now(r#"{"tenant_id":null}"#);
            }
        });
    }
}

/// Frees the notifier's slot when it exits for any reason, keeping what is
/// pending for the next notifier.
#[pg_guard]
unsafe extern "C-unwind" fn release_slot(_code: std::ffi::c_int, arg: pg_sys::Datum) {
    let database = arg.value() as u32;
    let own_latch = unsafe { &raw mut (*pg_sys::MyProc).procLatch } as usize;
    let mut notifiers = NOTIFIERS.exclusive();
    if let Some(slot) = notifiers.slot_of(database) {
        if slot.latch == own_latch {
            slot.latch = 0;
            // The next append requests a new notifier at once.
            slot.requested_at = i64::MIN / 2;
        }
    }
}

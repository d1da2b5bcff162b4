//! LISTEN/NOTIFY: a committed append wakes listeners on `forgeerp_events`
//! within a second; a rolled-back one wakes nobody.

use fallible_iterator::FallibleIterator;
use forgeerp_server_tests::*;
use forgeerp_test_fixtures::{fresh_database_blocking, Install};
use postgres::Client;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn listener() -> Client {
    let mut client = connect();
    client.batch_execute("LISTEN forgeerp_events").unwrap();
    client
}

/// Waits up to `limit` for a notification that names `tenant`; returns its payload.
fn wait_for(listener: &mut Client, tenant: Uuid, limit: Duration) -> Option<serde_json::Value> {
    wait_for_sender(listener, tenant, limit).map(|(payload, _)| payload)
}

/// Like [`wait_for`], with the pid of the backend that sent the notification.
fn wait_for_sender(
    listener: &mut Client,
    tenant: Uuid,
    limit: Duration,
) -> Option<(serde_json::Value, i32)> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let mut notifications = listener.notifications();
        let mut iter = notifications.timeout_iter(left);
        match iter.next().unwrap() {
            None => return None,
            Some(n) => {
                assert_eq!(n.channel(), "forgeerp_events");
                let payload: serde_json::Value =
                    serde_json::from_str(n.payload()).expect("payload is JSON");
                assert!(payload.is_object(), "payload is a JSON object: {payload}");
                if payload["tenant_id"] == tenant.to_string() {
                    return Some((payload, n.process_id()));
                }
            }
        }
    }
}

/// The tenants named by the notifications `listener` receives until
/// `limit` has passed, or sooner once every one of `expected` is among them
/// (None: wait the whole time, to see what should not come).
fn woken_tenants(
    listener: &mut Client,
    limit: Duration,
    expected: Option<&[Uuid]>,
) -> std::collections::HashSet<String> {
    let mut woken = std::collections::HashSet::new();
    let deadline = Instant::now() + limit;
    let done = |woken: &std::collections::HashSet<String>| {
        expected.is_some_and(|all| all.iter().all(|t| woken.contains(&t.to_string())))
    };
    while !done(&woken) && Instant::now() < deadline {
        let mut notifications = listener.notifications();
        let mut iter = notifications.timeout_iter(Duration::from_millis(50));
        while let Some(n) = iter.next().unwrap() {
            let payload: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
            if let Some(t) = payload["tenant_id"].as_str() {
                woken.insert(t.to_string());
            }
        }
    }
    woken
}

#[test]
fn a_committed_append_wakes_a_listener_within_a_second() {
    let mut listen = listener();
    let tenant = id();
    let mut db = connect();
    append(&mut db, tenant, "t", id(), None, &ticks(2)).unwrap();
    let payload = wait_for(&mut listen, tenant, Duration::from_secs(1))
        .expect("notified within 1 s of the commit");
    assert_eq!(payload["tenant_id"], tenant.to_string());
}

#[test]
fn nothing_is_sent_before_commit_and_nothing_after_rollback() {
    let mut listen = listener();
    let tenant = id();
    let mut db = connect();
    let mut tx = db.transaction().unwrap();
    append(&mut tx, tenant, "t", id(), None, &ticks(1)).unwrap();
    assert!(
        wait_for(&mut listen, tenant, Duration::from_millis(700)).is_none(),
        "no wake-up before commit"
    );
    tx.rollback().unwrap();
    assert!(
        wait_for(&mut listen, tenant, Duration::from_millis(1500)).is_none(),
        "a rolled-back append notifies nobody"
    );

    let mut tx = db.transaction().unwrap();
    append(&mut tx, tenant, "t", id(), None, &ticks(1)).unwrap();
    tx.commit().unwrap();
    assert!(wait_for(&mut listen, tenant, Duration::from_secs(1)).is_some());
}

#[test]
fn a_notification_leads_to_the_event_through_read_all() {
    let mut listen = listener();
    let tenant = id();
    let mut db = connect();
    let rows = append(&mut db, tenant, "t", id(), None, &ticks(1)).unwrap();
    wait_for(&mut listen, tenant, Duration::from_secs(1)).expect("woken");
    let seen: Vec<Uuid> = listen
        .query(
            "SELECT event_id FROM forgeerp.read_all(0, 0, 100, $1)",
            &[&tenant],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seen, vec![rows[0].get::<_, Uuid>("event_id")]);
}

#[test]
fn notify_in_transaction_mode_keeps_the_same_guarantees() {
    let mut listen = listener();
    let tenant = id();
    let mut db = connect();
    db.batch_execute("SET forgeerp.notify_in_transaction = on")
        .unwrap();
    let mut tx = db.transaction().unwrap();
    append(&mut tx, tenant, "t", id(), None, &ticks(1)).unwrap();
    tx.rollback().unwrap();
    assert!(
        wait_for(&mut listen, tenant, Duration::from_millis(1200)).is_none(),
        "rolled back: no wake-up"
    );
    append(&mut db, tenant, "t", id(), None, &ticks(1)).unwrap();
    let (_, sender) = wait_for_sender(&mut listen, tenant, Duration::from_secs(1)).expect("woken");
    let appender: i32 = db.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    assert_eq!(
        sender, appender,
        "in this mode the appending session sends the notification itself, not the notifier"
    );
}

fn notifier_pids(db: &mut Client) -> Vec<i32> {
    db.query(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'forgeerp notifier' AND datname = current_database()",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn a_killed_notifier_is_replaced_by_the_next_append() {
    let mut db = connect();
    append(&mut db, id(), "t", id(), None, &ticks(1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut pids = notifier_pids(&mut db);
    while pids.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        pids = notifier_pids(&mut db);
    }
    assert_eq!(pids.len(), 1, "one notifier per database: {pids:?}");
    db.execute("SELECT pg_terminate_backend($1)", &[&pids[0]])
        .unwrap();
    while notifier_pids(&mut db).contains(&pids[0]) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut listen = listener();
    let tenant = id();
    append(&mut db, tenant, "t", id(), None, &ticks(1)).unwrap();
    // Woken within the second either way: by the transaction itself while
    // the new notifier starts, or by the new notifier.
    assert!(
        wait_for(&mut listen, tenant, Duration::from_secs(1)).is_some(),
        "woken after the notifier was killed"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut now = notifier_pids(&mut db);
    while now.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        now = notifier_pids(&mut db);
    }
    assert_eq!(now.len(), 1, "the append requested a new notifier: {now:?}");
    assert_ne!(now[0], pids[0]);
}

#[test]
fn a_burst_of_appends_wakes_every_tenant() {
    let mut listen = listener();
    let tenants: Vec<Uuid> = (0..40).map(|_| id()).collect();
    let writers: Vec<_> = tenants
        .chunks(10)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            std::thread::spawn(move || {
                let mut db = connect();
                for round in 0..5 {
                    for tenant in &chunk {
                        append(&mut db, *tenant, "t", id(), None, &ticks(1 + round % 2)).unwrap();
                    }
                }
            })
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    let woken = woken_tenants(&mut listen, Duration::from_secs(2), Some(&tenants));
    let missing: Vec<_> = tenants
        .iter()
        .filter(|t| !woken.contains(&t.to_string()))
        .collect();
    assert!(missing.is_empty(), "tenants never woken: {missing:?}");
}

/// Savepoints: what a rolled-back savepoint appended wakes nobody; what a
/// released one appended wakes its listeners at commit. Run through the
/// notifier and with `notify_in_transaction`.
#[test]
fn a_rolled_back_savepoint_notifies_nobody() {
    for in_transaction in [false, true] {
        let mut listen = listener();
        let mut db = connect();
        db.batch_execute(&format!(
            "SET forgeerp.notify_in_transaction = {in_transaction}"
        ))
        .unwrap();
        // The notifier is running (the path under test), or not needed.
        append(&mut db, id(), "t", id(), None, &ticks(1)).unwrap();
        if !in_transaction {
            let deadline = Instant::now() + Duration::from_secs(5);
            while notifier_pids(&mut db).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert_eq!(
                notifier_pids(&mut db).len(),
                1,
                "a notifier serves the database"
            );
        }
        let (rolled_back, nested, released, kept) = (id(), id(), id(), id());
        db.batch_execute(&format!(
            "BEGIN;
             SAVEPOINT s;
             SELECT count(*) FROM forgeerp.append('{rolled_back}', 't', gen_random_uuid(), NULL, '[{{\"event_type\": \"T\", \"payload\": {{}}}}]');
             ROLLBACK TO SAVEPOINT s;
             SAVEPOINT a; SAVEPOINT b;
             SELECT count(*) FROM forgeerp.append('{nested}', 't', gen_random_uuid(), NULL, '[{{\"event_type\": \"T\", \"payload\": {{}}}}]');
             RELEASE SAVEPOINT b;
             ROLLBACK TO SAVEPOINT a;
             SAVEPOINT r;
             SELECT count(*) FROM forgeerp.append('{released}', 't', gen_random_uuid(), NULL, '[{{\"event_type\": \"T\", \"payload\": {{}}}}]');
             RELEASE SAVEPOINT r;
             SELECT count(*) FROM forgeerp.append('{kept}', 't', gen_random_uuid(), NULL, '[{{\"event_type\": \"T\", \"payload\": {{}}}}]');
             COMMIT;"
        ))
        .unwrap();
        let woken = woken_tenants(&mut listen, Duration::from_millis(1500), None);
        let mode = if in_transaction {
            "in transaction"
        } else {
            "notifier"
        };
        assert!(
            woken.contains(&released.to_string()),
            "{mode}: a released savepoint's append wakes"
        );
        assert!(
            woken.contains(&kept.to_string()),
            "{mode}: the transaction's own append wakes"
        );
        assert!(
            !woken.contains(&rolled_back.to_string()),
            "{mode}: a rolled-back savepoint notifies nobody"
        );
        assert!(
            !woken.contains(&nested.to_string()),
            "{mode}: nor one released into a rolled-back savepoint"
        );
    }
}

/// When no notifier can start (every background worker slot is taken by
/// other databases' notifiers), appends notify in their own transaction:
/// concurrent writers' tenants are all woken within a second, never left
/// waiting for a notifier that is not coming.
#[test]
fn a_database_whose_notifier_cannot_start_still_wakes_within_a_second() {
    let mut admin = Client::connect(
        &format!("{} dbname=postgres", admin_base()),
        postgres::NoTls,
    )
    .unwrap();
    let mut fillers = Vec::new();
    let starved = loop {
        assert!(fillers.len() < 64, "background workers never ran out");
        let name = format!(
            "forgeerp_test_{}_filler_{}",
            std::process::id(),
            fillers.len()
        );
        let url = fresh_database_blocking(&name, Install::Current);
        fillers.push(name.clone());
        let mut db = Client::connect(&url, postgres::NoTls).unwrap();
        append(&mut db, id(), "t", id(), None, &ticks(1)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while notifier_pids(&mut db).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if notifier_pids(&mut db).is_empty() {
            break url;
        }
    };
    let mut listen = Client::connect(&starved, postgres::NoTls).unwrap();
    listen.batch_execute("LISTEN forgeerp_events").unwrap();
    let tenants: Vec<Uuid> = (0..40).map(|_| id()).collect();
    let writers: Vec<_> = tenants
        .chunks(10)
        .map(|chunk| {
            let (chunk, url) = (chunk.to_vec(), starved.clone());
            std::thread::spawn(move || {
                let mut db = Client::connect(&url, postgres::NoTls).unwrap();
                for _ in 0..5 {
                    for tenant in &chunk {
                        append(&mut db, *tenant, "t", id(), None, &ticks(1)).unwrap();
                    }
                }
            })
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    let woken = woken_tenants(&mut listen, Duration::from_secs(1), Some(&tenants));
    drop(listen);
    for name in &fillers {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
    }
    let missing: Vec<_> = tenants
        .iter()
        .filter(|t| !woken.contains(&t.to_string()))
        .collect();
    assert!(
        missing.is_empty(),
        "tenants not woken within a second: {missing:?}"
    );
}

/// More distinct tenants in one round than the notifier keeps pending (512)
/// become one `{"tenant_id": null}`, "any tenant": a listener of any of them
/// is woken, by its own tenant's notification or by the null one.
#[test]
fn more_than_512_pending_tenants_wake_everyone_with_one_null() {
    let mut listen = listener();
    let tenants: Vec<Uuid> = (0..600).map(|_| id()).collect();
    let mut db = connect();
    // The rule is the notifier's: have one running first (an append starts
    // it; the transaction below keeps it from idling out).
    append(&mut db, id(), "t", id(), None, &ticks(1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while notifier_pids(&mut db).is_empty() {
        assert!(Instant::now() < deadline, "no notifier started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut tx = db.transaction().unwrap();
    for tenant in &tenants {
        append(&mut tx, *tenant, "t", id(), None, &ticks(1)).unwrap();
    }
    tx.commit().unwrap();

    let ours: std::collections::HashSet<String> = tenants.iter().map(|t| t.to_string()).collect();
    let (mut named, mut nulls) = (std::collections::HashSet::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while nulls == 0 && Instant::now() < deadline {
        let mut notifications = listen.notifications();
        let mut iter = notifications.timeout_iter(Duration::from_millis(100));
        while let Some(n) = iter.next().unwrap() {
            let payload: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
            match &payload["tenant_id"] {
                serde_json::Value::Null => nulls += 1,
                serde_json::Value::String(t) if ours.contains(t) => {
                    named.insert(t.clone());
                }
                _ => {}
            }
        }
    }
    assert_eq!(nulls, 1, "one wake-up for any tenant");
    assert!(
        named.len() <= 512,
        "at most 512 tenants named, got {}",
        named.len()
    );
    assert!(
        named.len() < tenants.len(),
        "the rest were covered by the null"
    );
}

#[test]
fn a_plain_drop_database_goes_through_while_the_notifier_runs() {
    let name = forgeerp_test_fixtures::database_name("forgeerp_test", "_dropdb");
    fresh_database_blocking(&name, Install::Current);
    let mut db =
        Client::connect(&forgeerp_test_fixtures::conninfo(&name), postgres::NoTls).unwrap();
    append(&mut db, id(), "t", id(), None, &ticks(1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while notifier_pids(&mut db).is_empty() {
        assert!(Instant::now() < deadline, "the append started no notifier");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(db);
    // No FORCE: PostgreSQL waits up to 5 s for the notifier, which exits
    // once it has been idle for 3 s.
    let mut admin = Client::connect(
        &forgeerp_test_fixtures::conninfo("postgres"),
        postgres::NoTls,
    )
    .unwrap();
    let started = Instant::now();
    admin
        .batch_execute(&format!("DROP DATABASE {name}"))
        .unwrap_or_else(|e| panic!("a plain DROP DATABASE after {:?}: {e}", started.elapsed()));
}

//! The global feed: gap-free under out-of-order commits, exactly once per reader.

use forgeerp_server_tests::*;
use postgres::Client;
use std::collections::HashSet;
use uuid::Uuid;

/// Reads the whole feed of `tenant` after `cursor`, page by page, like a projection.
fn drain(db: &mut Client, tenant: Option<Uuid>, cursor: &mut (i64, i64), page: i32) -> Vec<Uuid> {
    let mut seen = Vec::new();
    loop {
        let rows = db
            .query("SELECT event_id, transaction_id, global_position FROM forgeerp.read_all($1, $2, $3, $4)", &[&cursor.0, &cursor.1, &page, &tenant])
            .unwrap();
        for row in &rows {
            let next = (row.get::<_, i64>(1), row.get::<_, i64>(2));
            assert!(next > *cursor, "feed order: {next:?} after {cursor:?}");
            *cursor = next;
            seen.push(row.get(0));
        }
        if rows.len() < page as usize {
            return seen;
        }
    }
}

#[test]
fn an_early_transaction_that_commits_late_is_not_skipped() {
    let tenant = id();
    let mut reader = connect();
    let mut cursor = (0, 0);
    drain(&mut reader, Some(tenant), &mut cursor, 100);

    // T1 appends first (smaller xid) and stays open; T2 appends and commits.
    let mut early = connect();
    let mut t1 = early.transaction().unwrap();
    let first = append(&mut t1, tenant, "t", id(), None, &ticks(1)).unwrap();
    let mut late = connect();
    let second = append(&mut late, tenant, "t", id(), None, &ticks(1)).unwrap();
    assert!(first[0].get::<_, i64>("transaction_id") < second[0].get::<_, i64>("transaction_id"));

    // While T1 is open the feed holds T2's event back, and shows who holds it.
    assert!(
        drain(&mut reader, Some(tenant), &mut cursor, 100).is_empty(),
        "T2 must wait for T1"
    );
    let holders: Vec<i64> = reader
        .query("SELECT transaction_id FROM forgeerp.feed_holdback", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        holders.contains(&first[0].get::<_, i64>("transaction_id")),
        "feed_holdback names T1: {holders:?}"
    );

    t1.commit().unwrap();
    let seen = drain(&mut reader, Some(tenant), &mut cursor, 100);
    let expected: Vec<Uuid> = vec![first[0].get("event_id"), second[0].get("event_id")];
    assert_eq!(
        seen, expected,
        "both, in (transaction_id, global_position) order"
    );
    assert!(
        drain(&mut reader, Some(tenant), &mut cursor, 100).is_empty(),
        "exactly once"
    );
}

/// Rolls the prepared transaction back if the test ends before committing
/// it: a prepared transaction left behind would hold every feed of the
/// cluster back for good.
struct Prepared<'a>(&'a str, bool);

impl Drop for Prepared<'_> {
    fn drop(&mut self) {
        if !self.1 {
            let _ = connect().batch_execute(&format!("ROLLBACK PREPARED '{}'", self.0));
        }
    }
}

/// A prepared transaction (`PREPARE TRANSACTION`) holds the feed back like
/// an open one until `COMMIT PREPARED`, and `feed_holdback` names it.
#[test]
fn a_prepared_transaction_holds_the_feed_back_until_it_commits() {
    let tenant = id();
    let gid = format!("forgeerp_feed_test_{}", id());
    let mut reader = connect();
    let mut cursor = (0, 0);
    drain(&mut reader, Some(tenant), &mut cursor, 100);

    let mut early = connect();
    early.batch_execute("BEGIN").unwrap();
    let first = append(&mut early, tenant, "t", id(), None, &ticks(1)).unwrap();
    early
        .batch_execute(&format!("PREPARE TRANSACTION '{gid}'"))
        .unwrap();
    let mut guard = Prepared(&gid, false);
    drop(early); // the session is gone; the prepared transaction stays
    let second = append(&mut connect(), tenant, "t", id(), None, &ticks(1)).unwrap();

    assert!(
        drain(&mut reader, Some(tenant), &mut cursor, 100).is_empty(),
        "the later commit waits for the prepared transaction"
    );
    let holders: Vec<(String, Option<String>)> = reader
        .query("SELECT kind, gid FROM forgeerp.feed_holdback", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        holders.contains(&("prepared transaction".to_string(), Some(gid.clone()))),
        "feed_holdback names it: {holders:?}"
    );

    reader
        .batch_execute(&format!("COMMIT PREPARED '{gid}'"))
        .unwrap();
    guard.1 = true;
    let seen = drain(&mut reader, Some(tenant), &mut cursor, 100);
    let expected: Vec<Uuid> = vec![first[0].get("event_id"), second[0].get("event_id")];
    assert_eq!(seen, expected, "both, in feed order, once committed");
}

#[test]
fn a_rolled_back_append_never_appears() {
    let tenant = id();
    let mut db = connect();
    let mut tx = db.transaction().unwrap();
    append(&mut tx, tenant, "t", id(), None, &ticks(2)).unwrap();
    tx.rollback().unwrap();
    let kept = append(&mut db, tenant, "t", id(), None, &ticks(1)).unwrap();
    let mut cursor = (0, 0);
    assert_eq!(
        drain(&mut db, Some(tenant), &mut cursor, 10),
        vec![kept[0].get::<_, Uuid>("event_id")]
    );
}

#[test]
fn concurrent_writers_and_a_paging_reader_see_every_event_exactly_once() {
    let tenant = id();
    let writers: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut db = connect();
                let mut ids = Vec::new();
                for i in 0..50 {
                    // Some transactions hold two appends and commit later.
                    let mut tx = db.transaction().unwrap();
                    for _ in 0..(1 + i % 2) {
                        let rows =
                            append(&mut tx, tenant, "t", id(), None, &ticks(1 + i % 3)).unwrap();
                        ids.extend(rows.iter().map(|r| r.get::<_, Uuid>("event_id")));
                    }
                    tx.commit().unwrap();
                }
                ids
            })
        })
        .collect();
    let mut reader = connect();
    let mut cursor = (0, 0);
    let mut seen = Vec::new();
    while writers.iter().any(|w| !w.is_finished()) {
        seen.extend(drain(&mut reader, Some(tenant), &mut cursor, 7));
    }
    let written: HashSet<Uuid> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    seen.extend(drain(&mut reader, Some(tenant), &mut cursor, 7));
    assert_eq!(seen.len(), written.len(), "no event twice, none missing");
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), written);
}

#[test]
fn the_unfiltered_feed_and_max_count() {
    let mut db = connect();
    let (a, b) = (id(), id());
    append(&mut db, a, "t", id(), None, &ticks(2)).unwrap();
    append(&mut db, b, "t", id(), None, &ticks(2)).unwrap();
    // From just before the feed's first event: everything, both tenants.
    let first: (i64, i64) = {
        let row = db
            .query_one(
                "SELECT transaction_id, global_position FROM forgeerp.events ORDER BY 1, 2 LIMIT 1",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    let all = db
        .query(
            "SELECT tenant_id FROM forgeerp.read_all($1, $2, 1000000)",
            &[&(first.0 - 1), &0i64],
        )
        .unwrap();
    let tenants: HashSet<Uuid> = all.iter().map(|r| r.get(0)).collect();
    assert!(tenants.contains(&a) && tenants.contains(&b));
    assert_eq!(
        db.query("SELECT * FROM forgeerp.read_all(0, 0, 3)", &[])
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        db.query("SELECT * FROM forgeerp.read_all(0, 0, 0)", &[])
            .unwrap()
            .len(),
        0
    );
    // The default max_count is 1000: with more than that in the feed, a
    // call without it returns exactly 1000, the first 1000 of the feed.
    append(&mut db, a, "t", id(), None, &ticks(1001)).unwrap();
    wait_for_feed(&mut db);
    let defaults: Vec<(i64, i64)> = db
        .query(
            "SELECT transaction_id, global_position FROM forgeerp.read_all()",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let first_1000: Vec<(i64, i64)> = db
        .query(
            "SELECT transaction_id, global_position FROM forgeerp.events ORDER BY 1, 2 LIMIT 1000",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(defaults.len(), 1000);
    assert_eq!(defaults, first_1000, "the feed's first 1000, in feed order");
}

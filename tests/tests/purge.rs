//! Offboarding a tenant: `forgeerp.purge_tenant` removes that tenant's events
//! and nothing else, for superusers only and only with `SET LOCAL
//! forgeerp.allow_purge = on`, and records it in `forgeerp.purges`; every
//! other way of deleting, updating or truncating stays `ES006`.

use forgeerp_server_tests::*;
use postgres::Client;

/// `(transaction_id, global_position)` of the feed's last event of `tenant`.
fn last_position(db: &mut Client, tenant: uuid::Uuid) -> (i64, i64) {
    let row = db
        .query_one(
            "SELECT transaction_id, global_position FROM forgeerp.events WHERE tenant_id = $1
              ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
            &[&tenant],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn purge_tenant_removes_that_tenants_events_and_records_it() {
    let mut db = connect();
    let (gone, kept) = (id(), id());
    for _ in 0..3 {
        append(&mut db, gone, "t", id(), None, &ticks(2)).unwrap();
    }
    append(&mut db, kept, "t", id(), None, &ticks(2)).unwrap();
    // A reader of the kept tenant has read everything so far.
    let cursor = last_position(&mut db, kept);
    let kept_before = events_of(&mut db, kept);

    let mut tx = db.transaction().unwrap();
    tx.batch_execute("SET LOCAL forgeerp.allow_purge = on")
        .unwrap();
    let removed: i64 = tx
        .query_one("SELECT forgeerp.purge_tenant($1)", &[&gone])
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    assert_eq!(removed, 6);
    assert_eq!(events_of(&mut db, gone), 0);
    assert_eq!(events_of(&mut db, kept), kept_before);
    let record = db
        .query_one(
            "SELECT purged_by::text, events_removed, purged_at <= now() FROM forgeerp.purges WHERE tenant_id = $1",
            &[&gone],
        )
        .unwrap();
    assert_eq!(record.get::<_, String>(0), "postgres");
    assert_eq!(record.get::<_, i64>(1), 6);
    assert!(record.get::<_, bool>(2));

    // The kept tenant's reader goes on from its cursor; the purged tenant
    // can start again from nothing.
    append(&mut db, kept, "t", id(), None, &ticks(1)).unwrap();
    wait_for_feed(&mut db);
    let next = db
        .query(
            "SELECT tenant_id FROM forgeerp.read_all($1, $2, 100, $3)",
            &[&cursor.0, &cursor.1, &kept],
        )
        .unwrap();
    assert_eq!(next.len(), 1);
    append(&mut db, gone, "t", id(), Some(0), &ticks(1)).unwrap();
}

#[test]
fn purge_tenant_needs_allow_purge_and_changes_nothing_without_it() {
    let mut db = connect();
    let tenant = id();
    append(&mut db, tenant, "t", id(), None, &ticks(2)).unwrap();
    let before = store_fingerprint(&mut db);
    let error = expect_state(
        db.query_one("SELECT forgeerp.purge_tenant($1)", &[&tenant]),
        "ES006",
    );
    assert!(
        error.message().contains(&tenant.to_string()),
        "{}",
        error.message()
    );
    assert!(
        error.message().contains("forgeerp.allow_purge"),
        "{}",
        error.message()
    );
    expect_state(
        db.query_one("SELECT forgeerp.purge_tenant(NULL)", &[]),
        "ES003",
    );
    assert_eq!(store_fingerprint(&mut db), before);
}

#[test]
fn only_a_superuser_may_purge_or_allow_purging() {
    let mut admin = connect();
    let tenant = id();
    append(&mut admin, tenant, "t", id(), None, &ticks(1)).unwrap();
    let role = format!("forgeerp_test_role_purger_{}", id().simple());
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; SELECT forgeerp.grant_usage('{role}')"
        ))
        .unwrap();
    let mut app = connect_as(&role);
    // Neither the setting nor the function is theirs.
    expect_state(app.batch_execute("SET forgeerp.allow_purge = on"), "42501");
    expect_state(app.batch_execute("SET forgeerp.purging = 'x'"), "42501");
    expect_state(
        app.query_one("SELECT forgeerp.purge_tenant($1)", &[&tenant]),
        "42501",
    );
    // Nor is the function when granted by hand: its own check refuses.
    admin
        .batch_execute(&format!(
            "GRANT EXECUTE ON FUNCTION forgeerp.purge_tenant(uuid) TO {role}"
        ))
        .unwrap();
    let error = expect_state(
        app.query_one("SELECT forgeerp.purge_tenant($1)", &[&tenant]),
        "42501",
    );
    assert!(error.message().contains("superuser"), "{}", error.message());
    assert_eq!(events_of(&mut admin, tenant), 1);
    drop(app);
    admin
        .batch_execute(&format!(
            "REVOKE EXECUTE ON FUNCTION forgeerp.purge_tenant(uuid) FROM {role};
             SELECT forgeerp.revoke_usage('{role}'); DROP ROLE {role}"
        ))
        .unwrap();
}

#[test]
fn every_other_path_stays_append_only_even_with_allow_purge() {
    let mut db = connect();
    let tenant = id();
    append(&mut db, tenant, "t", id(), None, &ticks(1)).unwrap();
    let before = store_fingerprint(&mut db);
    for statement in [
        format!("DELETE FROM forgeerp.events WHERE tenant_id = '{tenant}'"),
        format!("UPDATE forgeerp.events SET payload = '{{}}' WHERE tenant_id = '{tenant}'"),
        "TRUNCATE forgeerp.events".to_string(),
    ] {
        let mut tx = db.transaction().unwrap();
        tx.batch_execute("SET LOCAL forgeerp.allow_purge = on")
            .unwrap();
        expect_state(tx.batch_execute(&statement), "ES006");
    }
    assert_eq!(store_fingerprint(&mut db), before);
    // The record of purges is append-only too.
    let mut tx = db.transaction().unwrap();
    tx.batch_execute("SET LOCAL forgeerp.allow_purge = on")
        .unwrap();
    tx.query_one("SELECT forgeerp.purge_tenant($1)", &[&id()])
        .unwrap();
    tx.commit().unwrap();
    for statement in [
        "UPDATE forgeerp.purges SET events_removed = 0",
        "DELETE FROM forgeerp.purges",
        "TRUNCATE forgeerp.purges",
    ] {
        let error = expect_state(db.batch_execute(statement), "ES006");
        assert!(
            error.message().contains("forgeerp.purges"),
            "{}",
            error.message()
        );
    }
}

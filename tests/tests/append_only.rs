//! forgeerp.events is append-only for everyone, the owner included (ES006).

use forgeerp_server_tests::*;

#[test]
fn update_delete_and_truncate_fail_with_es006_even_for_the_superuser() {
    let mut db = connect();
    let tenant = id();
    append(&mut db, tenant, "t", id(), None, &ticks(2)).unwrap();
    let before = store_fingerprint(&mut db);
    for (statement, names) in [
        (
            "UPDATE forgeerp.events SET payload = '{}' WHERE tenant_id = $1",
            "UPDATE",
        ),
        ("DELETE FROM forgeerp.events WHERE tenant_id = $1", "DELETE"),
        (
            "DELETE FROM forgeerp.events WHERE tenant_id = $1 AND false",
            "DELETE",
        ),
    ] {
        let error = expect_state(db.execute(statement, &[&tenant]), "ES006");
        assert!(
            error.message().contains(names) && error.message().contains("append-only"),
            "{}",
            error.message()
        );
    }
    expect_state(db.batch_execute("TRUNCATE forgeerp.events"), "ES006");
    expect_state(
        db.batch_execute("TRUNCATE forgeerp.events CASCADE"),
        "ES006",
    );
    assert_eq!(store_fingerprint(&mut db), before);
}

#[test]
fn the_table_owner_cannot_change_events_either() {
    let mut db = connect();
    let owner: String = db
        .query_one("SELECT tableowner::text FROM pg_tables WHERE schemaname = 'forgeerp' AND tablename = 'events'", &[])
        .unwrap()
        .get(0);
    let mut tx = db.transaction().unwrap();
    tx.batch_execute(&format!("SET LOCAL ROLE {owner}"))
        .unwrap();
    expect_state(tx.execute("DELETE FROM forgeerp.events", &[]), "ES006");
}

//! Crypto-shredding and tenant offboarding against real Postgres with the
//! extension and the driver's tables: sealed fields are ciphertext in the
//! database itself, a forgotten subject reads as the marker in the
//! dispatcher, projections, rebuilds and anomaly snapshots while other
//! subjects are unaffected, keys are isolated by row-level security, a
//! wrong master key is a clear error, rotation re-wraps every key; and a
//! purge removes a tenant from everywhere while a worker runs, leaving the
//! other tenants' feed and read models as they were.

mod common;

use forgeerp_infra::inventory::{
    personal_data_policy, upcasters, InventoryCommand as C, InventoryItem,
};
use forgeerp_infra::personal_data::KeyStore;
use forgeerp_infra::{
    AggregateId, CommandDispatcher, DispatchError, EventStore, FeedPosition, Forgotten,
    InventoryStockProjection, InventoryStockReader, MasterKey, PersonalData, PersonalDataError,
    PgEventStore, PgKeyStore, PgNotifyEventBus, ProjectionWorker, PurgeError, ReadModelReader,
    TenantId, WorkerConfig, FORGOTTEN,
};
use std::time::Duration;

fn personal(store: &PgEventStore, master: &MasterKey) -> PersonalData {
    PersonalData::new(
        personal_data_policy(),
        PgKeyStore::new(store.pool().clone()),
        master.clone(),
    )
}

fn dispatcher(store: &PgEventStore, master: &MasterKey) -> CommandDispatcher<PgEventStore> {
    CommandDispatcher::new(store.clone())
        .with_upcasters(upcasters())
        .with_personal_data(personal(store, master))
}

/// A custom item for `customer` named `name`, with 10 units received.
async fn custom_item(
    d: &CommandDispatcher<PgEventStore>,
    tenant: TenantId,
    customer: &str,
    name: &str,
) -> AggregateId {
    let item = AggregateId::random();
    let create = C::CreateCustomItem {
        sku: format!("CUSTOM-{customer}"),
        name: name.into(),
        customer_id: customer.into(),
    };
    d.dispatch::<InventoryItem>(tenant, item, &create)
        .await
        .unwrap();
    d.dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 10 })
        .await
        .unwrap();
    item
}

/// Runs the stock projection with `config` until its checkpoint reaches the feed's head.
async fn project(url: &str, store: &PgEventStore, config: WorkerConfig) {
    let worker = ProjectionWorker::spawn(
        store.pool().clone(),
        PgNotifyEventBus::new(url),
        InventoryStockProjection,
        None,
        config,
    );
    let head = head(store).await;
    wait_for_checkpoint(store, head).await;
    worker.shutdown().await.unwrap();
}

async fn head(store: &PgEventStore) -> FeedPosition {
    let events = store
        .read_all(FeedPosition::default(), 1_000_000, None)
        .await
        .unwrap();
    events.last().map(|e| e.position()).unwrap_or_default()
}

async fn wait_for_checkpoint(store: &PgEventStore, head: FeedPosition) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ProjectionWorker::checkpoint(store.pool(), "inventory_stock", None)
        .await
        .unwrap()
        < head
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker did not catch up to {head}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn names(store: &PgEventStore, tenant: TenantId) -> Vec<(AggregateId, String, i64)> {
    let mut names: Vec<_> = InventoryStockProjection::stock(store.pool(), tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|(item, level)| (item, level.name, level.on_hand))
        .collect();
    names.sort_by_key(|(item, _, _)| item.as_uuid());
    names
}

#[tokio::test]
async fn a_forgotten_subject_reads_as_the_marker_everywhere_and_no_one_else_is_touched() {
    let (url, store) = common::migrated_database("_personal", 6).await;
    let (master, _) = MasterKey::generate();
    let d = dispatcher(&store, &master);
    let tenant = TenantId::random();
    let jane = custom_item(&d, tenant, "c-jane", "Ring engraved for Jane Doe").await;
    let john = custom_item(&d, tenant, "c-john", "Ring engraved for John Roe").await;

    // In the database itself the name is ciphertext; the subject is clear.
    let client = store.pool().get().await.unwrap();
    let raw: serde_json::Value = client
        .query_one(
            "SELECT payload FROM forgeerp.events WHERE aggregate_id = $1 AND event_type = 'CustomItemCreated'",
            &[&jane.as_uuid()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!raw.to_string().contains("Jane"), "{raw}");
    assert_eq!(raw["name"]["forgeerp:sealed"], 1, "{raw}");
    assert_eq!(raw["customer_id"], "c-jane");

    // Before forgetting: the dispatcher and the projection read it clear.
    let (state, _) = d.load::<InventoryItem>(tenant, jane).await.unwrap();
    assert_eq!(state.name, "Ring engraved for Jane Doe");
    let config = WorkerConfig {
        upcasters: upcasters(),
        personal_data: Some(personal(&store, &master)),
        ..WorkerConfig::default()
    };
    project(&url, &store, config.clone()).await;
    let before = names(&store, tenant).await;
    assert!(
        before
            .iter()
            .any(|(_, name, _)| name == "Ring engraved for Jane Doe"),
        "{before:?}"
    );

    let keys = personal(&store, &master);
    assert_eq!(
        keys.forget_subject(tenant, "c-jane").await.unwrap(),
        Forgotten::Key
    );
    assert_eq!(
        keys.forget_subject(tenant, "c-nobody").await.unwrap(),
        Forgotten::UnknownSubject
    );

    // The event stays, as it was.
    let raw_after: serde_json::Value = client
        .query_one(
            "SELECT payload FROM forgeerp.events WHERE aggregate_id = $1 AND event_type = 'CustomItemCreated'",
            &[&jane.as_uuid()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(raw_after, raw);

    // The dispatcher: the marker for Jane, John as before; commands go on.
    let (state, version) = d.load::<InventoryItem>(tenant, jane).await.unwrap();
    assert_eq!(
        (state.name.as_str(), state.on_hand, version),
        (FORGOTTEN, 10, 2)
    );
    let done = d
        .dispatch::<InventoryItem>(tenant, jane, &C::ShipStock { quantity: 3 })
        .await
        .unwrap();
    assert_eq!(
        (done.state.name.as_str(), done.state.on_hand),
        (FORGOTTEN, 7)
    );
    assert_eq!(
        d.load::<InventoryItem>(tenant, john).await.unwrap().0.name,
        "Ring engraved for John Roe"
    );

    // A rebuild gives the same read model, minus Jane's name.
    InventoryStockProjection::rebuild_tenant_with(store.pool(), tenant, Some(&keys))
        .await
        .unwrap();
    project(&url, &store, config).await;
    let after = names(&store, tenant).await;
    let expected: Vec<_> = before
        .iter()
        .map(|(item, name, on_hand)| match *item == jane {
            true => (*item, FORGOTTEN.to_string(), on_hand - 3),
            false => (*item, name.clone(), *on_hand),
        })
        .collect();
    assert_eq!(after, expected);
    // The anomaly runner's snapshot reads the read model: the marker too.
    let snapshot = InventoryStockReader::new(store.pool().clone())
        .snapshot(tenant)
        .await
        .unwrap();
    let jane_item = snapshot.items.iter().find(|i| i.item == jane).unwrap();
    assert_eq!(jane_item.name, FORGOTTEN);
    assert!(!serde_json::to_string(&snapshot).unwrap().contains("Jane"));
}

#[tokio::test]
async fn bad_input_is_refused_before_the_append_and_a_wrong_master_key_is_an_error() {
    let (_url, store) = common::migrated_database("_personal_bad", 4).await;
    let (master, _) = MasterKey::generate();
    let d = dispatcher(&store, &master);
    let tenant = TenantId::random();
    let item = AggregateId::random();
    let error = d
        .dispatch::<InventoryItem>(
            tenant,
            item,
            &C::CreateCustomItem {
                sku: "S".into(),
                name: "N".into(),
                customer_id: String::new(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DispatchError::PersonalData(PersonalDataError::MissingSubject { event_type, field })
            if event_type == "CustomItemCreated" && field == "/customer_id"),
        "{error}"
    );
    assert_eq!(
        store.stream_version(tenant, item).await.unwrap(),
        0,
        "nothing appended"
    );

    let jane = custom_item(&d, tenant, "c-jane", "For Jane").await;
    let (wrong, _) = MasterKey::generate();
    let error = dispatcher(&store, &wrong)
        .load::<InventoryItem>(tenant, jane)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DispatchError::PersonalData(PersonalDataError::WrongMasterKey { stored, configured })
            if stored == master.id() && configured == wrong.id()),
        "{error}"
    );
}

#[tokio::test]
async fn keys_are_isolated_by_tenant_and_rotation_rewraps_every_tenants_keys() {
    let (_, store) = common::migrated_database("_personal_keys", 4).await;
    let (old, _) = MasterKey::generate();
    let d = dispatcher(&store, &old);
    let (a, b) = (TenantId::random(), TenantId::random());
    let item_a = custom_item(&d, a, "c-1", "For Ann").await;
    let item_b = custom_item(&d, b, "c-1", "For Bob").await;

    // A plain role bound to tenant a sees a's keys only, and none unbound.
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE forgeerp_test_role_keys LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             SELECT forgeerp.grant_usage('forgeerp_test_role_keys');
             GRANT USAGE ON SCHEMA forgeerp_keys, forgeerp_read TO forgeerp_test_role_keys;
             GRANT SELECT, DELETE ON forgeerp_keys.subject_keys TO forgeerp_test_role_keys;
             SET ROLE forgeerp_test_role_keys"
        )
        .await
        .unwrap();
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        count("SELECT count(*) FROM forgeerp_keys.subject_keys").await,
        0
    );
    client
        .batch_execute(&format!(
            "BEGIN; SELECT forgeerp.bind_tenant('{}')",
            a.as_uuid()
        ))
        .await
        .unwrap();
    let seen: Vec<uuid::Uuid> = client
        .query("SELECT tenant_id FROM forgeerp_keys.subject_keys", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seen, [a.as_uuid()]);
    let deleted = client
        .execute(
            "DELETE FROM forgeerp_keys.subject_keys WHERE tenant_id = $1",
            &[&b.as_uuid()],
        )
        .await
        .unwrap();
    assert_eq!(deleted, 0, "another tenant's keys cannot be deleted");
    client.batch_execute("ROLLBACK; RESET ROLE").await.unwrap();

    // Rotation as such a role is refused rather than finding nothing.
    let role_store =
        PgEventStore::connect(&as_role(&store, "forgeerp_test_role_keys").await, 1).unwrap();
    let error = personal(&role_store, &old)
        .rotate_master_key(&MasterKey::generate().0)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("BYPASSRLS"), "{error}");

    let (new, _) = MasterKey::generate();
    let rotation = personal(&store, &old)
        .rotate_master_key(&new)
        .await
        .unwrap();
    assert_eq!((rotation.rewrapped, rotation.left.len()), (2, 0));
    let ids = PgKeyStore::new(store.pool().clone())
        .master_key_ids()
        .await
        .unwrap();
    assert_eq!(ids, [(new.id().to_string(), 2)]);
    for (tenant, item, name) in [(a, item_a, "For Ann"), (b, item_b, "For Bob")] {
        assert_eq!(
            dispatcher(&store, &new)
                .load::<InventoryItem>(tenant, item)
                .await
                .unwrap()
                .0
                .name,
            name
        );
        assert!(matches!(
            dispatcher(&store, &old)
                .load::<InventoryItem>(tenant, item)
                .await,
            Err(DispatchError::PersonalData(
                PersonalDataError::WrongMasterKey { .. }
            ))
        ));
    }
}

/// The connection string of `store`'s database as `role`.
async fn as_role(store: &PgEventStore, role: &str) -> String {
    let client = store.pool().get().await.unwrap();
    let database: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    format!(
        "{} user={role}",
        forgeerp_test_fixtures::conninfo(&database)
    )
}

/// Every row of the driver's tables (any with a tenant column) that names `tenant`.
async fn rows_of(store: &PgEventStore, tenant: TenantId) -> Vec<String> {
    let client = store.pool().get().await.unwrap();
    let tables = client
        .query(
            "SELECT table_schema || '.' || table_name, column_name FROM information_schema.columns
              WHERE table_schema IN ('forgeerp', 'forgeerp_read', 'forgeerp_inventory', 'forgeerp_keys')
                AND column_name IN ('tenant_id', 'tenant_key')
                AND table_name NOT IN ('purges', 'purged_tenants', 'role_scopes')
                AND (SELECT relkind FROM pg_class WHERE oid = (table_schema || '.' || table_name)::regclass) = 'r'",
            &[],
        )
        .await
        .unwrap();
    let mut found = Vec::new();
    for row in tables {
        let (table, column): (String, String) = (row.get(0), row.get(1));
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE {column}::text LIKE $1 || '%'"),
                &[&tenant.as_uuid().to_string()],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            found.push(format!("{table}: {n}"));
        }
    }
    found
}

#[tokio::test]
async fn purging_a_tenant_removes_it_everywhere_while_a_worker_runs_and_others_notice_nothing() {
    let (url, store) = common::migrated_database("_purge", 8).await;
    let (master, _) = MasterKey::generate();
    let d = dispatcher(&store, &master);
    let (gone, stays) = (TenantId::random(), TenantId::random());
    custom_item(&d, gone, "c-1", "For Ann").await;
    let plain = CommandDispatcher::new(store.clone()).with_snapshots(
        forgeerp_infra::PgSnapshotStore::new(store.pool().clone()),
        forgeerp_infra::SnapshotPolicy::every(1),
    );
    for tenant in [gone, stays] {
        for _ in 0..3 {
            let item = AggregateId::random();
            plain
                .dispatch::<InventoryItem>(
                    tenant,
                    item,
                    &C::CreateItem {
                        sku: "S".into(),
                        name: "Bolt".into(),
                    },
                )
                .await
                .unwrap();
            plain
                .dispatch::<InventoryItem>(tenant, item, &C::ReceiveStock { quantity: 5 })
                .await
                .unwrap();
        }
    }
    let client = store.pool().get().await.unwrap();
    // A parked event and an insight of the tenant that goes.
    client
        .execute(
            "INSERT INTO forgeerp_read.parked_events (projection, tenant_id, event_id, aggregate_id, sequence_number, transaction_id, global_position, error, attempts)
             VALUES ('other', $1, gen_random_uuid(), gen_random_uuid(), 1, 1, 1, 'test', 1)",
            &[&gone.as_uuid()],
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "BEGIN; SELECT forgeerp.bind_tenant('{0}');
             INSERT INTO forgeerp_inventory.ai_insights (tenant_id, item_id, kind, occurred_at, severity, score, observed, expected, name, explanation)
             VALUES ('{0}', gen_random_uuid(), 'spike', now(), 'high', 9, 9, 1, 'x', 'test'); COMMIT",
            gone.as_uuid()
        ))
        .await
        .unwrap();

    // A worker over every tenant, and a writer of the tenant that stays.
    let worker = ProjectionWorker::spawn(
        store.pool().clone(),
        PgNotifyEventBus::new(&url),
        InventoryStockProjection,
        None,
        WorkerConfig {
            upcasters: upcasters(),
            personal_data: Some(personal(&store, &master)),
            batch_size: 50,
            ..WorkerConfig::default()
        },
    );
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let d = CommandDispatcher::new(store);
            let item = AggregateId::random();
            d.dispatch::<InventoryItem>(
                stays,
                item,
                &C::CreateItem {
                    sku: "W".into(),
                    name: "Washer".into(),
                },
            )
            .await
            .unwrap();
            for _ in 0..200 {
                d.dispatch::<InventoryItem>(stays, item, &C::ReceiveStock { quantity: 1 })
                    .await
                    .unwrap();
            }
        })
    };
    // The gone tenant keeps the worker busy too, up to the purge.
    let busy = AggregateId::random();
    d.dispatch::<InventoryItem>(
        gone,
        busy,
        &C::CreateItem {
            sku: "B".into(),
            name: "Busy".into(),
        },
    )
    .await
    .unwrap();
    for _ in 0..100 {
        d.dispatch::<InventoryItem>(gone, busy, &C::ReceiveStock { quantity: 1 })
            .await
            .unwrap();
    }
    let purge = forgeerp_infra::purge_tenant(store.pool(), gone)
        .await
        .unwrap();
    assert_eq!(purge.events, 2 + 6 + 101);
    assert_eq!(
        (purge.parked_events, purge.insights, purge.data_keys),
        (1, 1, 1)
    );
    assert!(purge.snapshots >= 1, "{purge:?}");
    writer.await.unwrap();
    wait_for_checkpoint(&store, head(&store).await).await;
    worker.shutdown().await.unwrap();

    assert_eq!(rows_of(&store, gone).await, Vec::<String>::new());
    assert!(names(&store, gone).await.is_empty());
    // The other tenant: its whole feed, in order and gap-free, and its read
    // model equal to a rebuild.
    let feed = store
        .read_all(FeedPosition::default(), 100_000, Some(stays))
        .await
        .unwrap();
    assert_eq!(feed.len(), 6 + 201);
    assert!(feed.windows(2).all(|w| w[0].position() < w[1].position()));
    let live = names(&store, stays).await;
    InventoryStockProjection::rebuild_tenant(store.pool(), stays)
        .await
        .unwrap();
    assert_eq!(names(&store, stays).await, live);
    assert!(
        live.iter()
            .any(|(_, name, on_hand)| name == "Washer" && *on_hand == 200),
        "{live:?}"
    );

    // The tenant may come back: its new events are projected as usual.
    let again = AggregateId::random();
    plain
        .dispatch::<InventoryItem>(
            gone,
            again,
            &C::CreateItem {
                sku: "N".into(),
                name: "New".into(),
            },
        )
        .await
        .unwrap();
    project(&url, &store, WorkerConfig::default()).await;
    assert_eq!(names(&store, gone).await.len(), 1);
}

#[tokio::test]
async fn a_purge_needs_a_superuser_changes_nothing_otherwise_and_an_empty_tenant_is_recorded() {
    let (_url, store) = common::migrated_database("_purge_refused", 2).await;
    let tenant = TenantId::random();
    let d = CommandDispatcher::new(store.clone());
    let item = AggregateId::random();
    d.dispatch::<InventoryItem>(
        tenant,
        item,
        &C::CreateItem {
            sku: "S".into(),
            name: "N".into(),
        },
    )
    .await
    .unwrap();
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE forgeerp_test_role_purger LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             GRANT USAGE ON SCHEMA forgeerp_read TO forgeerp_test_role_purger;
             GRANT SELECT ON forgeerp_read.purged_tenants TO forgeerp_test_role_purger",
        )
        .await
        .unwrap();
    let role_store =
        PgEventStore::connect(&as_role(&store, "forgeerp_test_role_purger").await, 1).unwrap();
    let error = forgeerp_infra::purge_tenant(role_store.pool(), tenant)
        .await
        .unwrap_err();
    assert!(matches!(error, PurgeError::NotPermitted(_)), "{error}");
    assert_eq!(
        store.stream_version(tenant, item).await.unwrap(),
        1,
        "nothing removed"
    );

    let nobody = TenantId::random();
    let purge = forgeerp_infra::purge_tenant(store.pool(), nobody)
        .await
        .unwrap();
    assert_eq!(purge, forgeerp_infra::TenantPurge::default());
    let recorded: i64 = client
        .query_one(
            "SELECT count(*) FROM forgeerp.purges WHERE tenant_id = $1",
            &[&nobody.as_uuid()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 1);
}

//! Read models per tenant: one suite on both stores, and the database's
//! second wall (row-level security) for application roles.

mod common;

use forgeerp_infra::{InMemoryTenantStore, PgTenantStore, ReadModelError, TenantId, TenantStore};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Stock {
    on_hand: i64,
    reserved: i64,
}

async fn pg_store(model: &str) -> PgTenantStore<String, Stock> {
    let store = common::pg_store().await;
    forgeerp_infra::migrate(store.pool()).await.unwrap();
    PgTenantStore::new(store.pool().clone(), model)
}

async fn entries_live_per_tenant<S: TenantStore<String, Stock>>(store: &S) {
    let (a, b) = (TenantId::random(), TenantId::random());
    let bolt = "BOLT-M8".to_string();
    assert_eq!(store.get(a, &bolt).await.unwrap(), None);
    store
        .put(
            a,
            &bolt,
            &Stock {
                on_hand: 5,
                reserved: 1,
            },
        )
        .await
        .unwrap();
    store
        .put(
            b,
            &bolt,
            &Stock {
                on_hand: 99,
                reserved: 0,
            },
        )
        .await
        .unwrap();
    store
        .put(
            a,
            &bolt,
            &Stock {
                on_hand: 6,
                reserved: 1,
            },
        )
        .await
        .unwrap(); // replace
    store
        .put(
            a,
            &"NUT-M8".to_string(),
            &Stock {
                on_hand: 2,
                reserved: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.get(a, &bolt).await.unwrap(),
        Some(Stock {
            on_hand: 6,
            reserved: 1
        })
    );
    assert_eq!(
        store.get(b, &bolt).await.unwrap(),
        Some(Stock {
            on_hand: 99,
            reserved: 0
        })
    );
    let keys: Vec<String> = store
        .list(a)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec!["BOLT-M8".to_string(), "NUT-M8".to_string()]);

    assert!(store.delete(a, &bolt).await.unwrap());
    assert!(!store.delete(a, &bolt).await.unwrap());
    assert_eq!(
        store.get(b, &bolt).await.unwrap(),
        Some(Stock {
            on_hand: 99,
            reserved: 0
        }),
        "b untouched"
    );

    assert_eq!(store.clear(a).await.unwrap(), 1);
    assert!(store.list(a).await.unwrap().is_empty());
    assert_eq!(
        store.list(b).await.unwrap().len(),
        1,
        "clearing a tenant leaves the others"
    );
}

#[tokio::test]
async fn in_memory_entries_live_per_tenant() {
    entries_live_per_tenant(&InMemoryTenantStore::<String, Stock>::new()).await;
}

#[tokio::test]
async fn postgres_entries_live_per_tenant() {
    entries_live_per_tenant(&pg_store("stock").await).await;
}

#[tokio::test]
async fn read_models_of_different_names_do_not_meet() {
    let (stock, other) = (pg_store("stock_a").await, pg_store("stock_b").await);
    let tenant = TenantId::random();
    stock
        .put(
            tenant,
            &"K".to_string(),
            &Stock {
                on_hand: 1,
                reserved: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(other.get(tenant, &"K".to_string()).await.unwrap(), None);
}

#[tokio::test]
async fn row_level_security_admits_only_the_bound_tenant() {
    // Superusers bypass row-level security; an application role does not.
    let store = pg_store("stock_rls").await;
    let (mine, theirs) = (TenantId::random(), TenantId::random());
    for tenant in [theirs, mine] {
        store
            .put(
                tenant,
                &"SECRET".to_string(),
                &Stock {
                    on_hand: 7,
                    reserved: 0,
                },
            )
            .await
            .unwrap();
    }

    let app = application_role("SELECT, INSERT, UPDATE, DELETE ON forgeerp_read.entries").await;
    app.batch_execute(&format!("BEGIN; SELECT forgeerp.bind_tenant('{mine}')"))
        .await
        .unwrap();
    let leaked = app
        .query(
            "SELECT * FROM forgeerp_read.entries WHERE tenant_id = $1",
            &[&theirs.as_uuid()],
        )
        .await
        .unwrap();
    assert!(leaked.is_empty(), "another tenant's rows are invisible");
    // The positive control: the bound tenant reads and writes its own rows,
    // so neither the empty read above nor the refusal below is a blanket denial.
    let own = app
        .query(
            "SELECT key FROM forgeerp_read.entries WHERE model = 'stock_rls'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        own.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>(),
        ["SECRET"],
        "the bound tenant sees its own row, and only it"
    );
    app.execute(
        "INSERT INTO forgeerp_read.entries (model, tenant_id, key, value) VALUES ('stock_rls', $1, 'MINE', '{}')",
        &[&mine.as_uuid()],
    )
    .await
    .expect("the bound tenant may write its own rows");
    let written = app
        .execute(
            "INSERT INTO forgeerp_read.entries (model, tenant_id, key, value) VALUES ('stock_rls', $1, 'X', '{}')",
            &[&theirs.as_uuid()],
        )
        .await
        .unwrap_err();
    match ReadModelError::from(written) {
        ReadModelError::Database { sqlstate, .. } => {
            assert_eq!(sqlstate, "42501", "refused by the policy")
        }
        other => panic!("{other:?}"),
    }
}

/// Checkpoints and parked events (migration 3): a role granted access sees
/// only its bound tenant's rows, and no all-tenants checkpoint; unbound, none.
#[tokio::test]
async fn checkpoints_and_parked_events_show_a_granted_role_only_its_bound_tenant() {
    let store = common::pg_store().await;
    forgeerp_infra::migrate(store.pool()).await.unwrap();
    let (mine, theirs) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    store
        .pool()
        .get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "INSERT INTO forgeerp_read.checkpoints (projection, tenant_key, transaction_id, global_position)
             VALUES ('rls', '*', 1, 1), ('rls', '{mine}', 1, 2), ('rls', '{theirs}', 1, 3);
             INSERT INTO forgeerp_read.parked_events VALUES
               ('rls', '{mine}', gen_random_uuid(), gen_random_uuid(), 1, 1, 2, 'mine', 1),
               ('rls', '{theirs}', gen_random_uuid(), gen_random_uuid(), 1, 1, 3, 'their error text', 1);"
        ))
        .await
        .unwrap();
    let app = application_role(
        "SELECT, INSERT ON forgeerp_read.checkpoints, forgeerp_read.parked_events",
    )
    .await;
    let visible = async |sql: &str| -> Vec<String> {
        app.query(sql, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let checkpoints =
        "SELECT tenant_key FROM forgeerp_read.checkpoints WHERE projection = 'rls' ORDER BY 1";
    let parked =
        "SELECT error FROM forgeerp_read.parked_events WHERE projection = 'rls' ORDER BY 1";
    assert!(
        visible(checkpoints).await.is_empty(),
        "unbound: no checkpoint"
    );
    assert!(visible(parked).await.is_empty(), "unbound: no parked event");
    app.batch_execute(&format!("BEGIN; SELECT forgeerp.bind_tenant('{mine}')"))
        .await
        .unwrap();
    assert_eq!(visible(checkpoints).await, vec![mine.to_string()]);
    assert_eq!(visible(parked).await, vec!["mine".to_string()]);
    let refused = app
        .execute(
            "INSERT INTO forgeerp_read.checkpoints (projection, tenant_key, transaction_id, global_position) VALUES ('rls', '*', 9, 9)",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code().map(|c| c.code()), Some("42501"), "{refused}");
}

/// A connection as a new application role (`forgeerp.grant_usage`) that is
/// also granted `privileges` ("SELECT ON forgeerp_read.entries", say) in the
/// test database.
async fn application_role(privileges: &str) -> tokio_postgres::Client {
    let url = common::database_url().await;
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let role = format!(
        "forgeerp_test_role_reader_{}",
        uuid::Uuid::new_v4().simple()
    );
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; SELECT forgeerp.grant_usage('{role}');
             GRANT USAGE ON SCHEMA forgeerp_read TO {role};
             GRANT {privileges} TO {role};"
        ))
        .await
        .unwrap();
    let (app, connection) =
        tokio_postgres::connect(&format!("{url} user={role}"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    app
}

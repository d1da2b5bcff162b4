//! `forgeerp demo`: the README's main job. Two tenants, a few items each, a
//! realistic run of receipts, reservations and shipments through the
//! command dispatcher with a few injected anomalies; the stock projection
//! and the anomaly runner on the live feed; then per tenant a stock table and
//! the insights found. Every run uses new tenants, so it can run again.

use crate::connect::{connect, Database};
use crate::error::CliError;
use forgeerp_infra::inventory::{InventoryCommand as C, InventoryItem};
use forgeerp_infra::{
    AggregateId, AiInsight, AnomalyDetector, CommandDispatcher, DispatchError, EventStore,
    InventoryAnomalyRunner, InventoryStockProjection, InventoryStockReader, PgEventStore,
    PgInsightSink, ProjectionWorker, RetryPolicy, RunnerConfig, TenantId, TriggeringProjection,
    WorkerConfig,
};
use std::time::{Duration, Instant};

const ITEMS: [(&str, &str); 4] = [
    ("BOLT-M8", "M8 hex bolt"),
    ("NUT-M8", "M8 hex nut"),
    ("WSH-8", "8 mm washer"),
    ("DRL-6", "6 mm drill bit"),
];
const DAYS: u64 = 40;

/// A small deterministic generator, so that each run tells the same story.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, low: i64, high: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + (self.0 % (high - low + 1) as u64) as i64
    }
}

/// What goes wrong in the run, on purpose.
#[derive(Clone, Copy)]
enum Incident {
    /// Units vanish (found at a stock count).
    TheftLikeDrop { units: i64 },
    /// A receipt keyed with an extra zero.
    BulkReceipt,
}

struct Tenant {
    id: TenantId,
    name: &'static str,
    items: Vec<AggregateId>,
    /// (item index, day, incident)
    incidents: Vec<(usize, u64, Incident)>,
}

/// Runs the demo against `url`.
pub async fn run(db: &Database) -> Result<(), CliError> {
    let started = Instant::now();
    let store = connect(db, 6).await?;
    forgeerp_infra::migrate(store.pool()).await?;
    let tenants = [
        Tenant {
            id: TenantId::random(),
            name: "Acme Hardware",
            items: ITEMS.iter().map(|_| AggregateId::random()).collect(),
            incidents: vec![(1, 31, Incident::TheftLikeDrop { units: 240 })],
        },
        Tenant {
            id: TenantId::random(),
            name: "Northwind Tools",
            items: ITEMS.iter().map(|_| AggregateId::random()).collect(),
            incidents: vec![
                (3, 27, Incident::BulkReceipt),
                (0, 35, Incident::TheftLikeDrop { units: 180 }),
            ],
        },
    ];

    // The write side: every command through the dispatcher.
    let mut clerk = Clerk {
        dispatcher: CommandDispatcher::new(store.clone())
            .with_retry(RetryPolicy::attempts(3))
            .with_upcasters(forgeerp_infra::inventory::upcasters()),
        commands: 0,
        refused: 0,
    };
    let mut dice = Dice(0x5EED_F0E6_E12F);
    for tenant in &tenants {
        for (item, (sku, name)) in tenant.items.iter().zip(ITEMS) {
            clerk
                .dispatch(
                    tenant.id,
                    *item,
                    C::CreateItem {
                        sku: sku.into(),
                        name: name.into(),
                    },
                )
                .await?;
            clerk
                .dispatch(tenant.id, *item, C::ReceiveStock { quantity: 400 })
                .await?;
        }
    }
    for day in 1..=DAYS {
        for tenant in &tenants {
            for (index, item) in tenant.items.iter().enumerate() {
                let demand = dice.roll(8, 16);
                clerk
                    .dispatch(tenant.id, *item, C::ReserveStock { quantity: demand })
                    .await?;
                clerk
                    .dispatch(tenant.id, *item, C::ShipStock { quantity: demand })
                    .await?;
                for (_, _, incident) in tenant
                    .incidents
                    .iter()
                    .filter(|(i, d, _)| *i == index && *d == day)
                {
                    let command = match incident {
                        Incident::TheftLikeDrop { units } => C::AdjustStock {
                            delta: -units,
                            reason: "cycle count: units missing".into(),
                        },
                        Incident::BulkReceipt => C::ReceiveStock { quantity: 3000 },
                    };
                    clerk.dispatch(tenant.id, *item, command).await?;
                }
                if day % 10 == 0 {
                    clerk
                        .dispatch(
                            tenant.id,
                            *item,
                            C::ReceiveStock {
                                quantity: 300 + dice.roll(0, 20),
                            },
                        )
                        .await?;
                }
            }
        }
    }
    println!(
        "dispatched {} commands for 2 tenants ({} refused by the domain) in {:.1} s",
        clerk.commands,
        clerk.refused,
        started.elapsed().as_secs_f64()
    );

    // The read side, started once the history is written: the stock
    // projection, which wakes the anomaly runner after each batch it
    // commits. Started during the writes, the runner would judge whatever
    // part of the history had arrived when it woke (on a loaded machine,
    // five days of it), and what it found then would stay among the
    // insights: the demo's figures would depend on the machine's speed.
    let runner = InventoryAnomalyRunner::spawn(
        InventoryStockReader::new(store.pool().clone()),
        PgInsightSink::new(store.pool().clone()),
        AnomalyDetector::default(),
        RunnerConfig {
            coalesce: Duration::from_millis(300),
            ..RunnerConfig::default()
        },
    );
    let worker = ProjectionWorker::spawn(
        store.pool().clone(),
        db.bus(),
        TriggeringProjection::new(InventoryStockProjection, runner.trigger_handle()),
        None,
        WorkerConfig::default(),
    );

    // Wait for the projection (every item at its stream's version), then for
    // one anomaly run that started after it.
    let deadline = Instant::now() + Duration::from_secs(60);
    for tenant in &tenants {
        for item in &tenant.items {
            let version = store.stream_version(tenant.id, *item).await?;
            loop {
                let stock = InventoryStockProjection::stock(store.pool(), tenant.id).await?;
                if stock
                    .iter()
                    .any(|(id, level)| id == item && level.last_sequence >= version)
                {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(CliError::failed(
                        "the stock projection did not catch up within 60 s; see `forgeerp stats`",
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let started_runs = runner.stats().runs;
    for tenant in &tenants {
        runner.trigger(tenant.id);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while runner.stats().finished <= started_runs {
        if Instant::now() > deadline {
            return Err(CliError::failed(
                "the anomaly runner did not finish within 60 s",
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = runner.shutdown().await;
    worker.shutdown().await?;
    if stats.abandoned_runs > 0 {
        return Err(CliError::failed(format!(
            "the anomaly runner gave up on {} run(s); FORGEERP_LOG=warn shows why",
            stats.abandoned_runs
        )));
    }
    println!(
        "projection caught up; anomaly runner: {} run(s), {} failed attempt(s)\n",
        stats.runs, stats.failed_attempts
    );

    for tenant in &tenants {
        println!("== {} (tenant {})", tenant.name, tenant.id);
        println!(
            "{:<9} {:<16} {:>8} {:>9} {:>10}",
            "SKU", "item", "on hand", "reserved", "available"
        );
        let stock = InventoryStockProjection::stock(store.pool(), tenant.id).await?;
        for item in &tenant.items {
            if let Some((_, level)) = stock.iter().find(|(id, _)| id == item) {
                println!(
                    "{:<9} {:<16} {:>8} {:>9} {:>10}",
                    level.sku.as_deref().unwrap_or("-"),
                    level.name,
                    level.on_hand,
                    level.reserved,
                    level.available
                );
            }
        }
        let insights = PgInsightSink::insights(store.pool(), tenant.id).await?;
        println!("insights: {}", insights.len());
        for insight in &insights {
            print_insight(insight);
        }
        println!();
    }
    Ok(())
}

fn print_insight(insight: &AiInsight) {
    println!(
        "  [{}] {} {}: {}",
        insight.severity,
        insight.sku.as_deref().unwrap_or("-"),
        insight.kind.as_str(),
        insight.explanation
    );
}

/// The dispatcher, counting what it was asked and what the domain refused.
struct Clerk {
    dispatcher: CommandDispatcher<PgEventStore>,
    commands: u64,
    refused: u64,
}

impl Clerk {
    async fn dispatch(
        &mut self,
        tenant: TenantId,
        item: AggregateId,
        command: C,
    ) -> Result<(), CliError> {
        self.commands += 1;
        match self
            .dispatcher
            .dispatch::<InventoryItem>(tenant, item, &command)
            .await
        {
            Ok(_) => Ok(()),
            Err(DispatchError::Domain(_)) => {
                self.refused += 1; // not enough stock: a real warehouse says no too
                Ok(())
            }
            Err(other) => Err(CliError::failed(format!(
                "the demo could not dispatch {command:?}: {other}"
            ))),
        }
    }
}

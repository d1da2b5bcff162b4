//! Personal data in the CLI: `load` and `tail` open sealed fields when
//! `FORGEERP_MASTER_KEY` is set (a forgotten subject's read as
//! `"[forgotten]"`), and print them sealed, as stored, when it is not;
//! `forget-subject` and `purge-tenant`.

use crate::connect::{connect, Database};
use crate::error::CliError;
use forgeerp_infra::{
    KeyStore, MasterKey, PersonalData, PgEventStore, PgKeyStore, StoredEvent, TenantId,
};

/// The personal data of the store's database, when a master key is set.
pub fn from_env(store: &PgEventStore) -> Result<Option<PersonalData>, CliError> {
    Ok(MasterKey::from_env()?.map(|master| {
        PersonalData::new(
            forgeerp_infra::inventory::personal_data_policy(),
            PgKeyStore::new(store.pool().clone()),
            master,
        )
    }))
}

/// `events`, opened when there is a master key.
pub async fn opened(
    personal: Option<&PersonalData>,
    events: Vec<StoredEvent>,
) -> Result<Vec<StoredEvent>, CliError> {
    match personal {
        Some(personal) => Ok(personal.open(events).await?),
        None => Ok(events),
    }
}

/// `forgeerp forget-subject`: deletes the subject's data key (no master
/// key needed) and says whether there was one.
pub async fn forget_subject(
    db: &Database,
    tenant: TenantId,
    subject: &str,
) -> Result<(), CliError> {
    let store = connect(db, 1).await?;
    let keys = PgKeyStore::new(store.pool().clone());
    if keys.forget(tenant, subject).await? {
        println!("subject {subject} of tenant {tenant} forgotten: its personal fields read as \"{}\" from now on; rebuild read models that copied them", forgeerp_infra::FORGOTTEN);
    } else {
        println!("subject {subject} of tenant {tenant} has no data key: nothing to forget");
    }
    Ok(())
}

/// `forgeerp purge-tenant`: the tenant removed from everywhere, with
/// `--yes` only; one line per kind of data removed.
pub async fn purge_tenant(db: &Database, tenant: TenantId, yes: bool) -> Result<(), CliError> {
    if !yes {
        return Err(CliError::usage(format!(
            "purge-tenant removes every event, read model, checkpoint, parked event, insight, snapshot and data key of tenant {tenant} for good: pass --yes to do it"
        )));
    }
    let store = connect(db, 1).await?;
    let purge = forgeerp_infra::purge_tenant(store.pool(), tenant).await?;
    println!("tenant {tenant} purged");
    for (what, count) in [
        ("events", purge.events),
        ("read model entries", purge.read_model_entries),
        ("stock history runs", purge.stock_history_runs),
        ("insights", purge.insights),
        ("parked events", purge.parked_events),
        ("snapshots", purge.snapshots),
        ("data keys", purge.data_keys),
        ("checkpoints", purge.checkpoints),
    ] {
        println!("  {what:<20} {count}");
    }
    Ok(())
}

//! Binding a transaction to one tenant: the one way the driver does it.
//!
//! Every tenant-scoped statement of the driver runs in a transaction bound to
//! its tenant with `forgeerp.bind_tenant`, so a bug that passes the wrong
//! tenant somewhere is stopped by the database (ES002) and row-level security
//! admits that tenant's rows only. Three shapes, for three needs:
//!
//! - [`in_bound_transaction`] / [`begin_bound`]: an explicit transaction,
//!   read-write or a read-only snapshot ([`Access`]);
//! - [`bound_tenant_arg!`]: one statement that binds its own implicit
//!   transaction, for a single round trip (the event store's calls);
//! - [`switch_tenant`]: the projection worker, trusted code that moves
//!   between tenants inside one transaction on purpose.

use crate::ids::TenantId;
use deadpool_postgres::{Object, Pool, Transaction};
use tokio_postgres::IsolationLevel;

/// The statement that binds the current transaction to tenant `$1`.
const BIND_TENANT: &str = "SELECT forgeerp.bind_tenant($1)";

/// What a bound transaction may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read and write, at the session's isolation level.
    ReadWrite,
    /// Read only, in one REPEATABLE READ snapshot: a consistent view.
    Snapshot,
}

/// Begins a transaction on `client` bound to `tenant_id`.
pub(crate) async fn begin_bound(
    client: &mut Object,
    tenant_id: TenantId,
    access: Access,
) -> Result<Transaction<'_>, tokio_postgres::Error> {
    let tx = match access {
        Access::ReadWrite => client.transaction().await?,
        Access::Snapshot => {
            client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?
        }
    };
    tx.execute(BIND_TENANT, &[&tenant_id.as_uuid()]).await?;
    Ok(tx)
}

/// Runs `f` in a transaction of `pool` bound to `tenant_id`, and commits
/// when it succeeds (a failure rolls back).
pub(crate) async fn in_bound_transaction<R, E>(
    pool: &Pool,
    tenant_id: TenantId,
    access: Access,
    f: impl AsyncFnOnce(&Transaction<'_>) -> Result<R, E>,
) -> Result<R, E>
where
    E: From<tokio_postgres::Error> + From<deadpool_postgres::PoolError>,
{
    let mut client = pool.get().await?;
    let tx = begin_bound(&mut client, tenant_id, access).await?;
    let result = f(&tx).await?;
    tx.commit().await?;
    Ok(result)
}

/// Moves the open transaction `tx` to `tenant_id` without `bind_tenant`'s
/// one-tenant rule: for the projection worker only, which applies the events
/// of several tenants in one transaction on purpose.
///
/// One simple-protocol request (the uuid is inlined, which is safe for a
/// uuid's text), so that when it is polled first in a pipeline it runs
/// before the statements polled after it: a parameterized statement is two
/// requests, prepare then execute, and could be overtaken.
pub(crate) async fn switch_tenant(
    tx: &Transaction<'_>,
    tenant_id: TenantId,
) -> Result<(), tokio_postgres::Error> {
    tx.batch_execute(&format!(
        "SELECT pg_catalog.set_config('{}', '{}', true)",
        forgeerp_contract::names::TENANT_ID.name(),
        tenant_id.as_uuid()
    ))
    .await
}

/// The tenant argument `$n` of a single statement that binds its own
/// (implicit) transaction before the function it feeds runs:
/// `(SELECT $n::uuid FROM forgeerp.bind_tenant($n::uuid))`.
macro_rules! bound_tenant_arg {
    ($n:literal) => {
        concat!(
            "(SELECT $",
            $n,
            "::uuid FROM forgeerp.bind_tenant($",
            $n,
            "::uuid))"
        )
    };
}
pub(crate) use bound_tenant_arg;

/// Runs one query in a read-only snapshot of `pool` bound to `tenant_id`.
pub(crate) async fn query_bound<E>(
    pool: &Pool,
    tenant_id: TenantId,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, E>
where
    E: From<tokio_postgres::Error> + From<deadpool_postgres::PoolError>,
{
    in_bound_transaction(pool, tenant_id, Access::Snapshot, async |tx| {
        Ok(tx.query(sql, params).await?)
    })
    .await
}

/// One simple-protocol request of two statements, `forgeerp.bind_tenant`
/// then `statement`, which PostgreSQL runs as one implicit transaction: the
/// binding holds for the statement and ends with it, an error rolls both
/// back, and it is one round trip. `statement`'s values are inlined
/// ([`sql_literal`], [`inline`]). Its first message is `bind_tenant`'s row.
pub(crate) async fn simple_bound(
    client: &tokio_postgres::Client,
    tenant_id: TenantId,
    statement: &str,
) -> Result<Vec<tokio_postgres::SimpleQueryMessage>, tokio_postgres::Error> {
    let request = format!(
        "SELECT forgeerp.bind_tenant('{}');\n{statement}",
        tenant_id.as_uuid()
    );
    client.simple_query(&request).await
}

/// `text` as an SQL string literal (standard_conforming_strings: only the
/// quote is special), or None when it holds a NUL, which no text can.
pub(crate) fn sql_literal(text: &str) -> Option<String> {
    (!text.contains('\0')).then(|| format!("'{}'", text.replace('\'', "''")))
}

/// `sql` with its parameters `$1`, `$2`, … replaced by `values` (SQL
/// literals), in one pass: a value is never scanned for parameters again.
pub(crate) fn inline(sql: &str, values: &[String]) -> String {
    let mut out = String::with_capacity(sql.len() + values.iter().map(String::len).sum::<usize>());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .count();
        match rest[at + 1..at + 1 + digits].parse::<usize>() {
            Ok(n) if (1..=values.len()).contains(&n) => out.push_str(&values[n - 1]),
            _ => out.push_str(&rest[at..at + 1 + digits]),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

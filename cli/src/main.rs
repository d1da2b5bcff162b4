//! `forgeerp`: the command-line tool over the forgeerp driver.
//!
//! Every command talks to the private cluster of `scripts/setup.sh` unless
//! `--database-url` (or `DATABASE_URL`) names another server. Errors are one
//! line on stderr and a non-zero exit: 2 for bad input, 1 for the rest.

mod connect;
mod demo;
mod error;
mod rebuild;
mod stats;
mod streams;
mod tail;
mod worker;

use clap::{Parser, Subcommand};
use error::CliError;
use forgeerp_infra::{AggregateId, FeedPosition, TenantId};
use std::path::PathBuf;
use std::process::ExitCode;

/// forgeerp: a multi-tenant event store inside PostgreSQL, and its tools.
#[derive(Parser)]
#[command(name = "forgeerp", version, about)]
struct Cli {
    /// The database (a libpq URL); default: the private cluster of scripts/setup.sh.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Logs on stderr: human (default) or json.
    #[arg(long, global = true, value_enum, default_value = "human")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How logs are written.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Lines for people.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Two tenants, a run of receipts, reservations and shipments with a few
    /// anomalies; the projection and the anomaly runner; stock and insights.
    Demo,
    /// Appends events (a JSON array, the shape of forgeerp.append) to one stream.
    Append {
        /// The tenant (uuid).
        #[arg(long)]
        tenant: TenantId,
        /// The aggregate type (for example inventory.item).
        #[arg(long = "type")]
        aggregate_type: String,
        /// The aggregate (uuid).
        #[arg(long)]
        aggregate: AggregateId,
        /// any, no-stream, exists, or a version number.
        #[arg(long, default_value = "any")]
        expected: String,
        /// The events: [{"event_type": …, "payload": {…}, "metadata"?: {…}, "event_id"?: uuid, "event_version"?: n}].
        events: String,
    },
    /// Prints one stream's events, one JSON object per line.
    Load {
        /// The tenant (uuid).
        #[arg(long)]
        tenant: TenantId,
        /// The aggregate (uuid).
        #[arg(long)]
        aggregate: AggregateId,
    },
    /// Follows the feed live, one JSON object per line.
    Tail {
        /// Only this tenant's events.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Start after this position, TRANSACTION:POSITION (default: the start, or the checkpoint file).
        #[arg(long)]
        after: Option<FeedPosition>,
        /// Resume from, and save the position to, this file.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Rebuilds the inventory stock projection of one tenant, or of all.
    Rebuild {
        /// The tenant (uuid).
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        tenant: Option<TenantId>,
        /// Every tenant with events.
        #[arg(long)]
        all: bool,
    },
    /// Streams, events, feed lag per projection, notification queue usage:
    /// the planner's estimates, instant at any size.
    Stats {
        /// Exact counts instead of estimates (scans the events: slow on a large store).
        #[arg(long)]
        exact: bool,
    },
    /// Brings the driver's own tables (schema forgeerp_read) up to date:
    /// numbered migrations, each applied once; safe to run at any time.
    Migrate,
    /// Changes how many partitions the stock projection is split into.
    /// Stop every worker first, once they have caught up (drained).
    Resplit {
        /// The partitions it has now.
        #[arg(long)]
        from: u32,
        /// The partitions it is to have.
        #[arg(long)]
        to: u32,
        /// The tenant filter of the workers, when they have one.
        #[arg(long)]
        tenant: Option<TenantId>,
    },
    /// Runs the read side as a service until SIGTERM or SIGINT: the stock
    /// projection (one instance leads, others stand by) and the anomaly
    /// runner, with Prometheus metrics and a health check.
    Worker {
        /// The configuration file (TOML; see docker/worker.example.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Serve /metrics and /health on this address (for example 127.0.0.1:9187).
        #[arg(long)]
        metrics: Option<std::net::SocketAddr>,
    },
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    // Like other Unix tools: a closed pipe (`forgeerp load … | head`) ends the
    // process quietly instead of making println! panic. Rust ignores SIGPIPE
    // by default; restore the default action before anything is printed.
    #[cfg(unix)]
    // SAFETY: sets a signal disposition at start-up, before any other thread
    // of ours prints; SIG_DFL is a valid handler for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // Services log what they do; one-shot commands only their errors.
    let default_filter = match cli.command {
        Command::Worker { .. } => "info",
        _ => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FORGEERP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let url = cli
        .database_url
        .clone()
        .unwrap_or_else(connect::default_database_url);
    let result = match cli.command {
        Command::Worker { config, metrics } => run_worker(cli.database_url, config, metrics).await,
        command => run(command, &url).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("forgeerp: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run(command: Command, url: &str) -> Result<(), CliError> {
    match command {
        Command::Demo => demo::run(url).await,
        Command::Append {
            tenant,
            aggregate_type,
            aggregate,
            expected,
            events,
        } => streams::append(url, tenant, &aggregate_type, aggregate, &expected, &events).await,
        Command::Load { tenant, aggregate } => streams::load(url, tenant, aggregate).await,
        Command::Tail {
            tenant,
            after,
            checkpoint,
            limit,
        } => tail::run(url, tenant, after, checkpoint, limit).await,
        Command::Rebuild { tenant, .. } => rebuild::run(url, tenant).await,
        Command::Stats { exact } => stats::run(url, exact).await,
        Command::Migrate => migrate(url).await,
        Command::Resplit { from, to, tenant } => {
            let store = connect::connect(url, 1).await?;
            let at = forgeerp_infra::ProjectionWorker::resplit(
                store.pool(),
                "inventory_stock",
                tenant,
                from,
                to,
            )
            .await?;
            println!("inventory_stock: {from} partition(s) -> {to}, each at {at}");
            Ok(())
        }
        Command::Worker { .. } => unreachable!("run_worker handles it"),
    }
}

/// `forgeerp worker`: the file's settings, with `--metrics` and the
/// database URL of `--database-url` / `DATABASE_URL` winning over them.
async fn run_worker(
    url: Option<String>,
    config: Option<PathBuf>,
    metrics: Option<std::net::SocketAddr>,
) -> Result<(), CliError> {
    let mut file = worker::read_config(config.as_deref())?;
    if metrics.is_some() {
        file.metrics = metrics;
    }
    let url = url
        .or_else(|| file.database_url.clone())
        .unwrap_or_else(connect::default_database_url);
    worker::run(&url, file).await
}

/// `forgeerp migrate`: one line saying what it found and did.
async fn migrate(url: &str) -> Result<(), CliError> {
    let store = connect::connect(url, 1).await?;
    let report = forgeerp_infra::migrate(store.pool()).await?;
    match report.applied.as_slice() {
        [] => println!("driver schema at version {}: up to date", report.to_version),
        applied => println!(
            "driver schema at version {} (was {}): applied {}",
            report.to_version,
            report.from_version,
            applied
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    Ok(())
}

//! `forgeerp`: the command-line tool over the forgeerp driver.
//!
//! The database is `--database-url`, else `DATABASE_URL`, else libpq's
//! variables, else the private cluster of `scripts/setup.sh`
//! ([`connect::Database::choose`]). Errors are one line on stderr,
//! `forgeerp: <message> (<SQLSTATE>)`, and a non-zero exit: 2 for bad
//! input, 3 for a conflict, 1 for the rest.

mod connect;
mod demo;
mod error;
mod personal;
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

/// What `--help` ends with: where the database comes from, and the exit codes.
const AFTER_HELP: &str = "\
Database: --database-url, else DATABASE_URL, else the libpq variables (PGHOST, PGHOSTADDR, PGPORT,
PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE, PGSSLROOTCERT), else the private cluster of
scripts/setup.sh (127.0.0.1, port FORGEERP_PGPORT or 28815, database forgeerp). sslmode (disable,
prefer, require, verify-ca, verify-full) and sslrootcert (a PEM file, or system) work as in libpq.

Errors: one line on stderr, `forgeerp: <message> (<SQLSTATE>)`. Exit codes: 0 done; 1 failed
(server unreachable, refused, anything else); 2 bad input (arguments, ES003); 3 a conflict with the
stored streams (ES001 wrong expected version, ES004 duplicate event id, ES005 aggregate type).";

/// forgeerp: a multi-tenant event store inside PostgreSQL, and its tools.
#[derive(Parser)]
#[command(name = "forgeerp", version, about, after_help = AFTER_HELP)]
struct Cli {
    /// The database: a libpq connection string or postgresql:// URL (see below for the defaults).
    #[arg(long, global = true)]
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
        /// The events: [{"event_type": …, "payload": {…}, "metadata"?: {…}, "event_id"?: uuid, "event_version"?: n}];
        /// `-` reads them from stdin, `@FILE` from a file.
        events: String,
    },
    /// Prints one stream's events, one JSON object per line. A stream that
    /// does not exist prints nothing and exits 0 (like an empty psql result).
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
        #[arg(long, conflicts_with = "from_now")]
        after: Option<FeedPosition>,
        /// Only events committed from now on (nothing of the past).
        #[arg(long)]
        from_now: bool,
        /// Resume from, and save the position to, this file.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<u64>,
        /// Give up (exit 1) after this many seconds without a connection.
        #[arg(long, default_value_t = 30)]
        give_up_after: u64,
    },
    /// Rebuilds the inventory stock projection of one tenant, or of all,
    /// and moves its checkpoint to the feed's head (what `stats` shows).
    #[command(group = clap::ArgGroup::new("which").required(true).args(["tenant", "all"]))]
    Rebuild {
        /// The tenant (uuid).
        #[arg(long)]
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
        /// One JSON object instead of lines for people.
        #[arg(long)]
        json: bool,
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
    /// Forgets one subject (a person, a customer) of a tenant: deletes its
    /// data key, so its sealed personal fields read as "[forgotten]" from
    /// now on. The events stay. No master key needed.
    ForgetSubject {
        /// The tenant (uuid).
        #[arg(long)]
        tenant: TenantId,
        /// The subject, as the events name it (for example a customer id).
        #[arg(long)]
        subject: String,
    },
    /// Removes a tenant for good: its events (forgeerp.purge_tenant), read
    /// models, checkpoints, parked events, insights, snapshots and data
    /// keys, in one transaction. Needs a superuser; stop the tenant's
    /// writers first.
    PurgeTenant {
        /// The tenant (uuid).
        #[arg(long)]
        tenant: TenantId,
        /// Do it (without it, nothing is removed).
        #[arg(long)]
        yes: bool,
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return parse_failure(error),
    };
    // Services log what they do; one-shot commands only their errors.
    let default_filter = match cli.command {
        Command::Worker { .. } => "info",
        _ => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FORGEERP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let result = match cli.command {
        Command::Worker { config, metrics } => {
            run_worker(cli.database_url.as_deref(), config, metrics).await
        }
        command => match connect::Database::choose(cli.database_url.as_deref(), None) {
            Ok(database) => run(command, &database).await,
            Err(error) => Err(error),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("forgeerp: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// What the argument parser found wrong, as one line and exit code 2; help
/// and version as clap prints them, exit code 0.
fn parse_failure(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(error::EXIT_USAGE)
        } else {
            ExitCode::SUCCESS
        };
    }
    // clap's first paragraph (what is wrong, with what it lists on the lines
    // below), without its tips and usage, on one line.
    let text = error.render().to_string();
    let paragraph: Vec<&str> = text
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let said = paragraph.join(" ");
    let said = said.strip_prefix("error: ").unwrap_or(&said);
    eprintln!("forgeerp: {said} (see --help)");
    ExitCode::from(error::EXIT_USAGE)
}

async fn run(command: Command, db: &connect::Database) -> Result<(), CliError> {
    match command {
        Command::Demo => demo::run(db).await,
        Command::Append {
            tenant,
            aggregate_type,
            aggregate,
            expected,
            events,
        } => streams::append(db, tenant, &aggregate_type, aggregate, &expected, &events).await,
        Command::Load { tenant, aggregate } => streams::load(db, tenant, aggregate).await,
        Command::Tail {
            tenant,
            after,
            from_now,
            checkpoint,
            limit,
            give_up_after,
        } => {
            let start = match (after, from_now) {
                (_, true) => tail::Start::Now,
                (Some(after), false) => tail::Start::After(after),
                (None, false) => tail::Start::Beginning,
            };
            let give_up_after = std::time::Duration::from_secs(give_up_after);
            tail::run(db, tenant, start, checkpoint, limit, give_up_after).await
        }
        Command::Rebuild { tenant, .. } => rebuild::run(db, tenant).await,
        Command::Stats { exact, json } => stats::run(db, exact, json).await,
        Command::Migrate => migrate(db).await,
        Command::Resplit { from, to, tenant } => {
            let store = connect::connect(db, 1).await?;
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
        Command::ForgetSubject { tenant, subject } => {
            personal::forget_subject(db, tenant, &subject).await
        }
        Command::PurgeTenant { tenant, yes } => personal::purge_tenant(db, tenant, yes).await,
        Command::Worker { .. } => unreachable!("run_worker handles it"),
    }
}

/// `forgeerp worker`: the file's settings, with `--metrics` and the
/// database of `--database-url` / `DATABASE_URL` winning over them.
async fn run_worker(
    url: Option<&str>,
    config: Option<PathBuf>,
    metrics: Option<std::net::SocketAddr>,
) -> Result<(), CliError> {
    let mut file = worker::read_config(config.as_deref())?;
    if metrics.is_some() {
        file.metrics = metrics;
    }
    let path = config
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let from_file = file.database_url.as_deref().map(|url| (url, path.as_str()));
    let database = connect::Database::choose(url, from_file)?;
    worker::run(&database, file).await
}

/// `forgeerp migrate`: one line saying what it found and did.
async fn migrate(db: &connect::Database) -> Result<(), CliError> {
    let store = connect::connect(db, 1).await?;
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

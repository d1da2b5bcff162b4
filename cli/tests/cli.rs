//! The `forgeerp` binary against the private cluster of `scripts/setup.sh`:
//! each test in a database of its own.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn admin() -> postgres_admin::Admin {
    postgres_admin::Admin::new()
}

mod postgres_admin {
    //! Creating (with `forgeerp-test-fixtures`) and inspecting test databases,
    //! with tokio-postgres on a small runtime of its own.

    use forgeerp_test_fixtures::{database_name, fresh_database, url, Install};

    pub struct Admin {
        runtime: tokio::runtime::Runtime,
    }

    impl Admin {
        pub fn new() -> Self {
            Admin {
                runtime: tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap(),
            }
        }

        /// `db` as the binary takes it in `DATABASE_URL`.
        pub fn url(&self, db: &str) -> String {
            url(db)
        }

        /// Rows of `sql` in `db`, every column as text.
        pub fn query(&self, db: &str, sql: &str) -> Vec<Vec<Option<String>>> {
            let url = self.url(db);
            self.runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("the private cluster runs (scripts/setup.sh)");
                tokio::spawn(connection);
                let messages = client.simple_query(sql).await.unwrap();
                messages
                    .into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                            (0..row.len())
                                .map(|i| row.get(i).map(str::to_string))
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect()
            })
        }

        /// A fresh database named `forgeerp_cli_test_<pid>_<suffix>`, with the
        /// extension when `extension`.
        pub fn fresh(&self, suffix: &str, extension: bool) -> String {
            let name = database_name("forgeerp_cli_test", &format!("_{suffix}"));
            let install = if extension {
                Install::Current
            } else {
                Install::Nothing
            };
            self.runtime.block_on(fresh_database(&name, install));
            name
        }
    }
}

fn forgeerp(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forgeerp"))
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("FORGEERP_LOG")
        .output()
        .expect("run forgeerp")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What `forgeerp demo` must print, tenant by tenant: the stock table and
/// the insights (without their wall-clock time).
const DEMO_FIGURES: &str = "\
== Acme Hardware
BOLT-M8   M8 hex bolt          1190         0       1190
NUT-M8    M8 hex nut            932         0        932
WSH-8     8 mm washer          1151         0       1151
DRL-6     6 mm drill bit       1163         0       1163
insights: 1
  [high] NUT-M8 unusual_outflow: 240 units left unannounced, where 11.4 are usual (from the 23 outflows around it; dispersion 0.00): probability 1.3e-187
== Northwind Tools
BOLT-M8   M8 hex bolt           997         0        997
NUT-M8    M8 hex nut           1161         0       1161
WSH-8     8 mm washer          1139         0       1139
DRL-6     6 mm drill bit       4169         0       4169
insights: 2
  [high] BOLT-M8 unusual_outflow: 180 units left unannounced, where 11.2 are usual (from the 19 outflows around it; dispersion 0.00): probability 1.5e-123
  [high] DRL-6 unusual_inflow: 3000 units arrived, where receipts of about 341 are usual (4 other receipts; 6 days of outflows at 469.0 a day): probability 3.0e-15
";

/// The demo's tenant sections: names (without their random ids), stock rows
/// and insights, each insight without its " on <time> UTC".
fn demo_figures(stdout: &str) -> String {
    let mut figures = String::new();
    for line in stdout.lines() {
        let line = if let Some(name) = line.strip_prefix("== ") {
            format!("== {}", name.split(" (tenant").next().unwrap_or(name))
        } else if line.starts_with("  [") {
            match (line.find(" on "), line.find(" UTC,")) {
                (Some(on), Some(utc)) => format!("{}{}", &line[..on], &line[utc + 4..]),
                _ => line.to_string(),
            }
        } else if line.starts_with("insights: ")
            || ["BOLT-M8 ", "NUT-M8 ", "WSH-8 ", "DRL-6 "]
                .iter()
                .any(|s| line.starts_with(s))
        {
            line.to_string()
        } else {
            continue;
        };
        figures.push_str(&line);
        figures.push('\n');
    }
    figures
}

#[test]
fn demo_runs_end_to_end_twice_and_rebuild_matches_the_live_projection() {
    let admin = admin();
    let db = admin.fresh("demo", true);
    let url = admin.url(&db);
    for run in 1..=2 {
        let out = forgeerp(&url, &["demo"]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "run {run}: {}\n{stdout}",
            text(&out.stderr)
        );
        assert!(stdout.contains("== Acme Hardware"), "{stdout}");
        assert!(stdout.contains("== Northwind Tools"), "{stdout}");
        assert!(
            stdout.contains("NUT-M8 unusual_outflow: 240 units left"),
            "{stdout}"
        );
        assert!(
            stdout.contains("BOLT-M8 unusual_outflow: 180 units left"),
            "{stdout}"
        );
        assert!(
            stdout.contains("DRL-6 unusual_inflow: 3000 units arrived"),
            "{stdout}"
        );
        assert_eq!(stdout.matches("insights: ").count(), 2);
        // The stock table: four items per tenant, every one with a number on hand.
        let rows = stdout
            .lines()
            .filter(|l| {
                ["BOLT-M8 ", "NUT-M8 ", "WSH-8 ", "DRL-6 "]
                    .iter()
                    .any(|s| l.starts_with(s))
            })
            .count();
        assert_eq!(rows, 8, "{stdout}");
        // The whole story is deterministic (a seeded generator, a fixed
        // order of commands): every figure of both tenants is pinned.
        assert_eq!(demo_figures(&stdout), DEMO_FIGURES, "run {run}:\n{stdout}");
    }
    // Two runs, four tenants, each with its own insights.
    let tenants = admin.query(
        &db,
        "SELECT count(DISTINCT tenant_id) FROM forgeerp_inventory.ai_insights",
    );
    assert_eq!(tenants[0][0].as_deref(), Some("4"));

    let live_sql = "SELECT tenant_id, key, value - 'updated_at' FROM forgeerp_read.entries WHERE model = 'inventory_stock' ORDER BY 1, 2";
    let history_sql = "SELECT h.tenant_id, h.aggregate_id, h.first_sequence + p.i - 1, p.h, p.r
                         FROM forgeerp_inventory.stock_history_runs h, unnest(h.on_hand, h.reserved) WITH ORDINALITY p (h, r, i) ORDER BY 1, 2, 3";
    let (live, live_history) = (admin.query(&db, live_sql), admin.query(&db, history_sql));
    assert_eq!(live.len(), 16);
    let out = forgeerp(&url, &["rebuild", "--all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("4 tenant(s)"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(admin.query(&db, live_sql), live, "rebuild equals live");
    assert_eq!(admin.query(&db, history_sql), live_history);
}

#[test]
fn tail_picks_up_a_new_append_and_resumes_from_its_checkpoint() {
    let admin = admin();
    let db = admin.fresh("tail", true);
    let url = admin.url(&db);
    let tenant = "5b0c6a36-2d2a-4a57-8d2c-1f0e9a7b3c11";
    let checkpoint = std::env::temp_dir().join(format!("forgeerp-tail-{}", std::process::id()));
    let _ = std::fs::remove_file(&checkpoint);
    let append = |aggregate: &str, event_type: &str| {
        let out = forgeerp(
            &url,
            &[
                "append",
                "--tenant",
                tenant,
                "--type",
                "demo.thing",
                "--aggregate",
                aggregate,
                &format!(r#"[{{"event_type": "{event_type}", "payload": {{}}}}]"#),
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    append("0e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f", "Before");

    let mut tail = Command::new(env!("CARGO_BIN_EXE_forgeerp"))
        .args(["tail", "--tenant", tenant, "--limit", "2", "--checkpoint"])
        .arg(&checkpoint)
        .env("DATABASE_URL", &url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Lines arrive through a channel, each awaited at most 20 s: a broken
    // wake-up fails the test instead of hanging CI.
    let (sender, lines) = std::sync::mpsc::channel();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut next_line = |what: &str| match lines.recv_timeout(Duration::from_secs(20)) {
        Ok(line) => line,
        Err(_) => {
            let _ = tail.kill();
            panic!("tail printed no {what} line within 20 s");
        }
    };
    let first = next_line("first");
    assert!(first.contains(r#""event_type":"Before""#), "{first}");
    // A new append while it follows: woken, printed, done.
    let started = Instant::now();
    append("0e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f", "Live");
    let second = next_line("live");
    assert!(second.contains(r#""event_type":"Live""#), "{second}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(tail.wait().unwrap().success());

    // Resumed from the checkpoint file: only what came after.
    append("0e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f", "After");
    let out = forgeerp(
        &url,
        &[
            "tail",
            "--tenant",
            tenant,
            "--limit",
            "1",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1);
    assert!(stdout.contains(r#""event_type":"After""#), "{stdout}");
    let saved = std::fs::read_to_string(&checkpoint).unwrap();
    assert!(saved.trim().split_once(':').is_some(), "{saved}");
    let _ = std::fs::remove_file(&checkpoint);
}

/// `forgeerp append` to one stream of type `t`; `rest` is what follows `--aggregate`.
fn append(url: &str, tenant: &str, aggregate: &str, rest: &[&str]) -> Output {
    let mut args = vec![
        "append",
        "--tenant",
        tenant,
        "--type",
        "t",
        "--aggregate",
        aggregate,
    ];
    args.extend_from_slice(rest);
    forgeerp(url, &args)
}

/// One line that says what is wrong, then at most clap's pointer to --help.
fn assert_one_clear_line(out: &Output, code: i32, says: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.contains(says), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("forgeerp: "), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_input_an_unreachable_server_and_a_missing_extension_are_one_clear_line() {
    let admin = admin();
    let db = admin.fresh("errors", true);
    let url = admin.url(&db);
    let tenant = "5b0c6a36-2d2a-4a57-8d2c-1f0e9a7b3c11";
    let aggregate = "0e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f";

    let out = forgeerp(
        &url,
        &["load", "--tenant", "not-a-uuid", "--aggregate", aggregate],
    );
    assert_one_clear_line(&out, 2, "invalid value 'not-a-uuid' for '--tenant");
    let out = forgeerp(
        &url,
        &[
            "load",
            "--tenant",
            "00000000-0000-0000-0000-000000000000",
            "--aggregate",
            aggregate,
        ],
    );
    assert_one_clear_line(&out, 2, "non-nil uuid");
    let out = forgeerp(&url, &["tail", "--after", "7"]);
    assert_one_clear_line(&out, 2, "\"7\" is not a feed position");
    let out = append(&url, tenant, aggregate, &["{not json"]);
    assert_one_clear_line(&out, 2, "the events are not JSON");
    let out = append(&url, tenant, aggregate, &["--expected", "soon", "[]"]);
    assert_one_clear_line(
        &out,
        2,
        "--expected \"soon\" is not any, no-stream, exists or a version number",
    );
    // Refused by the database: its message, nothing stored.
    let out = append(
        &url,
        tenant,
        aggregate,
        &["--expected", "3", r#"[{"event_type": "E", "payload": {}}]"#],
    );
    // A conflict with the stored stream: exit code 3, the SQLSTATE last.
    assert_one_clear_line(&out, 3, "expected version 3, actual 0 (ES001)");
    let out = append(
        &url,
        tenant,
        aggregate,
        &[r#"[{"event_type": "", "payload": {}}]"#],
    );
    // ES003 is bad input: exit code 2, like the argument parser's refusals.
    assert_one_clear_line(&out, 2, "event_type");
    assert!(
        text(&out.stderr).trim_end().ends_with("(ES003)"),
        "{}",
        text(&out.stderr)
    );
    // The batch goes to forgeerp.append unchanged, so an unknown key is the
    // extension's ES003, not silently dropped (it was).
    let out = append(
        &url,
        tenant,
        aggregate,
        &[r#"[{"event_type": "E", "payload": {}, "bogus": 1}]"#],
    );
    assert_one_clear_line(&out, 2, "events[0] has an unknown key \"bogus\"");
    assert_eq!(
        admin.query(&db, "SELECT count(*) FROM forgeerp.events")[0][0].as_deref(),
        Some("0")
    );

    let out = forgeerp("postgresql://postgres@127.0.0.1:1/forgeerp", &["stats"]);
    assert_one_clear_line(&out, 1, "cannot reach PostgreSQL at 127.0.0.1:1 (database forgeerp, user postgres, sslmode prefer), from DATABASE_URL");
    let given = Command::new(env!("CARGO_BIN_EXE_forgeerp"))
        .args([
            "--database-url",
            "postgresql://postgres@127.0.0.1:1/forgeerp",
            "stats",
        ])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_one_clear_line(&given, 1, "from --database-url: ");
    // It was given: no advice to give it, nor to start the private cluster.
    let said = text(&given.stderr);
    assert!(
        !said.contains("pass --database-url") && !said.contains("setup.sh"),
        "{said}"
    );
    let out = forgeerp("postgresql://[bad", &["stats"]);
    assert_one_clear_line(&out, 2, "DATABASE_URL is not a usable connection string");
    // The argument parser's refusals are one line too.
    let out = forgeerp(&url, &["load", "--bogus"]);
    assert_one_clear_line(&out, 2, "unexpected argument '--bogus' found (see --help)");

    let bare = admin.fresh("bare", false);
    let out = forgeerp(&admin.url(&bare), &["stats"]);
    assert_one_clear_line(
        &out,
        1,
        "the forgeerp extension is not installed in database",
    );
    admin.query("postgres", &format!("DROP DATABASE {bare} WITH (FORCE)"));
}

#[test]
fn append_stores_every_field_of_the_batch_as_given() {
    let admin = admin();
    let db = admin.fresh("as_given", true);
    let url = admin.url(&db);
    let (tenant, aggregate) = (
        "5b0c6a36-2d2a-4a57-8d2c-1f0e9a7b3c11",
        "0e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f",
    );
    let out = append(
        &url,
        tenant,
        aggregate,
        &[
            r#"[{"event_type": "X", "payload": {"n": 1}, "occurred_at": "2020-01-01T00:00:00Z",
               "event_version": 3, "metadata": {"actor": "cli"},
               "event_id": "9d8f6a4e-5b1c-4c1e-8a3f-2b7d6e5c4a30"}]"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("2020-01-01T00:00:00"), "{printed}");
    let stored = admin.query(
        &db,
        "SELECT occurred_at = '2020-01-01T00:00:00Z', event_version, metadata->>'actor', event_id::text FROM forgeerp.events",
    );
    assert_eq!(
        stored,
        vec![vec![
            Some("t".to_string()),
            Some("3".to_string()),
            Some("cli".to_string()),
            Some("9d8f6a4e-5b1c-4c1e-8a3f-2b7d6e5c4a30".to_string())
        ]]
    );
}

#[test]
fn stats_counts_streams_events_and_projection_lag() {
    let admin = admin();
    let db = admin.fresh("stats", true);
    let url = admin.url(&db);
    let tenant = "5b0c6a36-2d2a-4a57-8d2c-1f0e9a7b3c11";
    for aggregate in [
        "0e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f",
        "1e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f",
    ] {
        let out = append(
            &url,
            tenant,
            aggregate,
            &[r#"[{"event_type": "A", "payload": {}}, {"event_type": "B", "payload": {}}]"#],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = forgeerp(&url, &["stats", "--exact"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("streams              2\n"), "{stdout}");
    assert!(stdout.contains("events               4\n"), "{stdout}");
    // Without --exact: the planner's estimates, labelled (exact here once
    // the table is analyzed: 4 rows, 2 aggregates).
    admin.query(&db, "ANALYZE forgeerp.events");
    let estimated = text(&forgeerp(&url, &["stats"]).stdout);
    assert!(
        estimated.contains("streams              2 (estimate)"),
        "{estimated}"
    );
    assert!(
        estimated.contains("events               4 (estimate)"),
        "{estimated}"
    );
    assert!(stdout.contains("notification queue"), "{stdout}");
    assert!(stdout.contains("no read models"), "{stdout}");
    // After a rebuild, a checkpoint-less model: still no projection checkpoint rows, but the schema exists.
    let out = forgeerp(&url, &["rebuild", "--tenant", tenant]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 tenant(s), 4 event(s)"),
        "{}",
        text(&out.stdout)
    );
    admin.query(&db, "INSERT INTO forgeerp_read.checkpoints (projection, tenant_key, transaction_id, global_position) VALUES ('inventory_stock', '*', 0, 0)");
    let stdout = text(&forgeerp(&url, &["stats", "--exact"]).stdout);
    assert!(
        stdout.contains("inventory_stock [*]  at 0:0  lag 4 event(s)  "),
        "{stdout}"
    );
    let stdout = text(&forgeerp(&url, &["stats"]).stdout);
    assert!(
        stdout.contains("inventory_stock [*]  at 0:0  lag 4 event(s) (estimate)"),
        "{stdout}"
    );
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    // `forgeerp demo | head -1`: the rest of the output goes nowhere, and no
    // panic message reaches the terminal.
    let admin = admin();
    let db = admin.fresh("pipe", true);
    let mut demo = Command::new(env!("CARGO_BIN_EXE_forgeerp"))
        .arg("demo")
        .env("DATABASE_URL", admin.url(&db))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(demo.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("dispatched"), "{first}");
    let out = demo.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A free loopback port for the worker's metrics.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP GET on loopback: (status, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((status, body))
}

#[test]
fn the_worker_service_applies_serves_metrics_and_stops_on_sigterm() {
    let admin = admin();
    let db = admin.fresh("worker", true);
    let url = admin.url(&db);
    let dir = std::env::temp_dir().join(format!("forgeerp-worker-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // A bad key is one line naming it, with exit code 2.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "pool_size = 4\n[stock_projection]\nbatchsize = 10\n").unwrap();
    let out = forgeerp(&url, &["worker", "--config", bad.to_str().unwrap()]);
    assert_one_clear_line(&out, 2, "unknown field `batchsize`");

    let port = free_port();
    let config = dir.join("worker.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../docker/worker.example.toml"),
        &config,
    )
    .expect("the example configuration");
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_forgeerp"))
        .args([
            "worker",
            "--config",
            config.to_str().unwrap(),
            "--metrics",
            &format!("127.0.0.1:{port}"),
        ])
        .env("DATABASE_URL", &url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let tenant = "5b0c6a36-2d2a-4a57-8d2c-1f0e9a7b3c11";
    let item = "0e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f";
    let out = forgeerp(
        &url,
        &[
            "append",
            "--tenant",
            tenant,
            "--type",
            "inventory.item",
            "--aggregate",
            item,
            r#"[{"event_type": "ItemCreated", "payload": {"sku": "S", "name": "N"}}, {"event_type": "StockReceived", "payload": {"quantity": 7}}]"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The worker leads, applies both events, and says so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let metrics = loop {
        if let Some((200, body)) = http_get(port, "/metrics") {
            if body.contains("forgeerp_projection_applied_total{projection=\"inventory_stock\",partition=\"0/1\"} 2")
            {
                break body;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never applied the events"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        metrics.contains(
            "forgeerp_projection_leader{projection=\"inventory_stock\",partition=\"0/1\"} 1"
        ),
        "{metrics}"
    );
    let on_hand = admin.query(
        &db,
        "SELECT value->>'on_hand' FROM forgeerp_read.entries WHERE model = 'inventory_stock'",
    );
    assert_eq!(on_hand[0][0].as_deref(), Some("7"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while http_get(port, "/health").map(|(status, _)| status) != Some(200) {
        assert!(std::time::Instant::now() < deadline, "never healthy");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        http_get(port, "/nothing").map(|(status, _)| status),
        Some(404)
    );

    // SIGTERM: the checkpoint is saved and the process exits 0 within 10 s.
    let stopped_at = std::time::Instant::now();
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped_at.elapsed() < std::time::Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(worker.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    let checkpoint = admin.query(
        &db,
        "SELECT global_position FROM forgeerp_read.checkpoints WHERE projection = 'inventory_stock'",
    );
    assert_eq!(checkpoint[0][0].as_deref(), Some("2"));

    // Drained and stopped: split the projection in two.
    let out = forgeerp(&url, &["resplit", "--from", "1", "--to", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 partition(s) -> 2"),
        "{}",
        text(&out.stdout)
    );
    let keys = admin.query(
        &db,
        "SELECT tenant_key || '@' || global_position FROM forgeerp_read.checkpoints WHERE projection = 'inventory_stock' ORDER BY 1",
    );
    assert_eq!(
        keys,
        [[Some("*#0/2@2".to_string())], [Some("*#1/2@2".to_string())]]
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A `forgeerp worker` process of the fault test, with its metrics port.
struct WorkerProcess {
    child: std::process::Child,
    port: u16,
}

impl WorkerProcess {
    fn start(url: &str) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_forgeerp"))
            .args([
                "worker",
                "--metrics",
                &format!("127.0.0.1:{port}"),
                "--log-format",
                "json",
            ])
            .env("DATABASE_URL", url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        WorkerProcess { child, port }
    }

    fn leads(&self) -> bool {
        http_get(self.port, "/metrics").is_some_and(|(_, body)| {
            body.contains(
                "forgeerp_projection_leader{projection=\"inventory_stock\",partition=\"0/1\"} 1",
            )
        })
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to `limit` for `condition`.
fn within(limit: Duration, what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Real worker processes under faults, while events are appended: two
/// started at the same instant on an empty checkpoint, the leader killed
/// with `kill -9` (a standby takes over within 5 s), every worker
/// connection killed with `pg_terminate_backend`, and the server stopped
/// with `-m immediate` and started again. At the end the read model equals
/// a rebuild from the streams, and every event was applied once.
#[test]
fn worker_processes_survive_kill_9_terminated_connections_and_an_immediate_stop() {
    let admin = admin();
    let db = admin.fresh("worker_faults", true);
    let url = admin.url(&db);
    let tenant = "7b0c6a36-2d2a-4a57-8d2c-1f0e9a7b3c11";
    let items: Vec<String> = (1..=4)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    for item in &items {
        admin.query(&db, &format!(
            "SELECT 1 FROM forgeerp.append('{tenant}', 'inventory.item', '{item}', 0,
               '[{{\"event_type\": \"ItemCreated\", \"payload\": {{\"sku\": \"S\", \"name\": \"N\"}}}}]')"
        ));
    }
    // Two workers started at the same instant, on an empty checkpoint.
    let mut workers = vec![WorkerProcess::start(&url), WorkerProcess::start(&url)];
    within(Duration::from_secs(10), "one worker leads", || {
        workers.iter().filter(|w| w.leads()).count() == 1
    });

    // Receipts all along, ten per statement, across the faults.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, db, items, tenant) =
            (stop.clone(), db.clone(), items.clone(), tenant.to_string());
        std::thread::spawn(move || {
            let admin = postgres_admin::Admin::new();
            let mut round = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let item = &items[round % items.len()];
                let sql = format!(
                    "SELECT count(*) FROM generate_series(1, 10), LATERAL forgeerp.append('{tenant}', 'inventory.item', '{item}', NULL,
                       '[{{\"event_type\": \"StockReceived\", \"payload\": {{\"quantity\": 1}}}}]')"
                );
                // The server may be down for a moment (below): that statement did not happen.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    admin.query(&db, &sql)
                }));
                round += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(700));

    // kill -9 of the leader: the standby takes over within 5 s.
    let leader = workers.iter().position(WorkerProcess::leads).unwrap();
    let mut killed = workers.remove(leader);
    unsafe { libc::kill(killed.child.id() as i32, libc::SIGKILL) };
    killed.child.wait().unwrap();
    within(Duration::from_secs(5), "the standby takes over", || {
        workers[0].leads()
    });
    workers.push(WorkerProcess::start(&url));
    std::thread::sleep(Duration::from_millis(700));

    // Every connection of the workers killed.
    admin.query(
        "postgres",
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = '{db}' AND backend_type = 'client backend'"
        ),
    );
    within(Duration::from_secs(10), "a worker leads again", || {
        workers.iter().filter(|w| w.leads()).count() == 1
    });
    std::thread::sleep(Duration::from_millis(700));

    // The server stopped with -m immediate, then started again.
    let pgdata = std::env::var("FORGEERP_PGDATA")
        .expect("FORGEERP_PGDATA names the private cluster (source scripts/env.sh)");
    for args in [
        vec!["-D", &pgdata, "-w", "-m", "immediate", "stop"],
        vec![
            "-D",
            &pgdata,
            "-w",
            "start",
            "-l",
            &format!("{pgdata}/server.log"),
        ],
    ] {
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl"])
            .args(&args)
            .env("RUST_BACKTRACE", "full")
            .current_dir("/")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl {args:?}");
    }
    within(
        Duration::from_secs(15),
        "a worker leads after the restart",
        || workers.iter().filter(|w| w.leads()).count() == 1,
    );
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();

    // Caught up: the checkpoint at the feed's last event.
    within(Duration::from_secs(20), "the projection catches up", || {
        let last = admin.query(&db, "SELECT transaction_id || ':' || global_position FROM forgeerp.events ORDER BY transaction_id DESC, global_position DESC LIMIT 1");
        let at = admin.query(&db, "SELECT transaction_id || ':' || global_position FROM forgeerp_read.checkpoints WHERE projection = 'inventory_stock'");
        !at.is_empty() && at[0][0] == last[0][0]
    });
    drop(workers);

    // Every receipt once: on hand per item is the number of its receipts.
    let on_hand = admin.query(&db, "SELECT key, value->>'on_hand' FROM forgeerp_read.entries WHERE model = 'inventory_stock' ORDER BY 1");
    let receipts = admin.query(
        &db,
        &format!(
            "SELECT aggregate_id::text, count(*)::text FROM forgeerp.events
          WHERE tenant_id = '{tenant}' AND event_type = 'StockReceived' GROUP BY 1 ORDER BY 1"
        ),
    );
    assert_eq!(on_hand, receipts, "every event applied once");
    assert!(receipts.len() == 4, "{receipts:?}");
    // And the read model equals a rebuild from the streams.
    let live_sql = "SELECT tenant_id, key, value - 'updated_at' FROM forgeerp_read.entries WHERE model = 'inventory_stock' ORDER BY 1, 2";
    let history_sql = "SELECT h.tenant_id, h.aggregate_id, h.first_sequence + p.i - 1, p.h, p.r
                         FROM forgeerp_inventory.stock_history_runs h, unnest(h.on_hand, h.reserved) WITH ORDINALITY p (h, r, i) ORDER BY 1, 2, 3";
    let (live, live_history) = (admin.query(&db, live_sql), admin.query(&db, history_sql));
    let out = forgeerp(&url, &["rebuild", "--all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(admin.query(&db, live_sql), live, "rebuild equals live");
    assert_eq!(admin.query(&db, history_sql), live_history);
}

#[test]
fn conflicts_exit_3_in_the_servers_words() {
    let admin = admin();
    let db = admin.fresh("conflicts", true);
    let url = admin.url(&db);
    let (tenant, aggregate) = (
        "5b0c6a36-2d2a-4a57-8d2c-1f0e9a7b3c11",
        "0e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f",
    );
    let batch = r#"[{"event_type": "E", "payload": {"n": 1}, "event_id": "9d8f6a4e-5b1c-4c1e-8a3f-2b7d6e5c4a30"}]"#;
    assert!(append(&url, tenant, aggregate, &[batch]).status.success());
    // The same event id with other content: ES004.
    let reused = r#"[{"event_type": "E", "payload": {"n": 2}, "event_id": "9d8f6a4e-5b1c-4c1e-8a3f-2b7d6e5c4a30"}]"#;
    let out = append(&url, tenant, aggregate, &[reused]);
    assert_one_clear_line(&out, 3, "9d8f6a4e-5b1c-4c1e-8a3f-2b7d6e5c4a30");
    assert!(
        text(&out.stderr).trim_end().ends_with("(ES004)"),
        "{}",
        text(&out.stderr)
    );
    // Another aggregate type: ES005 says which type the stream has.
    let out = forgeerp(
        &url,
        &[
            "append",
            "--tenant",
            tenant,
            "--type",
            "sales.order",
            "--aggregate",
            aggregate,
            r#"[{"event_type": "E", "payload": {}}]"#,
        ],
    );
    assert_one_clear_line(
        &out,
        3,
        &format!("aggregate {aggregate} is a \"t\", not a \"sales.order\" (ES005)"),
    );
    assert_eq!(
        admin.query(&db, "SELECT count(*) FROM forgeerp.events")[0][0].as_deref(),
        Some("1")
    );
    // A stream that does not exist: nothing printed, exit 0 (like psql).
    let out = forgeerp(
        &url,
        &[
            "load",
            "--tenant",
            tenant,
            "--aggregate",
            "7e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn help_names_the_database_order_and_the_exit_codes() {
    let out = forgeerp("postgresql://unused@127.0.0.1:1/x", &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for says in [
        "--database-url, else DATABASE_URL, else the libpq variables (PGHOST",
        "2 bad input",
        "3 a conflict",
        "ES005",
    ] {
        assert!(help.contains(says), "{says}: {help}");
    }
    let load = text(&forgeerp("postgresql://unused@127.0.0.1:1/x", &["load", "--help"]).stdout);
    assert!(
        load.contains("does not exist prints nothing and exits 0"),
        "{load}"
    );
    let rebuild = forgeerp("postgresql://unused@127.0.0.1:1/x", &["rebuild"]);
    assert_one_clear_line(&rebuild, 2, "--all");
}

#[test]
fn the_database_comes_from_the_libpq_variables_when_no_url_is_given() {
    let admin = admin();
    let db = admin.fresh("libpq", true);
    let port = std::env::var("FORGEERP_PGPORT").unwrap_or_else(|_| "28815".into());
    let run = |port: &str| {
        Command::new(env!("CARGO_BIN_EXE_forgeerp"))
            .args(["stats", "--json"])
            .env_remove("DATABASE_URL")
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", port)
            .env("PGDATABASE", &db)
            .env("PGUSER", "postgres")
            .env("PGSSLMODE", "require")
            .output()
            .unwrap()
    };
    let out = run(&port);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["events"], 0, "{stats}");
    // What was tried is named, and where it came from.
    let out = run("1");
    assert_one_clear_line(
        &out,
        1,
        &format!("cannot reach PostgreSQL at 127.0.0.1:1 (database {db}, user postgres, sslmode require), from the libpq variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGSSLMODE)"),
    );
}

#[test]
fn append_reads_a_full_batch_from_stdin_or_a_file() {
    let admin = admin();
    let db = admin.fresh("stdin", true);
    let url = admin.url(&db);
    let tenant = "5b0c6a36-2d2a-4a57-8d2c-1f0e9a7b3c11";
    let most = forgeerp_infra::contract::Limits::DEFAULT.max_batch_events;
    let batch = serde_json::Value::Array(
        (0..most)
            .map(|n| serde_json::json!({"event_type": "E", "payload": {"n": n}}))
            .collect(),
    )
    .to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_forgeerp"))
        .args([
            "append",
            "--tenant",
            tenant,
            "--type",
            "t",
            "--aggregate",
            "0e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f",
            "-",
        ])
        .env("DATABASE_URL", &url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(batch.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), most);

    let file = std::env::temp_dir().join(format!("forgeerp-batch-{}.json", std::process::id()));
    std::fs::write(&file, r#"[{"event_type": "FromFile", "payload": {}}]"#).unwrap();
    let out = append(
        &url,
        tenant,
        "1e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f",
        &[&format!("@{}", file.display())],
    );
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(r#""event_type":"FromFile""#));
    let out = append(
        &url,
        tenant,
        "1e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f",
        &["@/nonexistent/batch.json"],
    );
    assert_one_clear_line(
        &out,
        2,
        "cannot read the events from /nonexistent/batch.json",
    );
    assert_eq!(
        admin.query(&db, "SELECT count(*) FROM forgeerp.events")[0][0].as_deref(),
        Some((most + 1).to_string().as_str())
    );
}

/// A `forgeerp tail` process and its output lines, each awaited at most 20 s.
struct Tailing {
    child: std::process::Child,
    stdout: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Tailing {
    fn start(url: &str, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_forgeerp"))
            .arg("tail")
            .args(args)
            .env("DATABASE_URL", url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = |pipe: Box<dyn std::io::Read + Send>| {
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
            receiver
        };
        let stdout = lines(Box::new(child.stdout.take().unwrap()));
        let stderr = lines(Box::new(child.stderr.take().unwrap()));
        Tailing {
            child,
            stdout,
            stderr,
        }
    }

    fn line(&mut self, of: &str, what: &str) -> String {
        let from = if of == "stdout" {
            &self.stdout
        } else {
            &self.stderr
        };
        match from.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = self.child.kill();
                panic!("tail printed no {what} line on {of} within 20 s");
            }
        }
    }
}

#[test]
fn tail_from_now_says_when_it_loses_and_regains_the_connection_and_gives_up() {
    let admin = admin();
    let db = admin.fresh("tail_link", true);
    let url = admin.url(&db);
    let tenant = "5b0c6a36-2d2a-4a57-8d2c-1f0e9a7b3c11";
    let aggregate = "0e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f";
    let put = |event_type: &str| {
        let out = append(
            &url,
            tenant,
            aggregate,
            &[&format!(
                r#"[{{"event_type": "{event_type}", "payload": {{}}}}]"#
            )],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    put("Past");
    let mut tail = Tailing::start(&url, &["--from-now", "--give-up-after", "2"]);
    // Its subscription is connected once it is listening.
    let listening = || {
        admin.query(&db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'forgeerp-subscription'")[0][0]
            .as_deref()
            == Some("1")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !listening() {
        assert!(Instant::now() < deadline, "tail never connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    put("Now");
    let line = tail.line("stdout", "first");
    assert!(
        line.contains(r#""event_type":"Now""#),
        "the past is skipped: {line}"
    );

    admin.query(&db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'forgeerp-subscription'");
    let lost = tail.line("stderr", "lost");
    assert!(
        lost.starts_with("forgeerp: lost the connection to 127.0.0.1:"),
        "{lost}"
    );
    let back = tail.line("stderr", "reconnected");
    assert!(
        back.starts_with("forgeerp: connected again to 127.0.0.1:"),
        "{back}"
    );
    put("AfterReconnect");
    let line = tail.line("stdout", "after the reconnection");
    assert!(line.contains(r#""event_type":"AfterReconnect""#), "{line}");

    // The database goes away for good: tail gives up with exit code 1.
    admin.query("postgres", &format!("DROP DATABASE {db} WITH (FORCE)"));
    let lost = tail.line("stderr", "lost for good");
    assert!(lost.contains("lost the connection"), "{lost}");
    let gone = tail.line("stderr", "gave up");
    assert!(
        gone.starts_with("forgeerp: the database at 127.0.0.1:")
            && gone.contains("is gone: no connection for 2 s"),
        "{gone}"
    );
    let status = tail.child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
}

#[test]
fn rebuild_names_the_event_it_cannot_apply_and_moves_the_checkpoint() {
    let admin = admin();
    let db = admin.fresh("rebuild", true);
    let url = admin.url(&db);
    let tenant = "5b0c6a36-2d2a-4a57-8d2c-1f0e9a7b3c11";
    let item = "0e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f";
    let item_event = |events: &str| {
        forgeerp(
            &url,
            &[
                "append",
                "--tenant",
                tenant,
                "--type",
                "inventory.item",
                "--aggregate",
                item,
                events,
            ],
        )
    };
    let out = item_event(
        r#"[{"event_type": "ItemCreated", "payload": {"sku": "S-1", "name": "Bolt"}},
                             {"event_type": "StockReceived", "payload": {"quantity": 5}}]"#,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = forgeerp(&url, &["rebuild", "--all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // stats shows the checkpoint the rebuild wrote: nothing behind.
    let stats: serde_json::Value =
        serde_json::from_slice(&forgeerp(&url, &["stats", "--json", "--exact"]).stdout).unwrap();
    let all = stats["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["tenant"] == "*")
        .unwrap_or_else(|| panic!("no checkpoint for every tenant: {stats}"));
    assert_eq!(all["projection"], "inventory_stock");
    assert_eq!(all["lag_events"], 0, "{stats}");
    assert_eq!(stats["events"], 2);
    assert_eq!(stats["estimated"], false);

    // An event the projection cannot read: named, and nothing rebuilt.
    let out = item_event(r#"[{"event_type": "StockReceived", "payload": {"quantity": "many"}}]"#);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = admin.query(
        &db,
        "SELECT value::text FROM forgeerp_read.entries WHERE model = 'inventory_stock'",
    );
    let out = forgeerp(&url, &["rebuild", "--tenant", tenant]);
    assert_one_clear_line(
        &out,
        1,
        &format!("cannot apply event 3 of stream {item} of tenant {tenant}: "),
    );
    assert_eq!(
        admin.query(
            &db,
            "SELECT value::text FROM forgeerp_read.entries WHERE model = 'inventory_stock'"
        ),
        before
    );
}

#[test]
fn load_prints_events_at_their_current_version_and_refuses_newer_ones() {
    let admin = admin();
    let db = admin.fresh("versions", true);
    let url = admin.url(&db);
    let (tenant, item) = (
        "5b0c6a36-2d2a-4a57-8d2c-1f0e9a7b3c11",
        "0e8c1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f",
    );
    let put = |events: &str| {
        let out = forgeerp(
            &url,
            &[
                "append",
                "--tenant",
                tenant,
                "--type",
                "inventory.item",
                "--aggregate",
                item,
                events,
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    put(r#"[{"event_type": "StockReceived", "payload": {"quantity": 4}}]"#);
    let out = forgeerp(&url, &["load", "--tenant", tenant, "--aggregate", item]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let event: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(event["event_version"], 2, "{event}");
    assert_eq!(
        event["payload"],
        serde_json::json!({"quantity": 4, "lot": null})
    );
    // Stored as written: version 1, no lot.
    assert_eq!(
        admin.query(
            &db,
            "SELECT event_version, payload::text FROM forgeerp.events"
        )[0],
        vec![
            Some("1".to_string()),
            Some(r#"{"quantity": 4}"#.to_string())
        ]
    );
    put(r#"[{"event_type": "StockReceived", "event_version": 9, "payload": {"quantity": 1}}]"#);
    let out = forgeerp(&url, &["load", "--tenant", tenant, "--aggregate", item]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(
        said.contains(
            "is StockReceived version 9, but this application knows it only up to version 2"
        ),
        "{said}"
    );
}

#[test]
fn load_opens_personal_data_with_the_master_key_and_purge_tenant_needs_yes() {
    use forgeerp_infra::{
        EventStore, ExpectedVersion, MasterKey, PersonalData, PgKeyStore, UncommittedEvent,
    };
    let admin = admin();
    let db = admin.fresh("personal", true);
    let url = admin.url(&db);
    assert!(forgeerp(&url, &["migrate"]).status.success());
    let (tenant, item) = (
        forgeerp_infra::TenantId::random(),
        forgeerp_infra::AggregateId::random(),
    );
    let (master, master_text) = MasterKey::generate();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = forgeerp_infra::PgEventStore::connect(&url, 2).unwrap();
        let personal = PersonalData::new(
            forgeerp_infra::inventory::personal_data_policy(),
            PgKeyStore::new(store.pool().clone()),
            master,
        );
        let mut events = vec![UncommittedEvent::new(
            tenant,
            "inventory.item",
            item,
            "CustomItemCreated",
            serde_json::json!({"sku": "R-1", "name": "Ring for Jane Doe", "customer_id": "c-jane"}),
        )];
        personal.seal(&mut events).await.unwrap();
        store
            .append(events, ExpectedVersion::NoStream)
            .await
            .unwrap();
    });
    let (tenant, item) = (tenant.to_string(), item.to_string());
    let load = |key: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_forgeerp"));
        command
            .args(["load", "--tenant", &tenant, "--aggregate", &item])
            .env("DATABASE_URL", &url);
        match key {
            Some(key) => command.env("FORGEERP_MASTER_KEY", key),
            None => command.env_remove("FORGEERP_MASTER_KEY"),
        };
        command.output().unwrap()
    };
    let sealed = text(&load(None).stdout);
    assert!(
        sealed.contains("forgeerp:sealed") && !sealed.contains("Jane"),
        "{sealed}"
    );
    let clear = text(&load(Some(&master_text)).stdout);
    assert!(clear.contains("Ring for Jane Doe"), "{clear}");
    let wrong = load(Some(&MasterKey::generate().1));
    assert_one_clear_line(&wrong, 1, "wrong master key");
    assert_one_clear_line(&load(Some("short")), 2, "FORGEERP_MASTER_KEY");

    let forgot = forgeerp(
        &url,
        &["forget-subject", "--tenant", &tenant, "--subject", "c-jane"],
    );
    assert!(
        text(&forgot.stdout).contains("forgotten"),
        "{}",
        text(&forgot.stderr)
    );
    let again = forgeerp(
        &url,
        &["forget-subject", "--tenant", &tenant, "--subject", "c-jane"],
    );
    assert!(text(&again.stdout).contains("nothing to forget"));
    let redacted = text(&load(Some(&master_text)).stdout);
    assert!(
        redacted.contains("\"name\":\"[forgotten]\"") && !redacted.contains("Jane"),
        "{redacted}"
    );

    let refused = forgeerp(&url, &["purge-tenant", "--tenant", &tenant]);
    assert_one_clear_line(&refused, 2, "pass --yes");
    assert!(
        !text(&load(None).stdout).is_empty(),
        "nothing removed without --yes"
    );
    let purged = forgeerp(&url, &["purge-tenant", "--tenant", &tenant, "--yes"]);
    assert!(purged.status.success(), "{}", text(&purged.stderr));
    let said = text(&purged.stdout);
    assert!(
        said.contains("purged") && said.contains("events               1"),
        "{said}"
    );
    assert!(text(&load(None).stdout).is_empty());
}

//! kill -9 at seeded-random moments, aimed at intake (a spool file being taken), polling
//! (queries in flight) and finalization (orders being finalized), over many orders fed
//! continuously through the spool; every restart uses the same state directory.
//!
//! The judge is what the daemon commits, not its counters (counters reset with each
//! process, and an order finalized just before a kill may be lost from them by design):
//! each finalized order is logged once (`order finalized`, after its commit), so across
//! all runs' logs every order of the simulator's truth must appear at most once, with
//! the truth's outcome; at the end nothing is pending, the spool is empty, and every id
//! dropped again is a duplicate (so each one is in the committed finalized set: none
//! lost). Counters never exceed the truth.
//!
//! Size: `CRASH_ORDERS` (default 360), `CRASH_KILLS` (default 5), `CRASH_SEED` (default:
//! from the clock, printed; a failure prints the command that replays it and keeps the
//! runs' logs and state; `CRASH_KEEP=1` keeps them always). The larger run is documented
//! in the README: `CRASH_ORDERS=4000 CRASH_KILLS=40 cargo nextest run --test crash --no-capture`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Orders per spool file (the last id of every fourth file is never sent: `not_found`).
const PER_FILE: usize = 20;

/// splitmix64: enough randomness for kill moments, replayable from the seed without a
/// dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.between(lo, hi))
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Intake,
    Polling,
    Finalization,
}

/// One daemon process, its stdout and stderr written straight to a file by the kernel,
/// so that everything it wrote before a kill -9 is on disk once it is dead.
struct Daemon {
    child: Child,
    log_path: PathBuf,
    addr: SocketAddr,
}

impl Daemon {
    fn start(dir: &Path, config: &Path, addr: SocketAddr, run: usize) -> Daemon {
        let log_path = dir.join(format!("run-{run:03}.log"));
        let log = File::create(&log_path).unwrap();
        let child = Command::new(BIN)
            .args([
                "--log-format",
                "json",
                "--log-level",
                // The scheduler's debug lines name every early fact counted.
                "info,itnio_otp_exporter::scheduler::core=debug",
                "run",
                "--config",
            ])
            .arg(config)
            .env_remove("RUST_LOG")
            .env("TEST_ITNIO_SECRET", API_SECRET)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn the exporter");
        let daemon = Daemon {
            child,
            log_path,
            addr,
        };
        if !answers_ok(addr, "/readyz", Duration::from_secs(30)) {
            panic!("run {run}: exporter not ready:\n{}", daemon.log());
        }
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn metrics(&self) -> Metrics {
        metric::scrape(&format!("http://{}/metrics", self.addr))
            .unwrap_or_else(|e| panic!("scrape: {e}\n{}", self.log()))
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; the exit code once it has stopped.
    fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The JSON log lines of one run (a line cut short by the kill is skipped).
/// Every (order id, outcome) the daemon's journal lists with `filter`, page by page.
fn journal_orders(addr: SocketAddr, filter: &str) -> Vec<(String, String)> {
    let mut orders = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/orders?{filter}&limit=1000{cursor}");
        let (status, body) = get(addr, &path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(status, 200, "GET {path}: {body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        for o in page["orders"].as_array().into_iter().flatten() {
            let id = o["order_id"].as_str().unwrap_or_default().to_string();
            orders.push((id, o["outcome"].as_str().unwrap_or_default().to_string()));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return orders,
        }
    }
}

fn events(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

fn message(e: &serde_json::Value) -> &str {
    e["message"].as_str().unwrap_or("")
}

fn finalized_count(log: &str) -> usize {
    log.matches("\"order finalized\"").count()
}

/// The `spool file consumed` event of `file`, if logged.
fn consumed_event(log: &str, file: &str) -> Option<serde_json::Value> {
    events(log).into_iter().find(|e| {
        message(e) == "spool file consumed" && e["file"].as_str().is_some_and(|f| f.ends_with(file))
    })
}

/// One spool line's order.
struct Line {
    order_id: String,
    app_id: &'static str,
    sent: bool,
}

/// Sends the orders of each file through the simulator just before dropping the file,
/// as an issuing app would, on a steady schedule or on demand.
struct Feeder<'a> {
    sim: &'a Sim,
    spool: PathBuf,
    files: Vec<Vec<Line>>,
    next: usize,
    interval: Duration,
    next_due: Instant,
}

impl Feeder<'_> {
    fn all_dropped(&self) -> bool {
        self.next >= self.files.len()
    }

    /// Sends and drops the next file; its name.
    fn drop_next(&mut self) -> Option<String> {
        let lines = self.files.get(self.next)?;
        let name = format!("orders-{:04}", self.next);
        let mut text = String::new();
        for (i, line) in lines.iter().enumerate() {
            if line.sent {
                let prefix = ["91", "62", "55", "1", "44"][i % 5];
                let to = format!("{prefix}9{:08}", self.next * PER_FILE + i);
                self.sim.send(line.app_id, &to, &line.order_id);
            }
            // Both spool line forms: a bare id (default_app) and a JSON object.
            if line.app_id == "app-a" {
                writeln!(text, "{}", line.order_id).unwrap();
            } else {
                writeln!(
                    text,
                    r#"{{"orderId": "{}", "appId": "{}"}}"#,
                    line.order_id, line.app_id
                )
                .unwrap();
            }
        }
        drop_spool_file(&self.spool, &name, &text);
        self.next += 1;
        self.next_due = Instant::now() + self.interval;
        Some(name)
    }

    /// Drops the next file if it is due.
    fn tick(&mut self) {
        if !self.all_dropped() && Instant::now() >= self.next_due {
            self.drop_next();
        }
    }

    /// Sleeps `d`, feeding meanwhile.
    fn sleep(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.tick();
            std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
        }
    }
}

/// What one killed run saw.
struct Kill {
    run: usize,
    aimed: Phase,
    /// What the moment of the kill really was.
    landed: String,
    /// `otp_orders_total` at the run's last scrape.
    counted: f64,
    /// `order finalized` lines in the run's log.
    logged: usize,
}

#[test]
fn kill_9_at_random_moments_loses_nothing_and_finalizes_once() {
    let orders = env_number("CRASH_ORDERS", 360).max(PER_FILE as u64) as usize;
    let kills = env_number("CRASH_KILLS", 5).max(1) as usize;
    let seed = env_number(
        "CRASH_SEED",
        (unix_now() * 7919) ^ u64::from(std::process::id()),
    );
    let replay = format!("CRASH_SEED={seed} CRASH_ORDERS={orders} CRASH_KILLS={kills} cargo nextest run --test crash --no-capture");
    eprintln!("crash test: {orders} orders, {kills} kills; replay: {replay}");
    let wall = Instant::now();
    let mut rng = Rng(seed);

    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--seed", &seed.to_string(), "--time-scale", TIME_SCALE]);
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    // max_age is only a safety net here; 30 s keeps a slow CI machine from expiring orders
    // whose records are decidable.
    edit_config(&config, &[("max_age: 15s", "max_age: 30s")]);

    let n_files = orders.div_ceil(PER_FILE);
    let files: Vec<Vec<Line>> = (0..n_files)
        .map(|f| {
            let n = PER_FILE.min(orders - f * PER_FILE);
            (0..n)
                .map(|i| {
                    let sent = !(f % 4 == 3 && i + 1 == n);
                    Line {
                        order_id: if sent {
                            format!("crash-{f:04}-{i:02}")
                        } else {
                            format!("never-sent-{f:04}")
                        },
                        app_id: if i % 3 == 2 { "app-b" } else { "app-a" },
                        sent,
                    }
                })
                .collect()
        })
        .collect();
    let expected: BTreeSet<String> = files.iter().flatten().map(|l| l.order_id.clone()).collect();
    assert_eq!(expected.len(), orders, "order ids are unique");
    // Files arrive over about 2.5 s per kill, so that intake, polling and finalization
    // overlap all along.
    let interval = Duration::from_millis((kills as u64 * 2_500 / n_files as u64).clamp(20, 1_000));
    let mut feeder = Feeder {
        sim: &sim,
        spool: tmp.path().join("spool"),
        files,
        next: 0,
        interval,
        next_due: Instant::now(),
    };

    // Each phase at least once (in a seeded order), then seeded choices.
    let mut plan = vec![Phase::Intake, Phase::Polling, Phase::Finalization];
    for i in (1..plan.len()).rev() {
        plan.swap(i, rng.between(0, i as u64) as usize);
    }
    while plan.len() < kills {
        plan.push([Phase::Intake, Phase::Polling, Phase::Finalization][rng.between(0, 2) as usize]);
    }
    plan.truncate(kills);

    let mut logs: Vec<String> = Vec::new();
    let mut report: Vec<Kill> = Vec::new();
    // A file dropped just before an intake kill, and what happened to it: checked in the
    // next run's log.
    let mut intake_file: Option<(String, bool)> = None;
    for (run, aimed) in plan.iter().copied().enumerate() {
        let mut d = Daemon::start(tmp.path(), &config, addr, run);
        if let Some((file, present_at_kill)) = intake_file.take() {
            // The previous kill's file: re-read now; duplicates mean the kill landed
            // between its commit and its removal.
            let event = wait_for(Duration::from_secs(10), || consumed_event(&d.log(), &file));
            if let (Some(e), Some(last)) = (event, report.last_mut()) {
                let dup = e["duplicate"].as_u64().unwrap_or(0);
                if present_at_kill && dup > 0 {
                    last.landed = format!(
                        "{}: its {dup} orders were committed, the file not yet removed",
                        last.landed
                    );
                }
            }
        }
        // Let the run work a seeded while before aiming.
        let warm = rng.millis(300, 1_500);
        feeder.sleep(warm);
        let landed;
        let counted;
        match aimed {
            Phase::Intake => {
                counted = d.metrics().sum("otp_orders_total", &[]);
                match feeder.drop_next() {
                    Some(file) => {
                        // The daemon takes a file once it is 500 ms old: half the kills
                        // at a seeded moment around then, half the instant the file
                        // leaves the spool (its orders committed just before).
                        let dropped = Instant::now();
                        let path = feeder.spool.join(&file);
                        if rng.between(0, 1) == 0 {
                            let at = rng.millis(450, 750);
                            std::thread::sleep(at.saturating_sub(dropped.elapsed()));
                        } else {
                            let give_up = dropped + Duration::from_secs(5);
                            while path.exists() && Instant::now() < give_up {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                        d.kill9();
                        let ms = dropped.elapsed().as_millis();
                        let present = path.exists();
                        let handed = consumed_event(&d.log(), &file).is_some();
                        landed = match (present, handed) {
                            (true, _) => format!("intake: file still in the spool ({ms} ms after the drop)"),
                            (false, false) => format!("intake: file committed and removed, not yet logged as consumed ({ms} ms after the drop)"),
                            (false, true) => format!("intake: file consumed ({ms} ms after the drop)"),
                        };
                        intake_file = Some((file, present));
                    }
                    None => {
                        d.kill9();
                        landed = "intake: no file left to drop".into();
                    }
                }
            }
            Phase::Polling => {
                if let Some(file) = feeder.drop_next() {
                    wait_for(Duration::from_secs(10), || consumed_event(&d.log(), &file));
                }
                feeder.sleep(rng.millis(100, 1_200));
                let before = d.metrics();
                std::thread::sleep(Duration::from_millis(300));
                let at = d.metrics();
                d.kill9();
                counted = at.sum("otp_orders_total", &[]);
                let queried = at.sum("otp_exporter_api_requests_total", &[])
                    - before.sum("otp_exporter_api_requests_total", &[]);
                let pending = at.sum("otp_exporter_orders_pending", &[]);
                landed =
                    format!("polling: {queried} queries in the last 300 ms, {pending} pending");
            }
            Phase::Finalization => {
                counted = d.metrics().sum("otp_orders_total", &[]);
                let seen = finalized_count(&d.log());
                // Aim at the next finalization, as soon as its log line is out: the log
                // is looked at every 2 ms, so the kill lands while the batch is being
                // finalized or right after.
                let give_up = Instant::now() + Duration::from_secs(30);
                let mut hit = None;
                while hit.is_none() && Instant::now() < give_up {
                    std::thread::sleep(Duration::from_millis(2));
                    hit = (finalized_count(&d.log()) > seen).then_some(());
                }
                std::thread::sleep(rng.millis(0, 3));
                d.kill9();
                let after = finalized_count(&d.log());
                landed = match hit {
                    Some(()) => format!(
                        "finalization: killed after {} of this run's orders had been finalized",
                        after
                    ),
                    None => "finalization: none came within 30 s".into(),
                };
            }
        }
        let log = d.log();
        report.push(Kill {
            run,
            aimed,
            landed,
            // + 0.0: a sum of no series is -0.
            counted: counted + 0.0,
            logged: finalized_count(&log),
        });
        logs.push(log);
        drop(d);
        // Sometimes a file arrives while the daemon is down.
        if rng.between(0, 2) == 0 {
            feeder.drop_next();
        }
    }

    // The last run: the rest of the files, then until nothing is pending.
    let run = plan.len();
    let mut d = Daemon::start(tmp.path(), &config, addr, run);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_checks = 0;
    let last_metrics = loop {
        feeder.sleep(Duration::from_millis(500));
        let m = d.metrics();
        let spool_empty = std::fs::read_dir(&feeder.spool)
            .unwrap()
            .filter_map(Result::ok)
            .all(|e| !e.file_type().is_ok_and(|t| t.is_file()));
        if feeder.all_dropped() && spool_empty && m.sum("otp_exporter_orders_pending", &[]) == 0.0 {
            quiet_checks += 1;
        } else {
            quiet_checks = 0;
        }
        if quiet_checks >= 2 {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: orders still pending after 120 s ({replay}):\n{}",
            m.list("otp_exporter_orders_pending")
        );
    };
    assert_eq!(
        d.terminate(),
        Some(0),
        "seed {seed}: the last run's exit\n{}",
        d.log()
    );
    let last_log = d.log();
    let last_counted = last_metrics.sum("otp_orders_total", &[]);
    let last_logged = finalized_count(&last_log);
    logs.push(last_log);
    drop(d);

    // A check run: nothing left to resume, and every id dropped again is a duplicate
    // (already finalized in the committed state), none accepted, none counted.
    let mut check = Daemon::start(tmp.path(), &config, addr, run + 1);
    let mut again = String::new();
    for id in &expected {
        writeln!(again, "{id}").unwrap();
    }
    drop_spool_file(&feeder.spool, "again", &again);
    let consumed = wait_for(Duration::from_secs(20), || {
        consumed_event(&check.log(), "again")
    })
    .unwrap_or_else(|| {
        panic!(
            "seed {seed}: the check file was not consumed\n{}",
            check.log()
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    let check_metrics = check.metrics();
    let journal_final = journal_orders(check.addr, "state=final");
    let journal_pending = journal_orders(check.addr, "state=pending");
    assert_eq!(
        check.terminate(),
        Some(0),
        "seed {seed}: the check run's exit"
    );
    let check_log = check.log();
    let resumed = events(&check_log)
        .iter()
        .find(|e| message(e) == "pending orders loaded")
        .and_then(|e| e["resumed"].as_u64());

    // Every `order finalized` line of every run, by order id.
    let mut finalized: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for (run, log) in logs.iter().enumerate() {
        for e in events(log) {
            if message(&e) == "order finalized" {
                let id = e["order_id"].as_str().unwrap_or("").to_string();
                let outcome = e["outcome"].as_str().unwrap_or("").to_string();
                finalized.entry(id).or_default().push((run, outcome));
            }
        }
    }
    // Every `early signal counted` line of every run, by (order id, fact).
    let mut early: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (run, log) in logs.iter().enumerate() {
        for e in events(log) {
            if message(&e) == "early signal counted" {
                let id = e["order_id"].as_str().unwrap_or("").to_string();
                let fact = e["fact"].as_str().unwrap_or("").to_string();
                early.entry((id, fact)).or_default().push(run);
            }
        }
    }
    let last_sent_logged = early
        .iter()
        .filter(|((_, fact), runs)| fact == "sent" && runs.contains(&(logs.len() - 1)))
        .count();
    let truth = sim.truth();
    let truth_outcome: BTreeMap<&str, &str> = truth
        .orders
        .iter()
        .map(|o| (o.order_id.as_str(), &*o.outcome))
        .collect();

    let mut problems = Vec::new();
    // The journal: exactly one final entry per dropped order, with the outcome the
    // truth says (never-sent ids: not_found) and the one the run that counted it
    // logged; nothing pending.
    let mut entries: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, outcome) in &journal_final {
        entries
            .entry(id.as_str())
            .or_default()
            .push(outcome.as_str());
    }
    let journal_problems: Vec<String> = expected
        .iter()
        .filter_map(|id| {
            let want = truth_outcome
                .get(id.as_str())
                .copied()
                .unwrap_or("not_found");
            let logged: Vec<&str> = finalized.get(id).map_or(Vec::new(), |runs| {
                runs.iter().map(|(_, o)| o.as_str()).collect()
            });
            match entries.get(id.as_str()).map(Vec::as_slice) {
                Some([outcome]) if *outcome == want && logged.iter().all(|l| l == outcome) => None,
                other => Some(format!(
                    "{id}: journal {other:?}, truth {want}, logged {logged:?}"
                )),
            }
        })
        .chain(
            entries
                .keys()
                .filter(|id| !expected.contains(**id))
                .map(|id| format!("{id}: journaled final but never dropped")),
        )
        .collect();
    if !journal_problems.is_empty() {
        problems.push(format!(
            "{} orders whose journal entry is missing, repeated or differs: {:?}",
            journal_problems.len(),
            journal_problems.iter().take(10).collect::<Vec<_>>()
        ));
    }
    if !journal_pending.is_empty() {
        problems.push(format!(
            "{} journal entries still pending: {:?}",
            journal_pending.len(),
            journal_pending.iter().take(10).collect::<Vec<_>>()
        ));
    }
    let twice: Vec<_> = finalized
        .iter()
        .filter(|(_, runs)| runs.len() > 1)
        .collect();
    if !twice.is_empty() {
        problems.push(format!(
            "{} orders finalized more than once (run, outcome): {:?}",
            twice.len(),
            twice.iter().take(10).collect::<Vec<_>>()
        ));
    }
    let early_twice: Vec<_> = early.iter().filter(|(_, runs)| runs.len() > 1).collect();
    if !early_twice.is_empty() {
        problems.push(format!(
            "{} early facts counted more than once ((order, fact), runs): {:?}",
            early_twice.len(),
            early_twice.iter().take(10).collect::<Vec<_>>()
        ));
    }
    // Each attempt's result is a fact the truth knows; the early counts find most of
    // them (a run killed between a commit and its log lines loses those lines).
    let truth_results: usize = truth
        .orders
        .iter()
        .map(|o| o.attempts.iter().filter(|a| a.result != "pending").count())
        .sum();
    let early_results = early
        .keys()
        .filter(|(_, f)| f.starts_with("result "))
        .count();
    if early_results > truth_results || early_results * 10 < truth_results * 9 {
        problems.push(format!(
            "{early_results} attempt results counted early, the truth has {truth_results}"
        ));
    }
    let unexpected: Vec<_> = finalized
        .keys()
        .filter(|id| !expected.contains(*id))
        .collect();
    if !unexpected.is_empty() {
        problems.push(format!("finalized ids never dropped: {unexpected:?}"));
    }
    let sent = feeder.files.iter().flatten().filter(|l| l.sent).count();
    if truth.orders.len() != sent {
        problems.push(format!(
            "the truth has {} orders, {sent} were sent",
            truth.orders.len()
        ));
    }
    let mut wrong_outcome = Vec::new();
    for (id, runs) in &finalized {
        let want = truth_outcome
            .get(id.as_str())
            .copied()
            .unwrap_or("not_found");
        if runs.iter().any(|(_, got)| got != want) {
            wrong_outcome.push(format!("{id}: {runs:?}, truth {want}"));
        }
    }
    if !wrong_outcome.is_empty() {
        problems.push(format!(
            "{} orders finalized with another outcome than the truth's: {:?}",
            wrong_outcome.len(),
            wrong_outcome.iter().take(10).collect::<Vec<_>>()
        ));
    }
    // Lost: not in the committed state, i.e. accepted as new when dropped again. Each
    // duplicate is logged with its id, so the lost ones are named.
    let known: BTreeSet<String> = events(&check_log)
        .iter()
        .filter(|e| message(e) == "duplicate order id ignored")
        .filter_map(|e| e["order_id"].as_str().map(str::to_string))
        .collect();
    let lost: Vec<_> = expected.iter().filter(|id| !known.contains(*id)).collect();
    let duplicates = consumed["duplicate"].as_u64().unwrap_or(0);
    let accepted = consumed["accepted"].as_u64().unwrap_or(0);
    if !lost.is_empty() || accepted != 0 || duplicates != expected.len() as u64 {
        problems.push(format!(
            "{} orders lost from the state (dropped again, {accepted} of {} ids were accepted as new, {duplicates} were duplicates): {:?}",
            lost.len(),
            expected.len(),
            lost.iter().take(10).collect::<Vec<_>>()
        ));
    }
    if resumed != Some(0) {
        problems.push(format!(
            "the check run resumed {resumed:?} pending orders, want 0"
        ));
    }
    let check_counted = check_metrics.sum("otp_orders_total", &[]);
    if check_counted != 0.0 {
        problems.push(format!(
            "the check run counted {check_counted} orders, want 0"
        ));
    }
    // Orders whose commit landed right before a kill and whose log line did not: in the
    // committed state (not lost), out of the logs and counters by design.
    let unlogged: Vec<_> = expected
        .iter()
        .filter(|id| !finalized.contains_key(*id) && known.contains(*id))
        .collect();
    // Counters: never more than the truth, and exact in the run that was not killed.
    let counted: f64 = report.iter().map(|k| k.counted).sum::<f64>() + last_counted;
    if counted > expected.len() as f64 {
        problems.push(format!(
            "the runs counted {counted} orders, more than the {} dropped",
            expected.len()
        ));
    }
    let last_sent = last_metrics.sum("otp_orders_sent_total", &[]);
    if last_sent != last_sent_logged as f64 {
        problems.push(format!(
            "the last run counted {last_sent} orders sent and logged {last_sent_logged}"
        ));
    }
    if last_counted != last_logged as f64 {
        problems.push(format!(
            "the last run counted {last_counted} orders and logged {last_logged} finalized"
        ));
    }
    let leftovers: Vec<_> = std::fs::read_dir(&feeder.spool)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "quarantine")
        .collect();
    if !leftovers.is_empty() {
        problems.push(format!("left in the spool: {leftovers:?}"));
    }
    let quarantined: Vec<_> = std::fs::read_dir(tmp.path().join("spool/quarantine"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if !quarantined.is_empty() {
        problems.push(format!("quarantined: {quarantined:?}"));
    }

    let mut summary = format!(
        "{orders} orders ({sent} sent, {} never sent) in {n_files} files, {kills} kills, seed {seed}, {:.1} s\n",
        orders - sent,
        wall.elapsed().as_secs_f64()
    );
    for k in &report {
        writeln!(
            summary,
            "  run {}: aimed at {:?}; {}; counted {} / logged {} finalized",
            k.run, k.aimed, k.landed, k.counted, k.logged
        )
        .unwrap();
    }
    writeln!(
        summary,
        "  last run: counted {last_counted} / logged {last_logged}; finalized once: {}, twice or more: {}, \
         lost: {}, committed but not logged (killed between commit and log line): {}",
        finalized.values().filter(|r| r.len() == 1).count(),
        twice.len(),
        lost.len(),
        unlogged.len()
    )
    .unwrap();
    writeln!(
        summary,
        "  early facts: {} counted once, {} more than once; attempt results {early_results} of {truth_results}",
        early.values().filter(|r| r.len() == 1).count(),
        early_twice.len()
    )
    .unwrap();
    if !unlogged.is_empty() {
        writeln!(summary, "  committed but not logged: {unlogged:?}").unwrap();
    }
    if !problems.is_empty() || std::env::var_os("CRASH_KEEP").is_some() {
        // The runs' logs and the state, for whoever replays the failure.
        let kept = tmp.keep();
        writeln!(summary, "logs and state kept in {}", kept.display()).unwrap();
    }
    eprintln!("{summary}");
    assert!(
        problems.is_empty(),
        "seed {seed}: {}\n{summary}replay: {replay}",
        problems.join("\n")
    );
}

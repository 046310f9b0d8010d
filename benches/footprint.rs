//! Footprint bench: what the daemon costs the machine it shares, measured from outside
//! through the config and spool contracts (the real binary as a child process), each
//! figure next to its target, in one run.
//!
//! `cargo bench --bench footprint` prints one line per figure:
//!
//! - **throughput**: polls per second of the daemon against a minimal loopback record
//!   server (this bench re-run as a child process, hyper, scripted answers: a new
//!   record, unchanged twice, delivered, then verified and finalized) with about
//!   `FOOTPRINT_POLL_ORDERS` orders pending (a feeder replaces finalized ones), next
//!   to what a tight raw HTTP/1.1 client (keep-alive, 32 connections, no decoding)
//!   gets from the same server in windows taken in turn with the daemon's (the daemon
//!   held with SIGSTOP while the raw client runs); the ratio of their means is the
//!   figure (target ≥ 0.5);
//! - **CPU per poll**: the daemon's user + system time (`/proc/<pid>/stat`) over the
//!   same window, divided by its polls;
//! - **memory**: RSS per pending order with `FOOTPRINT_ORDERS` (default 1,000,000)
//!   pending, after intake and after a restart (target ≤ 200 B), polls held off by the
//!   configuration so that only tracking is measured;
//! - **intake** (spool lines per second, target ≥ 200k) and **restart to ready** with
//!   every order pending (target ≤ 2 s), and the state file's bytes per order;
//! - **/metrics** render time with 20,000 series (in-process `Metrics::render`, target
//!   ≤ 10 ms).
//!
//! Environment: `FOOTPRINT_ORDERS`, `FOOTPRINT_POLL_ORDERS` (default 50,000: orders
//! kept pending while the throughput is measured, enough that some are always due),
//! `FOOTPRINT_IN_FLIGHT` (the daemon's `api.max_in_flight`, default 64),
//! `FOOTPRINT_SKIP` (comma list of `throughput`, `memory`, `metrics`, and `http` for
//! the HTTP stacks' own line),
//! `FOOTPRINT_EXPORTER` (the daemon binary to run instead of this build's, to compare
//! two builds under the same bench).

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use itnio_otp_exporter::metrics::Metrics;
use itnio_otp_exporter::outcome::{AttemptResult, AttemptSample, Channel, OrderSamples, Outcome};

#[path = "common/mod.rs"]
mod scripted;

use scripted::{env_number, free_addr};

const EXPORTER: &str = env!("CARGO_BIN_EXE_itnio-otp-exporter");
const ROLE: &str = "FOOTPRINT_ROLE";

fn skipped(part: &str) -> bool {
    std::env::var("FOOTPRINT_SKIP").is_ok_and(|s| s.split(',').any(|p| p.trim() == part))
}

// ---------------------------------------------------------------------------------
// The minimal record server (a child process: its CPU is not the daemon's).

fn run_server(port: u16) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    scripted::serve_networks();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        scripted::serve(listener).await;
    });
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The record server's pid, for its CPU time.
static SERVER_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn start_server() -> (KillOnDrop, SocketAddr) {
    let addr = free_addr();
    let exe = std::env::current_exe().expect("this bench");
    let child = Command::new(exe)
        .env(ROLE, "server")
        .env("FOOTPRINT_PORT", addr.port().to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("server");
    SERVER_PID.store(child.id(), Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the record server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (KillOnDrop(child), addr)
}

// ---------------------------------------------------------------------------------
// The raw client: hyper's HTTP/1.1 client connection, keep-alive, the body read and
// dropped (no decoding, no signing, no state).

async fn raw_connection(addr: SocketAddr, until: Instant, worker: usize) -> u64 {
    use http_body_util::{BodyExt as _, Full};
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
    else {
        return 0;
    };
    tokio::spawn(connection);
    let host = addr.to_string();
    let mut done = 0u64;
    while Instant::now() < until {
        let body = format!(r#"{{"appId":"bench","orderId":"raw-{worker}-{done}"}}"#);
        let Ok(request) = hyper::Request::post("/otp/verification/orderId/record")
            .header("host", &host)
            .header("content-type", "application/json")
            .body(Full::new(hyper::body::Bytes::from(body)))
        else {
            return done;
        };
        let Ok(response) = sender.send_request(request).await else {
            return done;
        };
        if response.into_body().collect().await.is_err() {
            return done;
        }
        done += 1;
    }
    done
}

/// The same load through reqwest, configured as the daemon's `ApiClient` configures it
/// (keep-alive, no redirects), with nothing signed, decoded or kept: the ceiling of the
/// daemon's HTTP stack alone, between the raw client's and the daemon's rates.
fn reqwest_client_rate(addr: SocketAddr, seconds: u64) -> f64 {
    let Ok(client) = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(32)
        .build()
    else {
        return 0.0;
    };
    let url = format!("http://{addr}/otp/verification/orderId/record");
    closed_loop_rate(seconds, |worker, until| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let mut done = 0u64;
            while Instant::now() < until {
                let body = format!(r#"{{"appId":"bench","orderId":"rq-{worker}-{done}"}}"#);
                let Ok(response) = client.post(&url).body(body).send().await else {
                    break;
                };
                if response.bytes().await.is_err() {
                    break;
                }
                done += 1;
            }
            done
        }
    })
}

/// The same load through hyper-util's pooled client (what reqwest is built on, without
/// reqwest's layers): what a leaner `ApiClient` could reach.
fn pooled_client_rate(addr: SocketAddr, seconds: u64) -> f64 {
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    let Ok(uri) = format!("http://{addr}/otp/verification/orderId/record").parse::<hyper::Uri>()
    else {
        return 0.0;
    };
    // Built inside the runtime: the pool's idle-connection reaper needs one.
    let client: std::sync::OnceLock<Client<HttpConnector, Full<hyper::body::Bytes>>> =
        std::sync::OnceLock::new();
    closed_loop_rate(seconds, |worker, until| {
        let client = client
            .get_or_init(|| {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                Client::builder(hyper_util::rt::TokioExecutor::new())
                    .pool_max_idle_per_host(32)
                    .build(connector)
            })
            .clone();
        let uri = uri.clone();
        async move {
            let mut done = 0u64;
            while Instant::now() < until {
                let body = format!(r#"{{"appId":"bench","orderId":"hu-{worker}-{done}"}}"#);
                let Ok(request) = hyper::Request::post(uri.clone())
                    .header("content-type", "application/json")
                    .body(Full::new(hyper::body::Bytes::from(body)))
                else {
                    break;
                };
                let Ok(response) = client.request(request).await else {
                    break;
                };
                if response.into_body().collect().await.is_err() {
                    break;
                }
                done += 1;
            }
            done
        }
    })
}

fn raw_client_rate(addr: SocketAddr, seconds: u64) -> f64 {
    closed_loop_rate(seconds, |worker, until| raw_connection(addr, until, worker))
}

/// Requests per second of 32 workers, each sending one request after another until
/// `seconds` have passed (`worker(index, until)` returns how many it completed), on a
/// runtime of their own.
fn closed_loop_rate<F, Fut>(seconds: u64, worker: F) -> f64
where
    F: Fn(usize, Instant) -> Fut,
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let started = Instant::now();
        let until = started + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..32).map(|w| tokio::spawn(worker(w, until))).collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap_or(0);
        }
        total as f64 / started.elapsed().as_secs_f64()
    })
}

// ---------------------------------------------------------------------------------
// The daemon, as operators run it.

struct Daemon {
    child: KillOnDrop,
    listen: SocketAddr,
}

fn write_config(
    dir: &Path,
    listen: SocketAddr,
    base_url: &str,
    polling: &str,
) -> std::path::PathBuf {
    let path = dir.join("config.yml");
    // The balance poller off: the minimal record server has no balance endpoint (and
    // one query per interval is nothing next to the polls measured).
    let yaml = format!(
        "listen: \"{listen}\"\nstate_dir: {state}\napi:\n  base_url: {base_url}\n  api_key: bench-key\n  api_secret: bench-secret\n  timeout: 5s\n  max_in_flight: {inflight}\n  max_requests_per_second: 1000000\ndefault_app: bench\napps:\n  - id: bench\nspool:\n  dir: {spool}\n  rescan_interval: 1s\n  max_file_bytes: 1073741824\naccount:\n  enabled: false\n{polling}",
        state = dir.join("state").display(),
        spool = dir.join("spool").display(),
        inflight = env_number("FOOTPRINT_IN_FLIGHT", 64),
    );
    std::fs::create_dir_all(dir.join("spool")).expect("spool");
    std::fs::write(&path, yaml).expect("config");
    path
}

impl Daemon {
    fn start(config: &Path, listen: SocketAddr, log: &Path) -> Daemon {
        let log = std::fs::File::create(log).expect("log file");
        // FOOTPRINT_EXPORTER: another build of the daemon, for an A/B comparison in
        // the same run conditions (the same bench, server and raw client).
        let exporter = std::env::var_os("FOOTPRINT_EXPORTER").unwrap_or_else(|| EXPORTER.into());
        let child = Command::new(exporter)
            .args(["--log-level", "warn", "run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the exporter");
        Daemon {
            child: KillOnDrop(child),
            listen,
        }
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    fn get(&self, path: &str) -> Option<String> {
        http_get(self.listen, path)
    }

    fn sample(&self, name: &str) -> Option<f64> {
        let text = self.get("/metrics")?;
        Some(
            text.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }

    fn wait_ready(&self, within: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < within {
            if self.get("/readyz").is_some() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// (user + system) CPU seconds so far, from /proc.
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.pid())
    }

    fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Sends `signal` (`STOP`, `CONT`) to the daemon.
    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status();
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let _ = self.child.0.wait();
    }
}

/// A process's (user + system) CPU seconds so far, from /proc.
fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A GET over a fresh connection; the whole response, if its status is 200.
fn http_get(listen: SocketAddr, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(listen).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.starts_with("HTTP/1.1 200").then_some(text)
}

fn write_spool(dir: &Path, name: &str, prefix: &str, orders: u64) {
    write_spool_from(dir, name, prefix, 0, orders);
}

/// Orders `{prefix}-{first:010}` onwards, `orders` of them, in the spool file `name`.
fn write_spool_from(dir: &Path, name: &str, prefix: &str, first: u64, orders: u64) {
    let mut text = String::with_capacity(orders as usize * 24);
    for i in first..first + orders {
        text.push_str(&format!("{prefix}-{i:010}\n"));
    }
    let tmp = dir.join("spool").join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("spool file");
    std::fs::rename(&tmp, dir.join("spool").join(name)).expect("spool rename");
}

/// Alternating daemon and raw-client windows in the throughput measure.
const ROUNDS: usize = 3;

fn throughput() {
    let (_server, server) = start_server();
    if !skipped("http") {
        let raw = raw_client_rate(server, 5);
        let through_reqwest = reqwest_client_rate(server, 5);
        let through_pool = pooled_client_rate(server, 5);
        println!(
            "http stacks alone (nothing signed, decoded or kept): reqwest as the daemon configures it {through_reqwest:.0} req/s = {:.2} of the raw client; hyper-util's pooled client {through_pool:.0} req/s = {:.2}",
            through_reqwest / raw,
            through_pool / raw
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = free_addr();
    let config = write_config(
        dir.path(),
        listen,
        &format!("http://{server}/otp"),
        "polling:\n  first_delay: 100ms\n  max_interval: 200ms\n",
    );
    let population = env_number("FOOTPRINT_POLL_ORDERS", 50_000);
    write_spool(dir.path(), "orders", "poll", population);
    let daemon = Daemon::start(&config, listen, &dir.path().join("exporter.log"));
    daemon.wait_ready(Duration::from_secs(30)).expect("ready");
    let feeding = Arc::new(AtomicBool::new(true));
    let feeder = {
        let feeding = feeding.clone();
        let dir = dir.path().to_path_buf();
        std::thread::spawn(move || feed(&dir, listen, population, &feeding))
    };
    // Warm: a whole generation of orders finalized, so that the windows see the
    // steady mix of every query of an order's life.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if daemon.sample("otp_orders_total").unwrap_or(0.0) >= population as f64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let finalized_before = daemon.sample("otp_orders_total").unwrap_or(0.0);
    let polls_before = daemon
        .sample("otp_exporter_api_requests_total")
        .unwrap_or(0.0);
    // Daemon windows and raw-client windows taken in turn (the daemon held with
    // SIGSTOP while the raw client runs: its queries in flight wait, well within
    // `api.timeout`), so that both see the same machine: a shared machine's speed
    // drifts by half within a run, which one window of each could not tell from
    // the daemon's own figure.
    let mut windows = Vec::new();
    let mut raw_rates = Vec::new();
    for _ in 0..ROUNDS {
        windows.push(poll_rate(&daemon, Duration::from_secs(4)));
        daemon.signal("STOP");
        raw_rates.push(raw_client_rate(server, 3));
        daemon.signal("CONT");
        // Its queries held in flight come back first.
        std::thread::sleep(Duration::from_millis(500));
    }
    let mean = |f: &dyn Fn(&Window) -> f64| windows.iter().map(f).sum::<f64>() / ROUNDS as f64;
    let rate = mean(&|w| w.polls_per_second);
    let raw_mean = raw_rates.iter().sum::<f64>() / ROUNDS as f64;
    let finalized = daemon.sample("otp_orders_total").unwrap_or(0.0) - finalized_before;
    let polls = daemon
        .sample("otp_exporter_api_requests_total")
        .unwrap_or(0.0)
        - polls_before;
    println!(
        "throughput mix: {finalized:.0} orders finalized over the windows, {:.2} queries each (the scripted life is 5), about {population} pending",
        polls / finalized.max(1.0)
    );
    let rounds: Vec<String> = windows
        .iter()
        .zip(&raw_rates)
        .map(|(w, raw)| format!("{:.0}/{raw:.0}", w.polls_per_second))
        .collect();
    println!(
        "throughput: daemon {rate:.0} polls/s, raw client {raw_mean:.0} req/s against the same server, in {ROUNDS} alternating windows (daemon/raw: {}); daemon / raw = {:.2} (target >= 0.50)",
        rounds.join(", "),
        rate / raw_mean
    );
    let daemon_cores = mean(&|w| w.daemon_cores);
    println!(
        "cpu per poll: {:.1} µs (daemon {daemon_cores:.2} cores busy, record server {:.2}; mean query {:.2} ms)",
        daemon_cores / rate * 1e6,
        mean(&|w| w.server_cores),
        mean(&|w| w.mean_query_ms)
    );
    // The same while /metrics is scraped back to back: a scrape must not hold polling.
    let scraping = Arc::new(AtomicBool::new(true));
    let scraper = {
        let scraping = scraping.clone();
        let listen = daemon.listen;
        std::thread::spawn(move || {
            let mut times = Vec::new();
            let mut series = 0;
            while scraping.load(Ordering::Relaxed) {
                let started = Instant::now();
                if let Some(text) = http_get(listen, "/metrics") {
                    times.push(started.elapsed());
                    series = text.lines().filter(|l| !l.starts_with('#')).count();
                }
            }
            times.sort();
            (times, series)
        })
    };
    let scraped_rate = poll_rate(&daemon, Duration::from_secs(8)).polls_per_second;
    scraping.store(false, Ordering::Relaxed);
    let (times, series) = scraper.join().unwrap_or_default();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    println!(
        "polling while /metrics ({series} series) is scraped back to back: {scraped_rate:.0} polls/s, {:.2} of the rate without scrapes; {} scrapes, median {:.1} ms",
        scraped_rate / rate,
        times.len(),
        median.as_secs_f64() * 1e3
    );
    feeding.store(false, Ordering::Relaxed);
    let _ = feeder.join();
    daemon.stop();
}

/// Keeps about `population` orders pending while `feeding`: every second, as many new
/// orders as were finalized since, in a spool file of their own (it reads that from
/// `/metrics`: once a second, so that its own scrapes cost the daemon under 1 %). Each order then lives
/// its whole scripted life (a first record, two unchanged answers, delivered, verified
/// and finalized), and the windows measure that mix at a steady state; a fixed backlog
/// of orders that are never finalized would measure mostly first queries, then
/// mostly unchanged ones. Returns how many orders it added.
fn feed(dir: &Path, listen: SocketAddr, population: u64, feeding: &AtomicBool) -> u64 {
    let finalized = || {
        let text = http_get(listen, "/metrics")?;
        Some(
            text.lines()
                .filter(|l| l.starts_with("otp_orders_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64,
        )
    };
    let mut added = 0;
    let mut file = 0;
    while feeding.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        // Unanswered while the daemon is held: nothing to replace then.
        let Some(finalized) = finalized() else {
            continue;
        };
        let missing = finalized.saturating_sub(added);
        if missing > 0 {
            file += 1;
            let name = format!("feed-{file}");
            write_spool_from(dir, &name, "poll", population + added, missing);
            added += missing;
        }
    }
    added
}

/// What one measurement window saw.
struct Window {
    polls_per_second: f64,
    /// CPU cores the daemon and the record server used.
    daemon_cores: f64,
    server_cores: f64,
    /// `otp_exporter_api_request_duration_seconds`' mean over the window.
    mean_query_ms: f64,
}

/// Polls per second and CPU the daemon used over `window`.
fn poll_rate(daemon: &Daemon, window: Duration) -> Window {
    let polls = || {
        daemon
            .sample("otp_exporter_api_requests_total")
            .unwrap_or(0.0)
    };
    let before = polls();
    let sum = || {
        daemon
            .sample("otp_exporter_api_request_duration_seconds_sum")
            .unwrap_or(0.0)
    };
    let sum_before = sum();
    let cpu_before = daemon.cpu_seconds();
    let server_pid = SERVER_PID.load(Ordering::Relaxed);
    let server_before = cpu_seconds_of(server_pid);
    let started = Instant::now();
    std::thread::sleep(window);
    let after = polls();
    let cpu = daemon.cpu_seconds() - cpu_before;
    let elapsed = started.elapsed().as_secs_f64();
    Window {
        polls_per_second: (after - before) / elapsed,
        daemon_cores: cpu / elapsed,
        server_cores: (cpu_seconds_of(server_pid) - server_before) / elapsed,
        mean_query_ms: (sum() - sum_before) / (after - before) * 1e3,
    }
}

fn memory() {
    let orders = env_number("FOOTPRINT_ORDERS", 1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = free_addr();
    // Nothing is polled within the measurement: only tracking is measured.
    let config = write_config(
        dir.path(),
        listen,
        "http://127.0.0.1:9/otp",
        &format!(
            "polling:\n  first_delay: 1h\n  max_interval: 1h\ntracking:\n  max_age: 2h\njournal:\n  enabled: {}\n",
            std::env::var("FOOTPRINT_JOURNAL").as_deref() != Ok("off")
        ),
    );
    let log = dir.path().join("exporter.log");
    let daemon = Daemon::start(&config, listen, &log);
    daemon.wait_ready(Duration::from_secs(30)).expect("ready");
    std::thread::sleep(Duration::from_millis(500));
    let empty = daemon.rss_bytes();
    let started = Instant::now();
    write_spool(dir.path(), "orders", "ORD-2026-11-30", orders);
    let deadline = Instant::now() + Duration::from_secs(300);
    while daemon.sample("otp_exporter_orders_pending").unwrap_or(0.0) < orders as f64 {
        assert!(Instant::now() < deadline, "intake did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    let intake = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let full = daemon.rss_bytes();
    println!(
        "intake: {orders} spool lines in {intake:.2?}: {:.0} lines/s (target >= 200000)",
        orders as f64 / intake.as_secs_f64()
    );
    println!(
        "memory after intake: {:.0} MiB empty, {:.0} MiB with {orders} pending: {:.0} B per pending order (target <= 200)",
        empty as f64 / f64::from(1 << 20),
        full as f64 / f64::from(1 << 20),
        full.saturating_sub(empty) as f64 / orders as f64
    );
    daemon.stop();
    let file = std::fs::metadata(dir.path().join("state/state.redb")).map_or(0, |m| m.len());
    println!(
        "state file: {:.0} MiB, {:.0} bytes per pending order (pending state and its journal entry)",
        file as f64 / f64::from(1 << 20),
        file as f64 / orders as f64
    );
    let daemon = Daemon::start(&config, listen, &dir.path().join("exporter-2.log"));
    let started = Instant::now();
    daemon
        .wait_ready(Duration::from_secs(120))
        .expect("ready after restart");
    while daemon.sample("otp_exporter_orders_pending").unwrap_or(0.0) < orders as f64 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the restart did not load every order"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let ready = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let restarted = daemon.rss_bytes();
    println!("restart to ready with {orders} pending: {ready:.2?} (target <= 2 s)");
    println!(
        "memory after restart: {:.0} MiB: {:.0} B per pending order (target <= 200)",
        restarted as f64 / f64::from(1 << 20),
        restarted.saturating_sub(empty) as f64 / orders as f64
    );
    daemon.stop();
}

fn metrics_render() {
    const SERIES_TARGET: usize = 20_000;
    let apps: Vec<String> = (0..4).map(|i| format!("app-{i}")).collect();
    let metrics = Metrics::new(&apps);
    let countries = [
        "IN", "ID", "BR", "NG", "PH", "VN", "MX", "PK", "BD", "EG", "TR", "TH", "CO", "KE", "ZA",
        "MY", "SA", "AR", "PE", "US",
    ];
    let mut rendered_series = 0;
    let mut recorded = 0;
    'fill: for app in &apps {
        for (c, country) in countries.iter().enumerate() {
            for mcc in 0..20u16 {
                for channel in [Channel::Sms, Channel::Call, Channel::Sna] {
                    let attempt = |result| AttemptSample {
                        channel,
                        country,
                        mcc: format!("{:03}", 300 + c as u16 * 20 + mcc),
                        mnc: "01",
                        operator: "bench_operator",
                        operator_name: Some("Bench Operator"),
                        result,
                        latency_seconds: Some(1.5),
                        cost_usd: 0.01,
                        segments: 1,
                    };
                    let samples = OrderSamples {
                        outcome: Outcome::Verified,
                        channel: channel.as_str(),
                        country,
                        network: Some((300 + c as u16 * 20 + mcc, 1)),
                        operator: "bench_operator",
                        operator_name: Some("Bench Operator"),
                        attempts: vec![
                            attempt(AttemptResult::Delivered),
                            attempt(AttemptResult::Failed),
                        ],
                        fallbacks: Vec::new(),
                        verification_latency_seconds: Some(3.0),
                        attempts_dropped: 0,
                        invalid_values: Default::default(),
                    };
                    metrics.record_order(app, &samples, 3);
                    recorded += 1;
                    if recorded % 25 != 0 {
                        continue;
                    }
                    let text = metrics.render();
                    rendered_series = text
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty() && l[0] != b'#')
                        .count();
                    if rendered_series >= SERIES_TARGET {
                        break 'fill;
                    }
                }
            }
        }
    }
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..30 {
        let started = Instant::now();
        bytes = metrics.render().len();
        times.push(started.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "/metrics render: {rendered_series} series ({:.1} MiB): median {:.2} ms, slowest {:.2} ms of 30; median / target 10 ms = {:.2}",
        bytes as f64 / f64::from(1 << 20),
        median.as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3 / 10.0
    );
}

fn main() {
    if std::env::var(ROLE).as_deref() == Ok("server") {
        let port = env_number("FOOTPRINT_PORT", 0) as u16;
        run_server(port);
        return;
    }
    if !skipped("metrics") {
        metrics_render();
    }
    if !skipped("throughput") {
        throughput();
    }
    if !skipped("memory") {
        memory();
    }
}

//! Helpers for integration tests: they run the real binary as a child process over
//! real sockets and a real spool directory.
#![allow(dead_code)]

pub mod browser;
pub mod exposition;
pub mod http;
pub mod metric;
pub mod prometheus;
pub mod stand_in;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// Each test binary uses its own part of the harness.
#[allow(unused_imports)]
pub use http::{get, http};
#[allow(unused_imports)]
pub use metric::{assert_all_eventually, metric, Metrics};

use itnio_sim::Truth;

pub const BIN: &str = env!("CARGO_BIN_EXE_itnio-otp-exporter");
pub const API_KEY: &str = "test-key";
pub const API_SECRET: &str = "s3cr3t-Test-Secret-9f2";

/// A free loopback port (bound and released; fine for tests on one machine).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A child process whose stderr is captured, killed on drop.
pub struct Proc {
    pub child: Child,
    pub log: Arc<Mutex<String>>,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proc::spawn_command(name, cmd)
    }

    /// Starts `cmd` (e.g. the binary under `prlimit`) with its output captured.
    pub fn spawn_command(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG");
        let mut child = cmd.spawn().expect("spawn binary");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        Proc {
            child,
            log,
            name: name.to_string(),
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- {} log -----\n{}", self.name, self.log());
        }
    }
}

/// Polls `f` until it returns Some or `within` passes.
pub fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `path` on `addr` answers 200; false if `within` passes first.
pub fn answers_ok(addr: SocketAddr, path: &str, within: Duration) -> bool {
    wait_for(within, || get(addr, path).ok().filter(|(s, _)| *s == 200)).is_some()
}

/// md5(key + secret + ts), computed here independently of the crate's own code.
pub fn sign(key: &str, secret: &str, ts: &str) -> String {
    let out = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{key}{secret}{ts}").as_bytes())?;
            c.wait_with_output()
        })
        .expect("md5sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

pub fn unix_now() -> u64 {
    itnio_otp_exporter::clock::unix_now_secs() as u64
}

/// The simulator as a child process.
pub struct Sim {
    pub proc: Proc,
    pub addr: SocketAddr,
    /// Seconds the simulator's clock is ahead (its `--clock-offset`), for signing sends.
    pub clock_offset_secs: i64,
}

/// A simulator scenario where every channel to `country` fails from the start.
pub fn country_outage(country: &str) -> String {
    ["sms", "call", "sna"]
        .iter()
        .fold(String::from("outages:\n"), |yaml, channel| {
            yaml + &format!(
                "  - {{country: {country}, channel: {channel}, from: 0s, until: 100h}}\n"
            )
        })
}

impl Sim {
    /// A simulator with `--seed`, `--time-scale` and the scenario `yaml`, written to
    /// `dir/scenario.yml`.
    pub fn with_scenario(dir: &Path, seed: &str, time_scale: &str, yaml: &str) -> Sim {
        let scenario = dir.join("scenario.yml");
        std::fs::write(&scenario, yaml).unwrap();
        let scenario_arg = scenario.display().to_string();
        Sim::start(&[
            "--seed",
            seed,
            "--time-scale",
            time_scale,
            "--scenario",
            &scenario_arg,
        ])
    }

    pub fn start(extra: &[&str]) -> Sim {
        let addr = free_addr();
        let listen = addr.to_string();
        let mut args = vec![
            "simulate",
            "--listen",
            &listen,
            "--api-key",
            API_KEY,
            "--api-secret",
            API_SECRET,
        ];
        args.extend_from_slice(extra);
        let proc = Proc::spawn("simulator", &args, &[]);
        let sim = Sim {
            proc,
            addr,
            clock_offset_secs: 0,
        };
        if !answers_ok(addr, "/", Duration::from_secs(20)) {
            panic!("simulator did not start:\n{}", sim.proc.log());
        }
        sim
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/otp", self.addr)
    }

    /// Sends an OTP through the simulator's send endpoint, signed as the provider
    /// requires; the send must be accepted.
    pub fn send(&self, app_id: &str, to: &str, order_id: &str) {
        let status = send_otp(self.addr, self.clock_offset_secs, app_id, to, order_id);
        assert_eq!(status, "0", "send of {order_id} refused");
    }

    /// The simulator's ground truth (`GET /sim/truth`), decoded into its own type.
    pub fn truth(&self) -> Truth {
        let (status, body) = get(self.addr, "/sim/truth").expect("truth");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("truth JSON")
    }

    pub fn set_faults(&self, yaml: &str) {
        let (status, body) = http(
            self.addr,
            "PUT",
            "/sim/faults",
            &[("Content-Type", "application/yaml")],
            yaml,
        )
        .expect("faults");
        assert_eq!(status, 200, "{body}");
    }
}

/// Sends an OTP to the simulator at `sim` as an issuing app does (signed, its clock
/// `clock_offset_secs` ahead); returns the provider's status (`"0"` when accepted,
/// `"-10"` when the account cannot pay, ...).
pub fn send_otp(
    sim: SocketAddr,
    clock_offset_secs: i64,
    app_id: &str,
    to: &str,
    order_id: &str,
) -> String {
    let ts = (unix_now() as i64 + clock_offset_secs).to_string();
    let sign = sign(API_KEY, API_SECRET, &ts);
    let body = serde_json::json!({ "appId": app_id, "to": to, "orderId": order_id }).to_string();
    let (status, reply) = http(
        sim,
        "POST",
        "/otp/verification/send",
        &[
            ("Content-Type", "application/json;charset=UTF-8"),
            ("Api-Key", API_KEY),
            ("Timestamp", &ts),
            ("Sign", &sign),
        ],
        &body,
    )
    .expect("send");
    assert_eq!(status, 200, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).expect("send reply JSON");
    reply["status"].as_str().unwrap_or_default().to_string()
}

/// Test timing: the simulator's 5 min validity at time scale 0.02 is 6 s.
pub const TIME_SCALE: &str = "0.02";

/// The exporter as a child process with its own config, state and spool.
pub struct Exporter {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
}

pub fn exporter_config(dir: &Path, listen: SocketAddr, base_url: &str, extra: &str) -> PathBuf {
    let config = dir.join("config.yml");
    std::fs::create_dir_all(dir.join("spool")).unwrap();
    let text = format!(
        r#"listen: "{listen}"
state_dir: "{state}"
api:
  base_url: "{base_url}"
  api_key: "{API_KEY}"
  api_secret: "${{TEST_ITNIO_SECRET}}"
  timeout: 3s
  max_in_flight: 16
  max_requests_per_second: 400
default_app: app-a
apps:
  - id: app-a
  - id: app-b
spool:
  dir: "{spool}"
  rescan_interval: 2s
tracking:
  verification_window: 6s
  settle_timeout: 2400ms
  not_found_grace: 2400ms
  max_age: 15s
polling:
  first_delay: 200ms
  max_interval: 1s
{extra}"#,
        state = dir.join("state").display(),
        spool = dir.join("spool").display(),
    );
    std::fs::write(&config, text).unwrap();
    config
}

impl Exporter {
    pub fn start(dir: &Path, config: &Path, addr: SocketAddr, log_level: &str) -> Exporter {
        Self::start_with(dir, config, addr, &["--log-level", log_level])
    }

    /// Starts with extra global flags (e.g. `--log-format json`).
    pub fn start_with(dir: &Path, config: &Path, addr: SocketAddr, flags: &[&str]) -> Exporter {
        let config_arg = config.display().to_string();
        let mut args: Vec<&str> = flags.to_vec();
        args.extend(["run", "--config", &config_arg]);
        let proc = Proc::spawn("exporter", &args, &[("TEST_ITNIO_SECRET", API_SECRET)]);
        let exporter = Exporter {
            proc,
            addr,
            dir: dir.to_path_buf(),
            config: config.to_path_buf(),
        };
        if !answers_ok(addr, "/readyz", Duration::from_secs(20)) {
            panic!("exporter not ready:\n{}", exporter.proc.log());
        }
        exporter
    }

    pub fn spool(&self) -> PathBuf {
        self.dir.join("spool")
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    pub fn metrics(&self) -> Metrics {
        metric::scrape(&self.metrics_url()).unwrap_or_else(|e| panic!("scrape: {e}"))
    }

    pub fn metrics_text(&self) -> String {
        get(self.addr, "/metrics").expect("scrape").1
    }
}

/// Rewrites settings of a written config (`exporter_config`), each `from` → `to`.
/// A `from` that is not in the file fails the test, so that an edit cannot silently
/// stop applying when the base config changes.
pub fn edit_config(config: &Path, edits: &[(&str, &str)]) {
    let mut text = std::fs::read_to_string(config).unwrap();
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "{from:?} is not in the config:\n{text}"
        );
        text = text.replace(from, to);
    }
    std::fs::write(config, text).unwrap();
}

/// Writes a spool file atomically (dot-file, then rename), as issuing apps must.
pub fn drop_spool_file(spool: &Path, name: &str, text: &str) {
    let tmp = spool.join(format!(".{name}.partial"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, spool.join(name)).unwrap();
}

/// Runs `promtool check metrics` on a scrape; returns its combined output.
pub fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let combined = output_text(&out);
    (out.status.success() && combined.trim().is_empty(), combined)
}

/// A finished command's stdout followed by its stderr.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

//! Debian's real `prometheus`, started by a test with the repository's rule files and
//! stopped when dropped; queries through its HTTP API.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_addr, get, http, wait_for};

pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
}

/// A one-job configuration scraping `target` with the project's rules and alerts.
pub fn config(target: SocketAddr, scrape: &str, evaluation: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    format!(
        "global:\n  scrape_interval: {scrape}\n  evaluation_interval: {evaluation}\nrule_files:\n  - {root}/deploy/prometheus/rules.yml\n  - {root}/deploy/prometheus/alerts.yml\nscrape_configs:\n  - job_name: itnio-otp-exporter\n    static_configs:\n      - targets: ['{target}']\n"
    )
}

impl Prometheus {
    /// Starts Prometheus with `config_yaml` and its data in `tsdb`; waits until ready.
    pub fn start(dir: &Path, config_yaml: &str, tsdb: &Path) -> Prometheus {
        let addr = free_addr();
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, config_yaml).expect("write prometheus.yml");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (Debian package prometheus)");
        let prometheus = Prometheus { child, addr };
        wait_for(Duration::from_secs(30), || {
            get(addr, "/-/ready").ok().filter(|(s, _)| *s == 200)
        })
        .expect("prometheus ready");
        prometheus
    }

    /// An instant query's `data.result`.
    pub fn query(&self, expr: &str) -> Result<serde_json::Value, String> {
        let (status, text) = http(
            self.addr,
            "POST",
            "/api/v1/query",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &form_body(expr),
        )
        .map_err(|e| e.to_string())?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("HTTP {status}: {text}"));
        }
        Ok(v["data"]["result"].clone())
    }

    /// The alerts pending or firing now (`/api/v1/alerts`).
    pub fn alerts(&self) -> Result<Vec<serde_json::Value>, String> {
        let (_, body) = get(self.addr, "/api/v1/alerts").map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        v["data"]["alerts"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no alerts in {body}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `query=<expr>` as an `application/x-www-form-urlencoded` body, encoded by reqwest's URL
/// type (a form body is encoded exactly like a query string).
pub fn form_body(expr: &str) -> String {
    reqwest::Url::parse_with_params("http://prometheus.invalid/", &[("query", expr)])
        .expect("a constant base URL")
        .query()
        .unwrap_or_default()
        .to_string()
}

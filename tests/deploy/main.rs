//! The deploy checks: everything under `deploy/`, `dashboards/` and the runbooks, checked by
//! the tools that consume them (promtool, kubernetes-validate, systemd-analyze, the
//! dashboards' generator, the daemon's own `check-config`) and by the conventions the
//! repository keeps (alert annotations, runbook anchors, cross-references between files).
//!
//! They are Rust integration tests, not a script, so that they run in the test command's
//! one runner with one summary, and `check-config` is the binary cargo just built. A tool
//! that is missing fails its test with the command that installs it (`scripts/test.sh`
//! installs them all); nothing here skips quietly. The dashboard queries themselves are
//! evaluated once, against live data, by `tests/prometheus_live.rs`.

#[path = "../grafana/mod.rs"]
mod grafana;

mod configs;
mod dashboards;
mod docker;
mod grafana_variables;
mod kubernetes;
mod prometheus;
mod systemd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml::Value as Yaml;

/// The repository root (the crate's manifest directory).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A repository file's text; a missing file fails the test with its path.
pub fn read(path: impl AsRef<Path>) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn yaml(path: impl AsRef<Path>) -> Yaml {
    let path = path.as_ref();
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a multi-document YAML file.
pub fn yaml_documents(path: impl AsRef<Path>) -> Vec<Yaml> {
    use serde::Deserialize;
    let path = path.as_ref();
    let text = read(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The repository files in `dir` whose names end in `suffix`, sorted.
pub fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    found
}

/// A YAML value as text ("" when absent or not a string).
pub fn text(v: &Yaml) -> &str {
    v.as_str().unwrap_or("")
}

/// Runs an external tool from the repository root. A tool that is not installed fails
/// the test and says how to get it: these checks never skip.
pub fn run(program: &str, args: &[&str], install: &str) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program}: {e}\n{program} is required ({install}; scripts/test.sh installs it)")
        })
}

/// Runs a tool and fails the test, with its output, unless it succeeds.
pub fn run_ok(program: &str, args: &[&str], install: &str) -> String {
    let out = run(program, args, install);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{program} {} failed ({}):\n{shown}",
        args.join(" "),
        out.status
    );
    shown
}

pub const PROMETHEUS_DEB: &str = "Debian: apt-get install -y prometheus";
pub const PIP_REQUIREMENTS: &str = "python3 -m pip install -r tests/requirements.txt";

/// Fails the test listing every error found, so one run shows them all.
pub fn assert_no_errors(what: &str, errors: &[String]) {
    assert!(
        errors.is_empty(),
        "{what}: {} error(s):\n  {}",
        errors.len(),
        errors.join("\n  ")
    );
}

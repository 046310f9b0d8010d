//! The runbooks' log examples, run against the real JSON log: the real binary polls the
//! simulator (India failing on every channel, other countries delivering) with
//! `--log-format json` into `exporter.log`; every line of a ```sh block of
//! docs/runbooks.md that reads `exporter.log` is run with `sh -c` next to it and must
//! print something and exit 0. An example about `order finalized` lines may only use
//! fields those lines really have (the JSON log is flat: `.message`, `.country`, not
//! `.fields.country`, which printed nothing for months).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// The fields the issue puts on every `order finalized` line.
const ORDER_FINALIZED_FIELDS: &[&str] = &[
    "order_id",
    "app_id",
    "outcome",
    "channel",
    "country",
    "operator",
    "mcc",
    "mnc",
    "latency_seconds",
    "cost_usd",
];

/// Every command of a ```sh block that reads `exporter.log` (continuation lines
/// ending in `\` joined, comments skipped), in the order of the text.
fn log_examples(markdown: &str) -> Vec<String> {
    let mut examples = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in markdown.lines() {
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_sh = !in_sh && matches!(info.trim(), "sh" | "shell" | "bash" | "console");
            pending.clear();
            continue;
        }
        if !in_sh || trimmed.starts_with('#') {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head.trim_end());
            pending.push(' ');
            continue;
        }
        let command = std::mem::take(&mut pending) + trimmed;
        let command = command.strip_prefix("$ ").unwrap_or(&command).to_string();
        if command.contains("exporter.log") {
            examples.push(command);
        }
    }
    examples
}

/// The names a jq program reads as `.name` (not `exporter.log`'s `.log`: a name
/// follows a dot that does not follow a word character).
fn fields_read(command: &str) -> BTreeSet<String> {
    let chars: Vec<char> = command.chars().collect();
    let mut names = BTreeSet::new();
    for (i, c) in chars.iter().enumerate() {
        let after_word = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if *c != '.' || after_word {
            continue;
        }
        let name: String = chars[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .collect();
        if name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            names.insert(name);
        }
    }
    names
}

/// Runs one example in `dir`; its output, or why it is wrong.
fn check_example(
    dir: &Path,
    command: &str,
    finalized_keys: &BTreeSet<String>,
) -> Result<String, String> {
    let out = Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!(
            "exits {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if stdout.trim().is_empty() {
        return Err("prints nothing".into());
    }
    if command.contains("order finalized") {
        let missing: Vec<String> = fields_read(command)
            .into_iter()
            .filter(|name| !finalized_keys.contains(name))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "reads {missing:?}, which no `order finalized` line has (its fields: {finalized_keys:?})"
            ));
        }
    }
    Ok(stdout)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `exporter.log` in `dir`: the daemon's JSON log of orders to India (failing
/// on every channel: undelivered) and to five other countries, a rejected spool line
/// and an unknown id, until every order is final; then stops the daemon.
fn write_real_log(dir: &Path) {
    let sim = Sim::with_scenario(dir, "5", TIME_SCALE, &country_outage("IN"));
    let addr = free_addr();
    let config = exporter_config(dir, addr, &sim.base_url(), "");
    let log = std::fs::File::create(dir.join("exporter.log")).unwrap();
    let mut exporter = KillOnDrop(
        Command::new(BIN)
            .args(["--log-format", "json", "run", "--config"])
            .arg(&config)
            .env("TEST_ITNIO_SECRET", API_SECRET)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn the exporter"),
    );
    let read_log = || std::fs::read_to_string(dir.join("exporter.log")).unwrap_or_default();
    assert!(
        answers_ok(addr, "/readyz", Duration::from_secs(20)),
        "exporter not ready:\n{}",
        read_log()
    );

    let prefixes = ["91", "62", "55", "44", "63", "84"];
    let mut ids = String::new();
    let orders = 36;
    for i in 0..orders {
        let prefix = prefixes[i % prefixes.len()];
        let order_id = format!("rb-{i:03}");
        sim.send(
            "app-a",
            &format!("{prefix}{:09}", 712_345_000 + i),
            &order_id,
        );
        ids.push_str(&order_id);
        ids.push('\n');
    }
    ids.push_str("ghost-1\nthis is not an order id\n");
    drop_spool_file(&dir.join("spool"), "runbook-orders", &ids);

    let finalized = wait_for(Duration::from_secs(60), || {
        let n = read_log()
            .lines()
            .filter(|l| l.contains("\"order finalized\""))
            .count();
        (n == orders + 1).then_some(n)
    });
    assert!(
        finalized.is_some(),
        "not every order finalized:\n{}",
        read_log()
    );
    // SIGTERM: the daemon stops in order and its last lines are written.
    let _ = Command::new("kill")
        .args(["-TERM", &exporter.0.id().to_string()])
        .status();
    let stopped = wait_for(Duration::from_secs(20), || {
        exporter.0.try_wait().ok().flatten()
    });
    assert!(stopped.is_some(), "exporter did not stop:\n{}", read_log());
}

#[test]
fn every_runbook_log_example_prints_from_the_real_json_log() {
    let tmp = tempfile::tempdir().unwrap();
    write_real_log(tmp.path());
    let log = std::fs::read_to_string(tmp.path().join("exporter.log")).unwrap();

    // The log is flat JSON, and `order finalized` carries the issue's fields.
    let mut finalized_keys = BTreeSet::new();
    let mut countries = BTreeSet::new();
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["message"] == "order finalized" {
            let fields = v.as_object().expect("an object");
            finalized_keys.extend(fields.keys().cloned());
            countries.insert(format!("{}/{}", v["country"], v["outcome"]));
        }
    }
    for field in ORDER_FINALIZED_FIELDS {
        assert!(
            finalized_keys.contains(*field),
            "no `order finalized` line has {field}: {finalized_keys:?}"
        );
    }
    assert!(
        countries.contains("\"IN\"/\"undelivered\"") && countries.len() >= 4,
        "the log lacks the mix the examples grep for: {countries:?}"
    );

    // The broken example this test exists for is caught.
    let old = r#"jq -r 'select(.fields.message=="order finalized") | [.fields.country, .fields.outcome] | @tsv' exporter.log | sort | uniq -c"#;
    assert!(check_example(tmp.path(), old, &finalized_keys).is_err());

    let runbooks =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbooks.md"))
            .unwrap();
    let examples = log_examples(&runbooks);
    assert!(
        examples.iter().any(|e| e.contains("order finalized")),
        "docs/runbooks.md has no ```sh example reading `order finalized` lines from exporter.log: {examples:?}"
    );
    let mut failures = Vec::new();
    for example in &examples {
        match check_example(tmp.path(), example, &finalized_keys) {
            Ok(out) => eprintln!(
                "ok: {example}\n{}",
                out.lines().take(3).collect::<Vec<_>>().join("\n")
            ),
            Err(why) => failures.push(format!("{example}\n    {why}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} runbook log examples fail against the real log:\n{}\n\nlog head:\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n"),
        log.lines().take(20).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn examples_are_the_sh_lines_that_read_exporter_log() {
    let md = "text `jq . exporter.log` inline is not run\n\
        ```sh\n\
        # a comment about exporter.log\n\
        $ jq -c 'select(.message==\"order finalized\")' exporter.log\n\
        grep -c x exporter.log | \\\n  sort\n\
        echo unrelated\n\
        ```\n\
        ```promql\n\
        exporter.log\n\
        ```\n\
        1. step\n   ```sh\n   jq .country exporter.log\n   ```\n";
    assert_eq!(
        log_examples(md),
        [
            "jq -c 'select(.message==\"order finalized\")' exporter.log",
            "grep -c x exporter.log | sort",
            "jq .country exporter.log",
        ]
    );
    // `.fields.mnc` reads `fields` at the top: that is what decides.
    assert_eq!(
        fields_read(
            "jq -r 'select(.message==\"x\") | [.country, .fields.mnc] | @tsv' exporter.log"
        ),
        ["country", "fields", "message"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

//! deploy/prometheus: the rule files, the configurations and the rules' unit tests with
//! Debian's promtool, and the conventions of alerts and recording rules.

use std::collections::BTreeSet;

use crate::*;

const RULES: &str = "deploy/prometheus/rules.yml";
const ALERTS: &str = "deploy/prometheus/alerts.yml";

#[test]
fn promtool_accepts_the_rule_files() {
    run_ok(
        "promtool",
        &["check", "rules", RULES, ALERTS],
        PROMETHEUS_DEB,
    );
}

#[test]
fn promtool_accepts_the_prometheus_configuration() {
    run_ok(
        "promtool",
        &["check", "config", "deploy/prometheus/prometheus.yml"],
        PROMETHEUS_DEB,
    );
}

/// The compose stack's Prometheus reads the rules from /etc/prometheus/rules/ (mounted
/// there from deploy/prometheus): check a copy of its configuration pointed at copies.
#[test]
fn promtool_accepts_the_compose_prometheus_configuration() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let rules_dir = tmp.path().join("rules");
    std::fs::create_dir(&rules_dir).expect("rules directory");
    for file in [RULES, ALERTS] {
        let name = std::path::Path::new(file).file_name().expect("file name");
        std::fs::copy(root().join(file), rules_dir.join(name)).expect("copy rules");
    }
    let config = read("deploy/docker/prometheus.yml");
    assert!(
        config.contains("/etc/prometheus/rules/"),
        "deploy/docker/prometheus.yml no longer reads /etc/prometheus/rules/: update this test"
    );
    let copy = tmp.path().join("prometheus.yml");
    let rewritten = config.replace(
        "/etc/prometheus/rules/",
        &format!("{}/", rules_dir.display()),
    );
    std::fs::write(&copy, rewritten).expect("write configuration");
    let copy = copy.display().to_string();
    run_ok("promtool", &["check", "config", &copy], PROMETHEUS_DEB);
}

#[test]
fn promtool_rule_unit_tests_pass() {
    let tests: Vec<String> = files("deploy/prometheus/tests", ".yml")
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert!(!tests.is_empty(), "no deploy/prometheus/tests/*.yml");
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    run_ok("promtool", &args, PROMETHEUS_DEB);
}

/// early_signals_test.yml is generated (hundreds of samples per series): the committed file is
/// what its script writes, so a test edited by hand is not silently overwritten later.
#[test]
fn early_signal_tests_are_what_their_generator_writes() {
    run_ok(
        "python3",
        &[
            "deploy/prometheus/tests/generate_early_signal_tests.py",
            "--check",
        ],
        "python3 (standard library only)",
    );
}

/// Every rule of every group of a rule file.
fn rules_of(file: &str) -> Vec<Yaml> {
    let doc = yaml(file);
    let groups = doc["groups"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{file}: no groups"));
    groups
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .collect()
}

/// `level:metric:operations` (Prometheus' naming practice for recording rules).
fn is_recording_rule_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split(':').collect();
    let word = |s: &str, digits: bool| {
        s.chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || (digits && c.is_ascii_digit()))
    };
    parts.len() == 3
        && word(parts[0], false)
        && [parts[1], parts[2]]
            .iter()
            .all(|p| !p.is_empty() && word(p, true))
}

/// The recording-rule names an expression reads.
fn recording_rules_read_by(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|token| is_recording_rule_name(token))
        .map(str::to_string)
        .collect()
}

fn recorded_names() -> BTreeSet<String> {
    rules_of(RULES)
        .iter()
        .filter_map(|r| r["record"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn recording_rules_are_named_level_metric_operations() {
    let mut errors = Vec::new();
    let mut slo_targets = 0;
    for rule in rules_of(RULES) {
        if let Some(alert) = rule["alert"].as_str() {
            errors.push(format!(
                "rules.yml holds an alert ({alert}): alerts belong in alerts.yml"
            ));
            continue;
        }
        let name = text(&rule["record"]);
        if !is_recording_rule_name(name) {
            errors.push(format!(
                "recording rule {name:?} is not named level:metric:operations"
            ));
        }
        slo_targets += usize::from(name == "otp:slo_target:ratio");
    }
    if slo_targets != 1 {
        errors.push(format!(
            "otp:slo_target:ratio must be defined exactly once (found {slo_targets})"
        ));
    }
    assert_no_errors(RULES, &errors);
}

/// GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to `-`.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (lines in fenced code blocks are no headings).
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut found = BTreeSet::new();
    for line in markdown.lines() {
        // A fence may open a list item: "3. ```promql".
        let unlisted = line
            .trim_start()
            .trim_start_matches(|c: char| c.is_ascii_digit() || matches!(c, '.' | '-' | '*'))
            .trim_start();
        if unlisted.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        let rest = &line[hashes..];
        if !in_code && (1..=6).contains(&hashes) && rest.starts_with(char::is_whitespace) {
            found.insert(github_anchor(rest));
        }
    }
    found
}

#[test]
fn alerts_have_severity_annotations_and_a_runbook_section() {
    let runbook_anchors = anchors(&read("docs/runbooks.md"));
    let records = recorded_names();
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    for rule in rules_of(ALERTS) {
        if let Some(record) = rule["record"].as_str() {
            errors.push(format!("alerts.yml holds a recording rule ({record})"));
            continue;
        }
        let alert = text(&rule["alert"]).to_string();
        if !names.insert(alert.clone()) {
            errors.push(format!("duplicate alert name {alert}"));
        }
        let severity = text(&rule["labels"]["severity"]);
        if !matches!(severity, "critical" | "warning") {
            errors.push(format!(
                "{alert}: severity must be critical or warning, got {severity:?}"
            ));
        }
        for key in ["summary", "description", "runbook_url"] {
            if text(&rule["annotations"][key]).is_empty() {
                errors.push(format!("{alert}: annotation {key} missing"));
            }
        }
        let url = text(&rule["annotations"]["runbook_url"]);
        match url.rsplit_once("docs/runbooks.md#") {
            Some((_, anchor))
                if !anchor.is_empty()
                    && anchor
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-') =>
            {
                if !runbook_anchors.contains(anchor) {
                    errors.push(format!(
                        "{alert}: runbook section #{anchor} not found in docs/runbooks.md"
                    ));
                } else if anchor != alert.to_lowercase() {
                    errors.push(format!(
                        "{alert}: runbook anchor should be #{}",
                        alert.to_lowercase()
                    ));
                }
            }
            _ => errors.push(format!(
                "{alert}: runbook_url {url:?} does not point at docs/runbooks.md#<section>"
            )),
        }
        let expr = text(&rule["expr"]);
        // The SLO value is written nowhere but in otp:slo_target:ratio.
        if alert.contains("SLO") && !expr.contains("slo_error_budget") {
            errors.push(format!(
                "{alert}: must derive its threshold from otp:slo_error_budget:ratio"
            ));
        }
        for used in recording_rules_read_by(expr) {
            if !records.contains(&used) {
                errors.push(format!(
                    "{alert} reads {used}, which rules.yml does not record"
                ));
            }
        }
    }
    assert!(!names.is_empty(), "{ALERTS} has no alerts");
    assert_no_errors(ALERTS, &errors);
}

#[test]
fn every_alert_is_shown_firing_and_silent_in_a_unit_test() {
    let mut fired = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for path in files("deploy/prometheus/tests", ".yml") {
        let doc = yaml(&path);
        for test in doc["tests"].as_sequence().into_iter().flatten() {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = text(&case["alertname"]).to_string();
                let fires = case["exp_alerts"]
                    .as_sequence()
                    .is_some_and(|alerts| !alerts.is_empty());
                if fires {
                    fired.insert(name);
                } else {
                    silent.insert(name);
                }
            }
        }
    }
    let mut errors = Vec::new();
    for rule in rules_of(ALERTS) {
        let alert = text(&rule["alert"]);
        if !fired.contains(alert) {
            errors.push(format!(
                "{alert} is never shown firing in deploy/prometheus/tests/"
            ));
        }
        if !silent.contains(alert) {
            errors.push(format!(
                "{alert} is never shown silent in deploy/prometheus/tests/"
            ));
        }
    }
    assert_no_errors("alert unit tests", &errors);
}

#[test]
fn runbook_anchors_follow_github() {
    let found = anchors("# Runbooks\n## OtpExporterDown\n```sh\n# not a heading\n```\n1. ```sh\n# nor this\n```\n### Why? (and how)\n####### seven\n");
    assert_eq!(
        found,
        ["otpexporterdown", "runbooks", "why-and-how"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

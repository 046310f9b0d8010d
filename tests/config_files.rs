//! Configuration files against the real binary, blackbox_exporter style: every
//! `testdata/config/invalid-*.yml` is rejected by `check-config` with a message naming
//! the key and the line (and never the secret); the shipped configurations pass; the
//! README's key table matches the keys and defaults the code knows.

use std::path::{Path, PathBuf};
use std::process::Command;

use itnio_otp_exporter::config::{self, Config};

const BIN: &str = env!("CARGO_BIN_EXE_itnio-otp-exporter");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The secret in the testdata files: it must never be printed.
const TESTDATA_SECRET: &str = "testdata-secret-do-not-print";

struct Outcome {
    success: bool,
    output: String,
}

fn check_config(path: &Path, env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(BIN);
    cmd.args(["check-config", "--config"]).arg(path);
    cmd.env_remove("ITNIO_API_SECRET");
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = cmd.output().expect("run check-config");
    Outcome {
        success: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn testdata(name: &str) -> PathBuf {
    Path::new(ROOT).join("tests/testdata/config").join(name)
}

/// A problem the output must list: key, line, words of its message.
type Expected = (&'static str, usize, &'static str);

/// (file, its problems): one file per error class.
const INVALID: &[(&str, &[Expected])] = &[
    (
        "invalid-unknown-key.yml",
        &[("spool.rescan_intervall", 8, "unknown key")],
    ),
    (
        "invalid-whole-number.yml",
        &[("api.max_in_flight", 4, "expected a whole number")],
    ),
    (
        "invalid-negative-duration.yml",
        &[("api.timeout", 4, "durations cannot be negative")],
    ),
    (
        "invalid-duration.yml",
        &[("tracking.settle_timeout", 8, "invalid duration \"soon\"")],
    ),
    (
        "invalid-secret-number.yml",
        &[("api.api_secret", 4, "quote it")],
    ),
    (
        "invalid-listen.yml",
        &[("listen", 2, "invalid address \"nowhere\"")],
    ),
    (
        "invalid-secret-both.yml",
        &[("api.api_secret_file", 4, "not both")],
    ),
    (
        "invalid-secret-file.yml",
        &[(
            "api.api_secret_file",
            4,
            "cannot read /nonexistent/itnio-secret",
        )],
    ),
    (
        "invalid-base-url.yml",
        &[("api.base_url", 4, "user name or password")],
    ),
    (
        "invalid-out-of-bounds.yml",
        &[("api.max_in_flight", 4, "must not exceed 1024")],
    ),
    (
        "invalid-zero.yml",
        &[("spool.rescan_interval", 8, "must be more than 0")],
    ),
    (
        "invalid-duplicate-app.yml",
        &[("apps[1].id", 7, "listed twice")],
    ),
    (
        "invalid-default-app.yml",
        &[("default_app", 7, "not one of apps[].id")],
    ),
    (
        "invalid-max-age.yml",
        &[("tracking.max_age", 9, "longer than the verification window")],
    ),
    (
        "invalid-polling-order.yml",
        &[(
            "polling.max_interval",
            9,
            "shorter than polling.first_delay",
        )],
    ),
    (
        "invalid-timezone.yml",
        &[("api.timezone", 4, "invalid timezone \"Mars\"")],
    ),
    (
        "invalid-not-a-mapping.yml",
        &[("spool", 7, "expected a mapping")],
    ),
    (
        "invalid-text-expected.yml",
        &[("apps[0].id", 6, "expected text")],
    ),
    (
        "invalid-account.yml",
        &[
            (
                "account.balance_interval",
                9,
                "must be 0 (off) or at least 1s",
            ),
            (
                "account.balance_url",
                10,
                "is not an http(s) URL with a host",
            ),
        ],
    ),
    (
        "invalid-several.yml",
        &[
            ("api.max_in_flight", 6, "cannot be negative"),
            (
                "spool.rescan_interval",
                10,
                "expected a duration with a unit",
            ),
            ("tracking.max_age", 12, "longer than the limit of 7 days"),
            ("polling.frist_delay", 14, "unknown key"),
        ],
    ),
];

#[test]
fn every_invalid_file_is_rejected_naming_key_and_line() {
    for (file, expected) in INVALID {
        let out = check_config(&testdata(file), &[]);
        assert!(!out.success, "{file} was accepted: {}", out.output);
        assert!(out.output.starts_with("error: "), "{file}: {}", out.output);
        assert!(
            out.output.contains(file),
            "{file}: names the file: {}",
            out.output
        );
        for (key, line, words) in *expected {
            let said = format!("key `{key}` (line {line}): ");
            let problem = out
                .output
                .lines()
                .find(|l| l.contains(&said))
                .unwrap_or_else(|| panic!("{file}: no problem about {said}: {}", out.output));
            assert!(problem.contains(words), "{file}: {words:?} in {problem}");
        }
        if expected.len() > 1 {
            let count = format!("{} problems:", expected.len());
            assert!(out.output.contains(&count), "{file}: {}", out.output);
        }
        assert!(
            !out.output.contains(TESTDATA_SECRET),
            "{file}: {}",
            out.output
        );
    }
}

/// Every testdata file is in the table above: a new error class gets its expectations.
#[test]
fn the_table_lists_every_testdata_file() {
    let mut on_disk: Vec<String> = std::fs::read_dir(testdata(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("invalid-"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = INVALID.iter().map(|(f, _)| f.to_string()).collect();
    // Classes without a key/line of their own, checked below.
    listed.extend(
        [
            "invalid-missing-secret.yml",
            "invalid-no-apps.yml",
            "invalid-yaml-syntax.yml",
        ]
        .map(String::from),
    );
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn missing_keys_and_broken_yaml_are_named() {
    let out = check_config(&testdata("invalid-missing-secret.yml"), &[]);
    assert!(
        !out.success && out.output.contains("key `api.api_secret`: missing"),
        "{}",
        out.output
    );
    let out = check_config(&testdata("invalid-no-apps.yml"), &[]);
    assert!(
        !out.success && out.output.contains("key `apps`: missing"),
        "{}",
        out.output
    );
    assert!(!out.output.contains(TESTDATA_SECRET), "{}", out.output);
    let out = check_config(&testdata("invalid-yaml-syntax.yml"), &[]);
    assert!(
        !out.success && out.output.contains(": line 3: "),
        "{}",
        out.output
    );
}

/// A secret file: the deploy configurations read the secret from a path that only
/// exists inside the service, so the test points them at a real file of its own.
fn with_secret_file(text: &str, dir: &Path) -> String {
    let secret = dir.join("api_secret");
    std::fs::write(&secret, "a-real-secret\n").unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("api_secret_file:"))
        .expect("an api_secret_file line");
    let indent = &line[..line.len() - line.trim_start().len()];
    text.replace(
        line,
        &format!("{indent}api_secret_file: {}", secret.display()),
    )
}

#[test]
fn the_shipped_configurations_pass() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("ITNIO_API_SECRET", "from-the-environment")];
    for file in ["examples/config.yml", "deploy/docker/config.yml"] {
        let out = check_config(&Path::new(ROOT).join(file), &env);
        assert!(
            out.success && out.output.contains("valid"),
            "{file}: {}",
            out.output
        );
    }
    // check-config says where the balance comes from, or that it is not polled.
    let out = check_config(&Path::new(ROOT).join("examples/config.yml"), &env);
    assert!(
        out.output
            .contains("balance every 5m from https://api.itniotech.com/sms/getBalance"),
        "{}",
        out.output
    );
    let off = dir.path().join("off.yml");
    let example = std::fs::read_to_string(Path::new(ROOT).join("examples/config.yml")).unwrap();
    std::fs::write(
        &off,
        example.replace("balance_interval: 5m", "balance_interval: 0"),
    )
    .unwrap();
    let out = check_config(&off, &env);
    assert!(out.output.contains("balance poller off"), "{}", out.output);

    let systemd =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/systemd/config.yml")).unwrap();
    let path = dir.path().join("systemd.yml");
    std::fs::write(&path, with_secret_file(&systemd, dir.path())).unwrap();
    let out = check_config(&path, &[]);
    assert!(out.success, "deploy/systemd/config.yml: {}", out.output);

    let configmap =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/kubernetes/configmap.yaml")).unwrap();
    let configmap: serde_yaml::Value = serde_yaml::from_str(&configmap).unwrap();
    let embedded = configmap["data"]["config.yml"]
        .as_str()
        .expect("data.config.yml");
    let path = dir.path().join("kubernetes.yml");
    std::fs::write(&path, with_secret_file(embedded, dir.path())).unwrap();
    let out = check_config(&path, &[]);
    assert!(
        out.success,
        "deploy/kubernetes/configmap.yaml: {}",
        out.output
    );
}

/// The README's "Configuration" table: (key, default cell), in order.
fn readme_table() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Configuration section");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            (cells[0].trim_matches('`').to_string(), cells[1].to_string())
        })
        .collect()
}

#[test]
fn the_readme_table_lists_exactly_the_keys_the_code_reads() {
    let readme: Vec<String> = readme_table().into_iter().map(|(key, _)| key).collect();
    assert_eq!(
        readme,
        config::keys(),
        "README.md's Configuration table vs config::keys()"
    );
}

/// A default written as one literal (`30s`, `32`) must be the code's default: setting
/// the key to it changes nothing.
#[test]
fn the_readme_defaults_are_the_code_defaults() {
    const MINIMAL: &str = "api:\n  api_key: k\n  api_secret: s\napps:\n  - id: a\n";
    let load = |text: &str| -> Config {
        Config::from_yaml(text, Path::new("readme.yml"), &|_| None)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    };
    let defaults = load(MINIMAL);
    let mut checked = 0;
    for (key, cell) in readme_table() {
        let Some(literal) = cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
            continue;
        };
        if key.contains("[]") || literal.contains('`') {
            continue;
        }
        let mut root: serde_yaml::Value = serde_yaml::from_str(MINIMAL).unwrap();
        let value: serde_yaml::Value = serde_yaml::from_str(literal).unwrap();
        match key.split_once('.') {
            Some((section, leaf)) => {
                let section = &mut root[section];
                if section.is_null() {
                    *section = serde_yaml::Value::Mapping(Default::default());
                }
                section[leaf] = value;
            }
            None => root[key.as_str()] = value,
        }
        let text = serde_yaml::to_string(&root).unwrap();
        assert_eq!(load(&text), defaults, "README default of {key} ({cell})");
        checked += 1;
    }
    assert!(
        checked >= 15,
        "only {checked} literal defaults found in the README"
    );
}

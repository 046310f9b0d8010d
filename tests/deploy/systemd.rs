//! deploy/systemd: the unit's hardening and credentials, and `systemd-analyze verify`.

use std::collections::BTreeMap;

use crate::*;

const UNIT: &str = "deploy/systemd/itnio-otp-exporter.service";

#[test]
fn unit_runs_unprivileged_hardened_and_with_credentials() {
    let mut directives: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in read(UNIT).lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', ';', '[']) {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            directives
                .entry(key.to_string())
                .or_default()
                .push(value.to_string());
        }
    }
    let mut errors = Vec::new();
    let wanted: &[(&str, Option<&str>)] = &[
        ("User", None),
        ("StateDirectory", None),
        ("NoNewPrivileges", Some("yes")),
        ("ProtectSystem", Some("strict")),
        ("PrivateTmp", Some("yes")),
        ("ProtectHome", Some("yes")),
        ("PrivateDevices", Some("yes")),
        ("CapabilityBoundingSet", Some("")),
        ("RestrictAddressFamilies", None),
        ("SystemCallFilter", None),
        ("ReadWritePaths", None),
    ];
    for (key, value) in wanted {
        match (directives.get(*key), value) {
            (None, _) => errors.push(format!("missing {key}=")),
            (Some(values), Some(value)) if !values.iter().any(|v| v == value) => {
                errors.push(format!("{key}= should be {value:?}"))
            }
            _ => {}
        }
    }
    let user = directives
        .get("User")
        .and_then(|u| u.first())
        .map_or("root", String::as_str);
    if matches!(user, "root" | "0") {
        errors.push("must not run as root".into());
    }
    if !directives.contains_key("LoadCredential") && !directives.contains_key("EnvironmentFile") {
        errors.push("secrets need LoadCredential= or EnvironmentFile=".into());
    }
    assert_no_errors(UNIT, &errors);
}

/// systemd-analyze verify rejects a unit whose ExecStart= does not exist, and the binary
/// is not installed here: verify a copy whose commands run /bin/true. Its warnings
/// (an unknown directive, a bad value) exit 0, so any output fails the test.
#[test]
fn systemd_analyze_verifies_the_unit() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let unit = read(UNIT);
    assert!(
        unit.contains("/usr/local/bin/itnio-otp-exporter"),
        "{UNIT} no longer runs /usr/local/bin/itnio-otp-exporter: update this test"
    );
    let copy = tmp.path().join("itnio-otp-exporter.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/itnio-otp-exporter", "/bin/true"),
    )
    .expect("write unit");
    let out = run(
        "systemd-analyze",
        &["verify", &copy.display().to_string()],
        "Debian: apt-get install -y systemd",
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {UNIT} ({}):\n{said}",
        out.status
    );
}

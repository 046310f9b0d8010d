//! The example configurations (deploy/systemd, deploy/docker, the Kubernetes ConfigMap)
//! pass the daemon's own `check-config`, the binary cargo built for these tests. Its
//! parser rejects unknown keys, so the key list is not repeated here.

use std::path::Path;
use std::process::Command;

use crate::*;

const BIN: &str = env!("CARGO_BIN_EXE_itnio-otp-exporter");

/// (where it is written, its YAML text).
fn examples() -> Vec<(&'static str, String)> {
    let configmap = yaml("deploy/kubernetes/configmap.yaml");
    let in_configmap = text(&configmap["data"]["config.yml"]).to_string();
    assert!(
        !in_configmap.is_empty(),
        "deploy/kubernetes/configmap.yaml has no data.config.yml"
    );
    vec![
        (
            "deploy/systemd/config.yml",
            read("deploy/systemd/config.yml"),
        ),
        ("deploy/docker/config.yml", read("deploy/docker/config.yml")),
        (
            "deploy/kubernetes/configmap.yaml (config.yml)",
            in_configmap,
        ),
    ]
}

/// `check-config` on a file, with the secret the docker example reads from the environment.
fn check_config(config: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(config)
        .env("ITNIO_API_SECRET", "deploy-check-secret")
        .output()
        .expect("run the built itnio-otp-exporter");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn example_configurations_pass_check_config() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    // The secret files named by the examples exist only where they are deployed: the copies
    // checked here point at a file that exists.
    let secret = tmp.path().join("api_secret");
    std::fs::write(&secret, "deploy-check-secret\n").expect("write secret");
    let mut errors = Vec::new();
    for (i, (name, config)) in examples().into_iter().enumerate() {
        let mut doc: Yaml = serde_yaml::from_str(&config).unwrap_or_else(|e| panic!("{name}: {e}"));
        if doc["apps"].as_sequence().is_none_or(|apps| apps.is_empty()) {
            errors.push(format!("{name}: apps missing"));
        }
        let api = &doc["api"];
        let inline = !text(&api["api_secret"]).is_empty();
        let from_file = !text(&api["api_secret_file"]).is_empty();
        if inline == from_file {
            errors.push(format!(
                "{name}: set exactly one of api_secret, api_secret_file"
            ));
        }
        if from_file {
            doc["api"]["api_secret_file"] = secret.display().to_string().into();
        }
        let copy = tmp.path().join(format!("{i}.yml"));
        std::fs::write(&copy, serde_yaml::to_string(&doc).expect("YAML")).expect("write copy");
        let (ok, said) = check_config(&copy);
        if !ok {
            errors.push(format!("{name}: check-config rejects it:\n{said}"));
        }
    }
    assert_no_errors("example configurations", &errors);
}

/// The check above means something only if check-config rejects what is wrong: an unknown
/// key (a typo in an example would otherwise pass unnoticed).
#[test]
fn check_config_rejects_an_unknown_key() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let config = tmp.path().join("unknown-key.yml");
    std::fs::write(
        &config,
        "api:\n  api_key: k\n  api_secret: s\n  no_such_key: 1\napps:\n  - id: a\n",
    )
    .expect("write config");
    let (ok, said) = check_config(&config);
    assert!(!ok, "check-config accepted an unknown key:\n{said}");
    assert!(
        said.contains("no_such_key"),
        "error does not name the key:\n{said}"
    );
}

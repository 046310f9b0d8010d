//! deploy/docker: the Dockerfile and the compose stack, statically (no Docker engine here).

use crate::*;

const DOCKERFILE: &str = "deploy/docker/Dockerfile";

/// `(major, minor)` of a version written `1.91` or `1.91-bookworm` or `1.91.0`.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The crate's (or workspace's) `rust-version = "x.y"`.
fn rust_version() -> (u32, u32) {
    read("Cargo.toml")
        .lines()
        .find_map(|line| {
            let value = line.trim().strip_prefix("rust-version")?.trim_start();
            major_minor(value.strip_prefix('=')?.trim().trim_matches('"'))
        })
        .expect("Cargo.toml declares rust-version = \"x.y\"")
}

#[test]
fn dockerfile_builds_with_the_msrv_and_runs_unprivileged_on_8467() {
    let dockerfile = read(DOCKERFILE);
    let mut errors = Vec::new();
    // The image of every FROM.
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let first = words.next()?;
            first.eq_ignore_ascii_case("FROM").then(|| words.next())?
        })
        .collect();
    if stages.len() < 2 {
        errors.push("Dockerfile must be multi-stage".into());
    } else {
        // The build image must satisfy the crate's rust-version (its dependencies' MSRV).
        let need = rust_version();
        let build = stages[0];
        let has = build.strip_prefix("rust:").and_then(major_minor);
        if has.is_none_or(|has| has < need) {
            errors.push(format!(
                "build stage must use a rust:{}.{}+ image (Cargo.toml rust-version), got {build}",
                need.0, need.1
            ));
        }
        if stages[stages.len() - 1].contains("rust") {
            errors.push("runtime stage must not be the Rust image".into());
        }
    }
    if !dockerfile.contains("cargo build --release --locked") {
        errors.push("Dockerfile must run cargo build --release --locked".into());
    }
    let runtime = dockerfile
        .rfind("\nFROM")
        .map_or(dockerfile.as_str(), |at| &dockerfile[at..]);
    let user = runtime
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .map(|u| u.trim().split(':').next().unwrap_or(""));
    if user.is_none_or(|u| matches!(u, "root" | "0")) {
        errors.push("runtime stage must switch to a non-root USER".into());
    }
    let exposes = dockerfile.lines().any(|l| {
        l.strip_prefix("EXPOSE")
            .is_some_and(|ports| ports.split_whitespace().next() == Some("8467"))
    });
    if !exposes {
        errors.push("Dockerfile must EXPOSE 8467".into());
    }
    if !root()
        .join("deploy/docker/Dockerfile.dockerignore")
        .exists()
    {
        errors.push(
            "deploy/docker/Dockerfile.dockerignore missing (target/ would be sent as context)"
                .into(),
        );
    }
    // The context excludes .git/, so the revision of --version and otp_exporter_build_info
    // reaches build.rs only as a build argument declared before the build.
    let revision_arg = "ITNIO_OTP_EXPORTER_REVISION";
    let declared_at = dockerfile.find(&format!("ARG {revision_arg}"));
    let built_at = dockerfile.find("cargo build");
    if !matches!((declared_at, built_at), (Some(a), Some(b)) if a < b) {
        errors.push(format!(
            "the build stage must declare ARG {revision_arg} before cargo build"
        ));
    }
    if !read("build.rs").contains(revision_arg) {
        errors.push(format!("build.rs no longer reads {revision_arg}"));
    }
    assert_no_errors(DOCKERFILE, &errors);
}

#[test]
fn compose_stack_mounts_existing_files_and_provisions_grafana() {
    let base = root().join("deploy/docker");
    let compose = yaml("deploy/docker/docker-compose.yml");
    let services = &compose["services"];
    let mut errors = Vec::new();
    for name in ["demo", "prometheus", "grafana"] {
        if services[name].is_null() {
            errors.push(format!("service {name} missing"));
        }
    }
    for (name, service) in services.as_mapping().into_iter().flatten() {
        let name = text(name);
        let build = &service["build"];
        if !build.is_null() {
            let dockerfile = build["dockerfile"].as_str().unwrap_or("Dockerfile");
            let context = base.join(text(&build["context"]));
            if !context.join(dockerfile).exists() {
                errors.push(format!(
                    "{name}: dockerfile {dockerfile} not found in context {}",
                    text(&build["context"])
                ));
            }
        }
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = text(volume).split(':').next().unwrap_or("");
            if source.starts_with(['.', '/']) {
                if !base.join(source).exists() {
                    errors.push(format!("{name}: mounted path {source} does not exist"));
                }
            } else if compose["volumes"].get(source).is_none() {
                errors.push(format!("{name}: named volume {source} not declared"));
            }
        }
    }
    let mounts = |service: &str| -> Vec<String> {
        services[service]["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|v| text(v).to_string())
            .collect()
    };
    let demo: Vec<&str> = services["demo"]["command"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    if !demo.contains(&"demo") || !demo.contains(&"0.0.0.0:8467") {
        errors.push("demo: command must be demo --listen 0.0.0.0:8467".into());
    }
    let prometheus = mounts("prometheus").join(" ");
    for file in ["rules.yml", "alerts.yml"] {
        if !prometheus.contains(&format!("../prometheus/{file}")) {
            errors.push(format!(
                "prometheus: does not mount deploy/prometheus/{file}"
            ));
        }
    }
    let grafana = mounts("grafana").join(" ");
    if !grafana.contains("../../dashboards") || !grafana.contains("provisioning") {
        errors.push("grafana: must mount dashboards/ and the provisioning folder".into());
    }
    let datasources = yaml("deploy/docker/grafana/provisioning/datasources/prometheus.yml");
    let points_at_prometheus = datasources["datasources"]
        .as_sequence()
        .into_iter()
        .flatten()
        .any(|d| text(&d["type"]) == "prometheus" && text(&d["url"]).contains("prometheus:9090"));
    if !points_at_prometheus {
        errors.push("Grafana datasource provisioning must point at http://prometheus:9090".into());
    }
    let providers = yaml("deploy/docker/grafana/provisioning/dashboards/otp.yml");
    let reads_dashboards = providers["providers"]
        .as_sequence()
        .into_iter()
        .flatten()
        .any(|p| text(&p["options"]["path"]) == "/var/lib/grafana/dashboards");
    if !reads_dashboards {
        errors.push("Grafana dashboard provider must read /var/lib/grafana/dashboards".into());
    }
    assert_no_errors("deploy/docker/docker-compose.yml", &errors);
}

/// The only deploy check that cannot run here: this machine has the docker CLI but neither
/// an engine nor the compose plugin. It shows as skipped in the test summary; run it where
/// Docker Compose exists with `cargo nextest run --test deploy --run-ignored all compose`.
#[test]
#[ignore = "needs the docker compose plugin, which this machine does not have"]
fn docker_compose_accepts_the_compose_file() {
    run_ok(
        "docker",
        &[
            "compose",
            "-f",
            "deploy/docker/docker-compose.yml",
            "config",
            "--quiet",
        ],
        "Docker Compose v2",
    );
}

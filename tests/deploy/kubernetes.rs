//! deploy/kubernetes: the core resources against Kubernetes' schemas (kubernetes-validate),
//! the PrometheusRule generated from deploy/prometheus and accepted by promtool, and the
//! cross-references between the manifests (selectors, ports, volumes, namespace).

use std::collections::{BTreeMap, BTreeSet};

use crate::*;

const DIR: &str = "deploy/kubernetes";

/// Every manifest document, with the file it is in.
fn manifests() -> Vec<(String, Yaml)> {
    files(DIR, ".yaml")
        .into_iter()
        .flat_map(|path| {
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .to_string();
            yaml_documents(&path)
                .into_iter()
                .map(move |doc| (name.clone(), doc))
        })
        .collect()
}

/// Custom resources (Prometheus Operator) and kustomize's file are not in the core schemas.
fn is_core(doc: &Yaml) -> bool {
    let api = text(&doc["apiVersion"]);
    !(api.starts_with("monitoring.coreos.com/") || api.starts_with("kustomize.config.k8s.io/"))
}

#[test]
fn core_resources_match_the_kubernetes_schemas() {
    let core: BTreeSet<String> = manifests()
        .into_iter()
        .filter(|(_, doc)| is_core(doc))
        .map(|(file, _)| format!("{DIR}/{file}"))
        .collect();
    assert!(core.len() >= 5, "core manifests found: {core:?}");
    let core: Vec<&str> = core.iter().map(String::as_str).collect();
    // The oldest Kubernetes the manifests promise to work with, and the package's newest.
    for version in [&["-k", "1.29.0"][..], &[]] {
        let mut args = vec!["-m", "kubernetes_validate", "--strict", "--quiet"];
        args.extend_from_slice(version);
        args.extend_from_slice(&core);
        run_ok("python3", &args, PIP_REQUIREMENTS);
    }
}

#[test]
fn prometheusrule_is_generated_from_the_rule_files() {
    run_ok(
        "python3",
        &["deploy/kubernetes/generate-prometheusrule.py", "--check"],
        PIP_REQUIREMENTS,
    );
}

fn exactly_one<'a>(docs: &'a [(String, Yaml)], kind: &str, errors: &mut Vec<String>) -> &'a Yaml {
    let found: Vec<&Yaml> = docs
        .iter()
        .filter(|(_, d)| text(&d["kind"]) == kind)
        .map(|(_, d)| d)
        .collect();
    if found.len() != 1 {
        errors.push(format!(
            "expected exactly one {kind}, found {}",
            found.len()
        ));
    }
    found.first().copied().unwrap_or(&Yaml::Null)
}

/// Whether every key/value of `selector` is among `labels`.
fn selects(selector: &Yaml, labels: &Yaml) -> bool {
    selector
        .as_mapping()
        .is_some_and(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn names(v: &Yaml, key: &str) -> BTreeSet<String> {
    v.as_sequence()
        .into_iter()
        .flatten()
        .map(|item| text(&item[key]).to_string())
        .collect()
}

#[test]
fn workload_service_and_operator_resources_refer_to_each_other() {
    let docs = manifests();
    let mut errors = Vec::new();
    let ns = exactly_one(&docs, "Namespace", &mut errors);
    let sts = exactly_one(&docs, "StatefulSet", &mut errors);
    let svc = exactly_one(&docs, "Service", &mut errors);
    let sm = exactly_one(&docs, "ServiceMonitor", &mut errors);
    let pr = exactly_one(&docs, "PrometheusRule", &mut errors);
    let kus = exactly_one(&docs, "Kustomization", &mut errors);
    let namespace = text(&ns["metadata"]["name"]);

    let pod = &sts["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    if !selects(&sts["spec"]["selector"]["matchLabels"], labels) {
        errors.push("StatefulSet selector does not match its pod labels".into());
    }
    if !selects(&svc["spec"]["selector"], labels) {
        errors.push("Service selector does not match the StatefulSet's pods".into());
    }
    if text(&sts["spec"]["serviceName"]) != text(&svc["metadata"]["name"]) {
        errors.push("StatefulSet serviceName is not the Service".into());
    }
    let containers = pod["spec"]["containers"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    let container_ports: BTreeSet<String> = containers
        .iter()
        .flat_map(|c| names(&c["ports"], "name"))
        .collect();
    for port in svc["spec"]["ports"].as_sequence().into_iter().flatten() {
        let target = text(&port["targetPort"]);
        if !container_ports.contains(target) {
            errors.push(format!(
                "Service targetPort {target:?} is no container port name"
            ));
        }
    }
    let mounts: BTreeSet<String> = containers
        .iter()
        .flat_map(|c| names(&c["volumeMounts"], "mountPath"))
        .collect();
    for path in ["/var/lib/itnio-otp-exporter", "/var/spool/itnio-otp"] {
        if !mounts.contains(path) {
            errors.push(format!("StatefulSet does not mount {path}"));
        }
    }
    if sts["spec"]["volumeClaimTemplates"]
        .as_sequence()
        .is_none_or(|t| t.is_empty())
    {
        errors.push("StatefulSet has no volumeClaimTemplates for its state".into());
    }
    let named: BTreeMap<&str, BTreeSet<&str>> = ["ConfigMap", "Secret", "PersistentVolumeClaim"]
        .into_iter()
        .map(|kind| {
            let of_kind = docs
                .iter()
                .filter(|(_, d)| text(&d["kind"]) == kind)
                .map(|(_, d)| text(&d["metadata"]["name"]))
                .collect();
            (kind, of_kind)
        })
        .collect();
    for volume in pod["spec"]["volumes"].as_sequence().into_iter().flatten() {
        for (key, kind, field) in [
            ("configMap", "ConfigMap", "name"),
            ("secret", "Secret", "secretName"),
            (
                "persistentVolumeClaim",
                "PersistentVolumeClaim",
                "claimName",
            ),
        ] {
            let wanted = &volume[key];
            if !wanted.is_null() && !named[kind].contains(text(&wanted[field])) {
                errors.push(format!(
                    "volume {} refers to a missing {kind} {}",
                    text(&volume["name"]),
                    text(&wanted[field])
                ));
            }
        }
    }
    if pod["spec"]["securityContext"]["runAsNonRoot"].as_bool() != Some(true) {
        errors.push("pod must set runAsNonRoot".into());
    }
    for (file, d) in &docs {
        let kind = text(&d["kind"]);
        if !matches!(kind, "Namespace" | "Kustomization")
            && text(&d["metadata"]["namespace"]) != namespace
        {
            errors.push(format!("{file}: namespace is not {namespace}"));
        }
    }

    if text(&sm["apiVersion"]) != "monitoring.coreos.com/v1" {
        errors.push("ServiceMonitor apiVersion must be monitoring.coreos.com/v1".into());
    }
    let spec = &sm["spec"];
    if !selects(&spec["selector"]["matchLabels"], &svc["metadata"]["labels"]) {
        errors.push("ServiceMonitor selector does not match the Service's labels".into());
    }
    let service_ports = names(&svc["spec"]["ports"], "name");
    const ENDPOINT_FIELDS: &[&str] = &[
        "port",
        "path",
        "interval",
        "scrapeTimeout",
        "scheme",
        "honorLabels",
        "relabelings",
        "metricRelabelings",
    ];
    for endpoint in spec["endpoints"].as_sequence().into_iter().flatten() {
        let port = text(&endpoint["port"]);
        if !service_ports.contains(port) {
            errors.push(format!(
                "ServiceMonitor endpoint port {port:?} is no Service port name"
            ));
        }
        for field in endpoint
            .as_mapping()
            .into_iter()
            .flatten()
            .map(|(k, _)| text(k))
        {
            if !ENDPOINT_FIELDS.contains(&field) {
                errors.push(format!("ServiceMonitor endpoint field {field} unexpected"));
            }
        }
    }
    let watched: Vec<&str> = spec["namespaceSelector"]["matchNames"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    if !watched.contains(&namespace) {
        errors.push("ServiceMonitor namespaceSelector misses the namespace".into());
    }

    let pr_spec_keys: Vec<&str> = pr["spec"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, _)| text(k))
        .collect();
    if text(&pr["apiVersion"]) != "monitoring.coreos.com/v1" || pr_spec_keys != ["groups"] {
        errors.push("PrometheusRule must be monitoring.coreos.com/v1 with spec.groups only".into());
    }

    let listed: BTreeSet<&str> = kus["resources"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let present: BTreeSet<String> = files(DIR, ".yaml")
        .iter()
        .map(|p| {
            p.file_name()
                .expect("file name")
                .to_string_lossy()
                .to_string()
        })
        .filter(|f| f != "kustomization.yaml")
        .collect();
    let present: BTreeSet<&str> = present.iter().map(String::as_str).collect();
    if listed != present {
        errors.push(format!(
            "kustomization.yaml resources {listed:?} differ from the files {present:?}"
        ));
    }
    assert_no_errors(DIR, &errors);
}

#[test]
fn promtool_accepts_the_prometheusrule_groups() {
    let docs = manifests();
    let mut errors = Vec::new();
    let pr = exactly_one(&docs, "PrometheusRule", &mut errors);
    assert_no_errors(DIR, &errors);
    let mut groups = serde_yaml::Mapping::new();
    groups.insert("groups".into(), pr["spec"]["groups"].clone());
    let tmp = tempfile::tempdir().expect("temporary directory");
    let file = tmp.path().join("prometheusrule-groups.yml");
    std::fs::write(&file, serde_yaml::to_string(&groups).expect("YAML")).expect("write");
    run_ok(
        "promtool",
        &["check", "rules", &file.display().to_string()],
        PROMETHEUS_DEB,
    );
}

//! dashboards/: the committed JSON is what the generator writes, follows the structure the
//! operators rely on, and `queries.jsonl` (which the live-Prometheus test evaluates) lists
//! exactly the dashboards' queries.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use crate::grafana;
use crate::*;

#[test]
fn dashboards_are_what_the_generator_writes() {
    run_ok(
        "python3",
        &["dashboards/generate.py", "--check"],
        "python3 -m pip install -r dashboards/requirements.txt",
    );
}

fn dashboards() -> Vec<(String, Json)> {
    let found: Vec<(String, Json)> = files("dashboards", ".json")
        .into_iter()
        .map(|path| {
            let name = format!(
                "dashboards/{}",
                path.file_name().expect("file name").to_string_lossy()
            );
            let json = serde_json::from_str(&read(&path))
                .unwrap_or_else(|e| panic!("{name}: invalid JSON: {e}"));
            (name, json)
        })
        .collect();
    assert!(!found.is_empty(), "no dashboards/*.json");
    found
}

fn str_of(v: &Json) -> &str {
    v.as_str().unwrap_or("")
}

/// Every `datasource` below `node` is the dashboard's datasource variable.
fn check_datasources(node: &Json, at: &str, errors: &mut Vec<String>) {
    match node {
        Json::Object(map) => {
            for (key, value) in map {
                if key == "datasource" {
                    match value {
                        Json::Object(ds) => {
                            let uid = ds.get("uid").and_then(Json::as_str);
                            if uid != Some("${datasource}") {
                                errors.push(format!(
                                    "{at}: datasource uid {uid:?} (only ${{datasource}} is allowed)"
                                ));
                            }
                            let kind = ds.get("type").and_then(Json::as_str);
                            if !matches!(kind, None | Some("prometheus")) {
                                errors.push(format!("{at}: datasource type {kind:?}"));
                            }
                        }
                        Json::Null => {}
                        other => errors.push(format!(
                            "{at}: datasource given as {other} (use {{type, uid: ${{datasource}}}})"
                        )),
                    }
                }
                check_datasources(value, at, errors);
            }
        }
        Json::Array(items) => items.iter().for_each(|v| check_datasources(v, at, errors)),
        _ => {}
    }
}

/// The range windows of `rate(`, `irate(` and `increase(` calls written directly on a
/// selector: `rate(x{...}[window])`.
fn rate_windows(expr: &str) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for function in ["rate", "irate", "increase"] {
        for (at, _) in expr.match_indices(function) {
            let before = expr[..at].chars().next_back();
            if before.is_some_and(is_word) {
                continue;
            }
            let rest = expr[at + function.len()..].trim_start();
            let Some(args) = rest.strip_prefix('(') else {
                continue;
            };
            let Some(open) = args.find(['[', ']', '(', ')']) else {
                continue;
            };
            if !args[open..].starts_with('[') {
                continue;
            }
            if let Some(close) = args[open..].find(']') {
                found.push((function, args[open + 1..open + close].to_string()));
            }
        }
    }
    found
}

fn check_expr(expr: &str, at: &str, errors: &mut Vec<String>) {
    for reference in grafana::references(expr) {
        if grafana::value_of(&reference.name).is_none() {
            errors.push(format!(
                "{at}: template variable ${} is not one of tests/grafana's VARIABLES",
                reference.name
            ));
        }
    }
    for (function, window) in rate_windows(expr) {
        let allowed: &[&str] = if function == "increase" {
            &["$__range", "$__rate_interval"]
        } else {
            &["$__rate_interval"]
        };
        if !allowed.contains(&window.as_str()) {
            errors.push(format!(
                "{at}: {function}(...[{window}]) must use {}",
                allowed.join(" or ")
            ));
        }
    }
}

#[test]
fn dashboards_use_the_datasource_variable_units_descriptions_and_known_variables() {
    let mut errors = Vec::new();
    let mut uids: BTreeMap<String, String> = BTreeMap::new();
    for (path, d) in dashboards() {
        let uid = str_of(&d["uid"]);
        let valid_uid = (1..=40).contains(&uid.len())
            && uid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !valid_uid {
            errors.push(format!("{path}: missing or invalid uid {uid:?}"));
        } else if let Some(first) = uids.insert(uid.to_string(), path.clone()) {
            errors.push(format!("{path}: uid {uid} already used by {first}"));
        }
        if !d["id"].is_null() {
            errors.push(format!(
                "{path}: has a numeric id (remove it so the import creates its own)"
            ));
        }
        let variables: BTreeMap<&str, &Json> = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| (str_of(&v["name"]), v))
            .collect();
        let ds_ok = variables.get("datasource").is_some_and(|ds| {
            str_of(&ds["type"]) == "datasource" && str_of(&ds["query"]) == "prometheus"
        });
        if !ds_ok {
            errors.push(format!(
                "{path}: needs a `datasource` variable of type datasource, query prometheus"
            ));
        }
        check_datasources(&d["templating"], &format!("{path} templating"), &mut errors);
        check_datasources(
            &d["annotations"],
            &format!("{path} annotations"),
            &mut errors,
        );
        let mut used = BTreeSet::new();
        for panel in d["panels"].as_array().into_iter().flatten() {
            if str_of(&panel["type"]) == "row" {
                continue;
            }
            let at = format!("{path} panel {:?}", str_of(&panel["title"]));
            check_datasources(panel, &at, &mut errors);
            if str_of(&panel["fieldConfig"]["defaults"]["unit"]).is_empty() {
                errors.push(format!("{at}: no unit in fieldConfig.defaults.unit"));
            }
            if str_of(&panel["description"]).chars().count() < 40 {
                errors.push(format!(
                    "{at}: needs a description saying what to do when it looks bad"
                ));
            }
            if str_of(&panel["datasource"]["uid"]) != "${datasource}" {
                errors.push(format!("{at}: panel datasource must be ${{datasource}}"));
            }
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                errors.push(format!("{at}: no targets"));
            }
            for target in &targets {
                let expr = str_of(&target["expr"]);
                let at = format!("{at} target {}", str_of(&target["refId"]));
                if expr.trim().is_empty() {
                    errors.push(format!("{at}: no expr"));
                    continue;
                }
                check_expr(expr, &at, &mut errors);
                used.extend(grafana::references(expr).into_iter().map(|r| r.name));
            }
        }
        for name in ["app_id", "channel", "country"] {
            if variables.contains_key(name) && !used.contains(name) {
                errors.push(format!("{path}: variable {name} filters nothing"));
            }
        }
    }
    assert_no_errors("dashboards", &errors);
}

/// What identifies a query: its dashboard, file, panel, refId and expression.
type QueryKey = (String, String, i64, String, String, String);

#[test]
fn queries_jsonl_lists_exactly_the_dashboards_queries() {
    let mut in_dashboards: Vec<QueryKey> = Vec::new();
    for (path, d) in dashboards() {
        for panel in d["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                in_dashboards.push((
                    str_of(&d["uid"]).to_string(),
                    path.clone(),
                    panel["id"].as_i64().unwrap_or(-1),
                    str_of(&panel["title"]).to_string(),
                    str_of(&target["refId"]).to_string(),
                    str_of(&target["expr"]).to_string(),
                ));
            }
        }
    }
    let mut listed: Vec<QueryKey> = read("dashboards/queries.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let q: Json = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("dashboards/queries.jsonl: {e}: {line}"));
            (
                str_of(&q["dashboard"]).to_string(),
                str_of(&q["file"]).to_string(),
                q["panel_id"].as_i64().unwrap_or(-1),
                str_of(&q["panel"]).to_string(),
                str_of(&q["ref_id"]).to_string(),
                str_of(&q["expr"]).to_string(),
            )
        })
        .collect();
    in_dashboards.sort();
    listed.sort();
    let missing: Vec<String> = in_dashboards
        .iter()
        .filter(|q| !listed.contains(q))
        .map(|q| format!("not in queries.jsonl: {q:?}"))
        .collect();
    let extra: Vec<String> = listed
        .iter()
        .filter(|q| !in_dashboards.contains(q))
        .map(|q| format!("in queries.jsonl, in no dashboard: {q:?}"))
        .collect();
    assert_no_errors("dashboards/queries.jsonl", &[missing, extra].concat());
    assert_eq!(
        listed.len(),
        in_dashboards.len(),
        "dashboards/queries.jsonl lists a query twice"
    );
}

#[test]
fn rate_windows_are_found_where_the_selector_is_written() {
    assert_eq!(
        rate_windows("sum(rate(a{x=\"1\"}[$__rate_interval])) / increase(b[1h]) + irate(c[5m])"),
        vec![
            ("rate", "$__rate_interval".to_string()),
            ("irate", "5m".to_string()),
            ("increase", "1h".to_string()),
        ]
    );
    assert!(rate_windows("rate(sum(x)[5m:1m])").is_empty());
}

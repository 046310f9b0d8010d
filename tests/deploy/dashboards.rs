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

/// The exporter's address the dashboards' `exporter_url` variable defaults to (the daemon's
/// default `listen`, as the README documents it).
const EXPORTER_URL_DEFAULT: &str = "http://localhost:8467";

/// The filters the exporter's `/orders` page and `/api/v1/orders` accept (design of issue 10),
/// named like the metric labels, so that a series' label is a filter of the same name.
const ORDERS_FILTERS: &[&str] = &[
    "app_id", "country", "mcc", "mnc", "operator", "channel", "outcome", "state",
];

/// The labels of every `by (...)` clause of a query.
fn grouping_labels(expr: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for (at, _) in expr.match_indices("by") {
        let before = expr[..at].chars().next_back();
        let after = expr[at + 2..].chars().next();
        if before.is_some_and(is_word) || after.is_some_and(is_word) {
            continue;
        }
        let Some(rest) = expr[at + 2..].trim_start().strip_prefix('(') else {
            continue;
        };
        if let Some(close) = rest.find(')') {
            found.extend(
                rest[..close]
                    .split(',')
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty()),
            );
        }
    }
    found
}

/// What a data link reads from the clicked data: `${__field.labels.X}` (a time series'
/// label) or `${__data.fields.X}` (a table row's field X), by query parameter.
#[derive(Debug, PartialEq, Eq)]
enum LinkValue {
    Label(String),
    Field(String),
    Other(String),
}

fn link_value(value: &str) -> LinkValue {
    let inner = value.strip_prefix("${").and_then(|v| v.strip_suffix('}'));
    match inner {
        Some(v) if v.starts_with("__field.labels.") => {
            LinkValue::Label(v["__field.labels.".len()..].to_string())
        }
        Some(v) if v.starts_with("__data.fields.") => {
            LinkValue::Field(v["__data.fields.".len()..].to_string())
        }
        _ => LinkValue::Other(value.to_string()),
    }
}

/// Checks one link URL: the exporter's `/orders` or `/api/v1/breakdown` under
/// `${exporter_url}`, known filters only, the time range as `since=${__from}&until=${__to}`.
/// Returns its path and its parameters.
fn check_link(url: &str, at: &str, errors: &mut Vec<String>) -> (String, Vec<(String, String)>) {
    let Some(rest) = url.strip_prefix("${exporter_url}") else {
        errors.push(format!(
            "{at}: link {url:?} does not start with ${{exporter_url}}"
        ));
        return (String::new(), Vec::new());
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let allowed_extra: &[&str] = match path {
        "/orders" => &[],
        "/api/v1/breakdown" => &["by"],
        other => {
            errors.push(format!(
                "{at}: link {url:?} goes to {other:?}, not /orders or /api/v1/breakdown"
            ));
            &[]
        }
    };
    let value = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if value("since") != Some("${__from}") || value("until") != Some("${__to}") {
        errors.push(format!(
            "{at}: link {url:?} must carry the time range as since=${{__from}}&until=${{__to}}"
        ));
    }
    for (name, v) in &params {
        let known = ORDERS_FILTERS.contains(&name.as_str())
            || allowed_extra.contains(&name.as_str())
            || matches!(name.as_str(), "since" | "until");
        if !known {
            errors.push(format!(
                "{at}: link {url:?}: {name} is not a filter /orders accepts"
            ));
        }
        if let LinkValue::Label(label) | LinkValue::Field(label) = link_value(v) {
            if &label != name {
                errors.push(format!(
                    "{at}: link {url:?}: {name}= carries the label {label}, not {name}"
                ));
            }
        }
    }
    // The link, with the variable's default, a time range and a country, is a valid URL whose
    // parameters come out as written.
    let rendered = url
        .replace("${exporter_url}", EXPORTER_URL_DEFAULT)
        .replace("${__from}", "1764520800000")
        .replace("${__to}", "1764524400000");
    let rendered = params
        .iter()
        .fold(rendered, |u, (name, v)| match link_value(v) {
            LinkValue::Other(_) => u,
            _ => u.replace(v.as_str(), &format!("{name}-value")),
        });
    match reqwest::Url::parse(&rendered) {
        Ok(parsed) => {
            let parsed_params: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if parsed_params.len() != params.len() || parsed.path() != path {
                errors.push(format!("{at}: link {url:?} renders as {rendered}"));
            }
        }
        Err(e) => errors.push(format!("{at}: link {url:?} renders as {rendered}: {e}")),
    }
    (path.to_string(), params)
}

#[test]
fn dashboards_have_the_exporter_url_variable_and_drill_down_links() {
    let mut errors = Vec::new();
    let mut linked_panels = 0;
    for (path, d) in dashboards() {
        let variable = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| str_of(&v["name"]) == "exporter_url");
        match variable {
            Some(v) => {
                if str_of(&v["type"]) != "textbox" {
                    errors.push(format!("{path}: exporter_url must be a textbox variable"));
                }
                if str_of(&v["query"]) != EXPORTER_URL_DEFAULT
                    || str_of(&v["current"]["value"]) != EXPORTER_URL_DEFAULT
                {
                    errors.push(format!(
                        "{path}: exporter_url must default to {EXPORTER_URL_DEFAULT}"
                    ));
                }
                if !str_of(&v["description"]).contains("/orders") {
                    errors.push(format!(
                        "{path}: exporter_url's description says nothing of /orders"
                    ));
                }
            }
            None => errors.push(format!("{path}: no exporter_url variable")),
        }
        if !str_of(&d["description"]).contains("exporter_url") {
            errors.push(format!(
                "{path}: the description does not document exporter_url"
            ));
        }
        for link in d["links"].as_array().into_iter().flatten() {
            if str_of(&link["type"]) == "link" {
                check_link(
                    str_of(&link["url"]),
                    &format!("{path} dashboard links"),
                    &mut errors,
                );
            }
        }
        for panel in d["panels"].as_array().into_iter().flatten() {
            if str_of(&panel["type"]) == "row" {
                continue;
            }
            let at = format!("{path} panel {:?}", str_of(&panel["title"]));
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            let grouped: BTreeSet<String> = targets
                .iter()
                .flat_map(|t| grouping_labels(str_of(&t["expr"])))
                .collect();
            let is_table_data =
                !targets.is_empty() && targets.iter().all(|t| str_of(&t["format"]) == "table");
            let links = panel["fieldConfig"]["defaults"]["links"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut orders_labels: Vec<BTreeSet<String>> = Vec::new();
            for link in &links {
                let (link_path, params) = check_link(str_of(&link["url"]), &at, &mut errors);
                let mut carried = BTreeSet::new();
                for (name, value) in &params {
                    let (label, table_field) = match link_value(value) {
                        LinkValue::Label(l) => (l, false),
                        LinkValue::Field(l) => (l, true),
                        LinkValue::Other(_) => continue,
                    };
                    if table_field != is_table_data {
                        errors.push(format!(
                            "{at}: {name}= reads {value}, but the panel's data are {}: use {}",
                            if is_table_data {
                                "table rows"
                            } else {
                                "time series"
                            },
                            if is_table_data {
                                "${__data.fields.X}"
                            } else {
                                "${__field.labels.X}"
                            }
                        ));
                    }
                    if !grouped.contains(&label) {
                        errors.push(format!(
                            "{at}: {name}= reads the label {label}, which no query of the panel keeps"
                        ));
                    }
                    carried.insert(label);
                }
                if link_path == "/orders" {
                    orders_labels.push(carried);
                }
            }
            // Every time series of a linked panel has the labels its links read, or its
            // links are switched off (a reference line such as the SLO target).
            let read: BTreeSet<String> = orders_labels.iter().flatten().cloned().collect();
            if !links.is_empty() && !is_table_data {
                for t in &targets {
                    let expr = str_of(&t["expr"]);
                    if read.is_subset(&grouping_labels(expr)) {
                        continue;
                    }
                    let legend = str_of(&t["legendFormat"]);
                    let unlinked = panel["fieldConfig"]["overrides"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|o| {
                            str_of(&o["matcher"]["options"]) == legend
                                && o["properties"].as_array().into_iter().flatten().any(|p| {
                                    str_of(&p["id"]) == "links"
                                        && p["value"].as_array().is_some_and(|v| v.is_empty())
                                })
                        });
                    if !unlinked {
                        errors.push(format!(
                            "{at}: series {legend:?} lacks labels its links read ({read:?}): override its links with []"
                        ));
                    }
                }
            }
            // Per-country and per-operator panels link to their orders.
            let required: BTreeSet<String> = ["country", "operator"]
                .iter()
                .map(|s| s.to_string())
                .filter(|l| grouped.contains(l))
                .collect();
            if required.is_empty() {
                continue;
            }
            linked_panels += 1;
            if !orders_labels.iter().any(|c| required.is_subset(c)) {
                errors.push(format!(
                    "{at}: groups by {required:?} but no data link to ${{exporter_url}}/orders carries them"
                ));
            }
        }
    }
    assert!(
        linked_panels >= 10,
        "only {linked_panels} per-country/operator panels"
    );
    assert_no_errors("dashboard drill-down links", &errors);
}

#[test]
fn grouping_labels_are_read_from_by_clauses() {
    assert_eq!(
        grouping_labels("sum by (country, mcc) (x) / sum by(operator) (y) + sum_by_z(w) + bytes"),
        ["country", "mcc", "operator"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[test]
fn a_link_with_an_unknown_filter_or_no_time_range_is_refused() {
    let mut errors = Vec::new();
    check_link(
        "${exporter_url}/orders?country=${__field.labels.country}&since=${__from}&until=${__to}",
        "good",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    check_link(
        "${exporter_url}/orders?region=${__field.labels.region}",
        "bad",
        &mut errors,
    );
    assert!(
        errors.iter().any(|e| e.contains("time range")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("region is not a filter")),
        "{errors:?}"
    );
    errors.clear();
    check_link(
        "${exporter_url}/orders?country=${__field.labels.mcc}&since=${__from}&until=${__to}",
        "mismatch",
        &mut errors,
    );
    assert!(
        errors.iter().any(|e| e.contains("carries the label mcc")),
        "{errors:?}"
    );
}

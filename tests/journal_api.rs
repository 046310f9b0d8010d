//! The order journal's JSON API and HTML pages on the real binary, against the real
//! simulator: filters, time ranges (relative, RFC 3339, Unix ms), cursors whose pages
//! cover every order exactly once, 400s naming the parameter and its value, 404s for
//! unknown orders (JSON and HTML), masked receivers, hostile order ids escaped on every
//! page, no secret anywhere, and the on-call drill-down from `/` to a country's failed
//! orders and one order's timeline.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{SecondsFormat, TimeZone, Utc};
use serde_json::Value;

use common::*;

/// Ids a spool accepts (visible ASCII, no spaces) that would break unescaped HTML,
/// attributes or URLs.
const HOSTILE_IDS: [&str; 5] = [
    "<script>alert(1)</script>",
    "\"onmouseover=\"alert(2)",
    "a&b'c<i>",
    "x/../y?z=1#w%41",
    "<img/src=x/onerror=alert(3)>",
];

fn json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = get(addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, value)
}

fn html(addr: SocketAddr, path: &str) -> (u16, String) {
    get(addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// A path segment as the pages encode it.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn query_value(text: &str) -> String {
    segment(text)
}

fn ids(v: &Value) -> Vec<String> {
    v["orders"]
        .as_array()
        .unwrap_or_else(|| panic!("no orders: {v}"))
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_string())
        .collect()
}

fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Every `href` of elements with `class` on a page, unescaped.
fn hrefs(page: &str, class: &str) -> Vec<String> {
    let marker = format!("class=\"{class}\" href=\"");
    page.match_indices(&marker)
        .map(|(i, _)| {
            let rest = &page[i + marker.len()..];
            let end = rest.find('"').unwrap();
            rest[..end].replace("&amp;", "&")
        })
        .collect()
}

/// No raw hostile markup: each id shows only escaped.
fn assert_escaped(page: &str, what: &str) {
    for bad in [
        "<script>",
        "<img",
        "<i>",
        "\"onmouseover=",
        "alert(1)</script>",
    ] {
        assert!(!page.contains(bad), "{what} has {bad:?} unescaped:\n{page}");
    }
}

/// Orders issued a minute apart back from now (`i` minutes and 30 s ago), in one
/// spool file of JSON lines with explicit issue times, plus hostile ids issued now.
/// The provider never saw them: they end `not_found`.
#[test]
fn lists_cursors_time_ranges_errors_and_escaping() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--seed", "3", "--time-scale", TIME_SCALE]);
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");

    let now_ms = unix_now() as i64 * 1000;
    let issued = |i: i64| now_ms - (i * 60 + 30) * 1000;
    let mut lines = String::new();
    for i in 0..40 {
        let app = if i % 2 == 0 { "app-a" } else { "app-b" };
        lines.push_str(&format!(
            "{{\"orderId\":\"old-{i:02}\",\"appId\":\"{app}\",\"issuedAt\":\"{}\"}}\n",
            rfc3339(issued(i))
        ));
    }
    for id in HOSTILE_IDS {
        lines.push_str(&format!(
            "{}\n",
            serde_json::json!({"orderId": id, "appId": "app-a", "issuedAt": rfc3339(now_ms)})
        ));
    }
    drop_spool_file(&exporter.spool(), "batch", &lines);
    let total = 40 + HOSTILE_IDS.len();
    let all = wait_for(Duration::from_secs(30), || {
        let (status, v) = json(addr, "/api/v1/orders?limit=1000");
        (status == 200 && ids(&v).len() == total).then_some(v)
    })
    .unwrap_or_else(|| {
        panic!(
            "the journal never listed {total} orders\n{}",
            exporter.proc.log()
        )
    });
    assert!(all["next_cursor"].is_null(), "{all}");

    // Newest first: the hostile ids (issued now), then old-00 … old-39.
    let listed = ids(&all);
    let hostile: BTreeSet<String> = HOSTILE_IDS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        listed[..HOSTILE_IDS.len()]
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        hostile
    );
    let old: Vec<String> = (0..40).map(|i| format!("old-{i:02}")).collect();
    assert_eq!(listed[HOSTILE_IDS.len()..], old[..]);
    let first_old = &all["orders"][HOSTILE_IDS.len()];
    assert_eq!(first_old["issued_at"], rfc3339(issued(0)));
    assert_eq!(first_old["app_id"], "app-a");
    for key in [
        "state",
        "cost_usd",
        "queries",
        "outcome",
        "country",
        "finalized_at",
    ] {
        assert!(first_old.get(key).is_some(), "{key} missing: {first_old}");
    }

    // Cursor pages cover every order exactly once, in the same order.
    let mut paged = Vec::new();
    let mut path = "/api/v1/orders?limit=7".to_string();
    for _ in 0..20 {
        let (status, page) = json(addr, &path);
        assert_eq!(status, 200, "{page}");
        let got = ids(&page);
        assert!(got.len() <= 7);
        paged.extend(got);
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/orders?limit=7&cursor={}", query_value(c)),
            None => break,
        }
    }
    assert_eq!(paged, listed);

    // Time ranges: relative, RFC 3339 and Unix ms, both ends inclusive.
    let count = |q: &str| {
        let (status, v) = json(addr, &format!("/api/v1/orders?limit=1000&{q}"));
        assert_eq!(status, 200, "{q}: {v}");
        ids(&v)
    };
    let olds = |ids: Vec<String>| -> Vec<String> {
        ids.into_iter().filter(|i| i.starts_with("old-")).collect()
    };
    assert_eq!(olds(count("since=10m")), old[..10]);
    assert_eq!(olds(count("until=30m")), old[30..]);
    assert_eq!(count("since=1h").len(), total);
    assert_eq!(
        count(&format!("since={}&until={}", issued(12), issued(10))),
        old[10..=12]
    );
    assert_eq!(
        count(&format!(
            "since={}&until={}",
            query_value(&rfc3339(issued(22))),
            query_value(&rfc3339(issued(20)))
        )),
        old[20..=22]
    );
    assert_eq!(olds(count("app_id=app-b")).len(), 20);
    assert!(olds(count("app_id=app-b"))
        .iter()
        .all(|id| id[4..].parse::<u32>().unwrap() % 2 == 1));

    // Bad parameters: 400, JSON, naming the parameter and the value.
    for (query, name, value) in [
        ("contry=IN", "contry", ""),
        ("since=yesterday", "since", "yesterday"),
        ("until=12x", "until", "12x"),
        ("limit=5000", "limit", "5000"),
        ("limit=-1", "limit", "-1"),
        ("mcc=four", "mcc", "four"),
        ("channel=pigeon", "channel", "pigeon"),
        ("state=done", "state", "done"),
        ("outcome=lost", "outcome", "lost"),
        ("cursor=garbage!", "cursor", "garbage!"),
    ] {
        let (status, v) = json(addr, &format!("/api/v1/orders?{query}"));
        assert_eq!(status, 400, "{query}: {v}");
        let message = v["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("`{name}`")) && message.contains(value),
            "{query}: {message}"
        );
    }
    let (status, v) = json(addr, "/api/v1/breakdown?by=planet");
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("planet"), "{v}");
    let (status, page) = html(addr, "/orders?since=soon");
    assert_eq!(status, 400);
    assert!(page.contains("since") && page.contains("soon"), "{page}");

    // Unknown orders and paths: 404, JSON for the API, HTML for the pages.
    let (status, v) = json(addr, "/api/v1/orders/no-such-order");
    assert_eq!(status, 404);
    assert!(
        v["error"].as_str().unwrap().contains("no-such-order"),
        "{v}"
    );
    assert_eq!(json(addr, "/api/v1/nothing").0, 404);
    let (status, page) = html(addr, "/orders/no-such-order");
    assert_eq!(status, 404);
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("no-such-order"));

    // Hostile ids: the API gives them back exactly; every page shows them escaped.
    for id in HOSTILE_IDS {
        let (status, v) = json(addr, &format!("/api/v1/orders/{}", segment(id)));
        assert_eq!(status, 200, "{id}: {v}");
        assert_eq!(v["order_id"], id);
        assert_eq!(v["timeline"][0]["event"], "issued");
        let (status, page) = html(addr, &format!("/orders/{}", segment(id)));
        assert_eq!(status, 200, "{id}");
        assert_escaped(&page, id);
        assert!(page.contains("id=\"timeline\""), "{page}");
    }
    let (_, list_page) = html(addr, "/orders?limit=1000&since=1h");
    assert_escaped(&list_page, "/orders");
    assert!(
        list_page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{list_page}"
    );
    // Each order links to its page, and the link leads there.
    let links = hrefs(&list_page, "order-link");
    assert_eq!(links.len(), total);
    for id in HOSTILE_IDS {
        assert!(
            links.contains(&format!("/orders/{}", segment(id))),
            "{id}: {links:?}"
        );
    }
    let mut seen = list_page.clone();
    for path in [
        "/",
        "/breakdown?by=app_id&since=1h",
        "/orders?sort=order&dir=asc",
    ] {
        let (status, page) = html(addr, path);
        assert_eq!(status, 200, "{path}: {page}");
        assert_escaped(&page, path);
        seen.push_str(&page);
    }
    // Sorting by order id ascending puts the quoted id first ('"' < '<' < 'a' < 'o' < 'x').
    let (_, sorted) = html(addr, "/orders?sort=order&dir=asc&limit=1000");
    let order_links = hrefs(&sorted, "order-link");
    assert_eq!(
        order_links[0],
        format!("/orders/{}", segment(HOSTILE_IDS[1]))
    );
    let (status, _) = html(addr, "/orders?sort=colour");
    assert_eq!(status, 400);

    // No secret on any page.
    seen.push_str(&json(addr, "/api/v1/orders?limit=1000").1.to_string());
    assert!(!seen.contains(API_SECRET), "the API secret is on a page");
    drop(sim);
}

/// The on-call path in a country outage: `/` shows the country worst first; its
/// "failed" link lists its failed orders; one order's page shows the provider's
/// answers, the masked receiver and why the outcome is what it is.
#[test]
fn drill_down_from_a_country_outage_to_one_order() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::with_scenario(tmp.path(), "11", TIME_SCALE, &country_outage("IN"));
    let addr = free_addr();
    let config = exporter_config(tmp.path(), addr, &sim.base_url(), "");
    let exporter = Exporter::start(tmp.path(), &config, addr, "info");

    let mut receivers = Vec::new();
    let mut spool = String::new();
    for i in 0..24 {
        // India (91) and Indonesia (62), alternately.
        let to = if i % 2 == 0 {
            format!("91{:010}", 9_812_345_600u64 + i)
        } else {
            format!("62{:010}", 8_112_345_600u64 + i)
        };
        let id = format!("dd-{i:02}");
        sim.send("app-a", &to, &id);
        spool.push_str(&id);
        spool.push('\n');
        receivers.push(to);
    }
    drop_spool_file(&exporter.spool(), "orders", &spool);
    let done = wait_for(Duration::from_secs(90), || {
        let (_, v) = json(addr, "/api/v1/orders?state=final&limit=1000");
        (ids(&v).len() == 24).then_some(v)
    });
    done.unwrap_or_else(|| {
        panic!(
            "orders never all final in the journal: {}\n{}",
            json(addr, "/api/v1/orders?limit=1000").1,
            exporter.proc.log()
        )
    });

    // Filters by country, outcome (several) and operator.
    let (_, india) = json(addr, "/api/v1/orders?country=IN&limit=1000");
    let india_ids = ids(&india);
    let want: Vec<String> = (0..24)
        .rev()
        .step_by(1)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("dd-{i:02}"))
        .collect();
    assert_eq!(
        india_ids.iter().collect::<BTreeSet<_>>(),
        want.iter().collect::<BTreeSet<_>>()
    );
    for o in india["orders"].as_array().unwrap() {
        assert_eq!(o["country"], "IN");
        assert_ne!(o["outcome"], "verified", "{o}");
        assert_eq!(o["state"], "final");
    }
    let (_, failed) = json(
        addr,
        "/api/v1/orders?country=in&state=final&outcome=failed,unverified,undelivered,not_found,expired&since=15m",
    );
    assert_eq!(ids(&failed).len(), 12, "{failed}");
    if let Some(op) = india["orders"][0]["operator"].as_str() {
        let expected = india["orders"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["operator"] == op)
            .count();
        let (_, by_op) = json(
            addr,
            &format!(
                "/api/v1/orders?country=IN&operator={}",
                query_value(&op.to_uppercase())
            ),
        );
        assert_eq!(ids(&by_op).len(), expected, "operator {op}: {by_op}");
    }

    // The breakdown: India worst first, with counts per outcome.
    let (status, b) = json(addr, "/api/v1/breakdown?by=country&since=15m");
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["by"], "country");
    let rows = b["rows"].as_array().unwrap();
    assert_eq!(rows[0]["key"], "IN", "{b}");
    assert_eq!(rows[0]["orders"], 12);
    assert_eq!(rows[0]["conversion"], 0.0);
    assert_eq!(rows[0]["outcomes"]["verified"], 0);
    let outcomes: u64 = rows[0]["outcomes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(outcomes, 12);
    let id = rows.iter().find(|r| r["key"] == "ID").expect("an ID row");
    assert!(id["conversion"].as_f64().unwrap() > 0.0, "{id}");
    let (status, ops) = json(addr, "/api/v1/breakdown?by=operator&country=IN&since=15m");
    assert_eq!(status, 200);
    let op_orders: u64 = ops["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["orders"].as_u64().unwrap())
        .sum();
    assert_eq!(op_orders, 12);

    // Click 1: from `/`, India's "failed" link (India is the first row).
    let (status, landing) = html(addr, "/");
    assert_eq!(status, 200);
    for id in [
        "uptime",
        "pending",
        "last-api-error",
        "spool-rejects",
        "spool-quarantined",
        "countries",
    ] {
        assert!(
            landing.contains(&format!("id=\"{id}\"")),
            "{id} missing:\n{landing}"
        );
    }
    let first_row = landing.find("data-key=\"IN\"").expect("an IN row");
    assert!(
        landing
            .find("data-key=\"ID\"")
            .is_some_and(|id| id > first_row),
        "IN first:\n{landing}"
    );
    let failed_links = hrefs(&landing, "failed-link");
    let failed_href = failed_links
        .iter()
        .find(|h| h.contains("country=IN"))
        .unwrap_or_else(|| panic!("no failed link for IN: {failed_links:?}"));
    assert!(hrefs(&landing, "orders-link").contains(&"/orders?country=IN&since=15m".to_string()));
    let operators_href = hrefs(&landing, "operators-link")
        .into_iter()
        .find(|h| h.contains("country=IN"))
        .expect("an operators link for IN");
    let (status, operators_page) = html(addr, &operators_href);
    assert_eq!(status, 200, "{operators_href}");
    assert!(
        operators_page.contains("data-by=\"operator\""),
        "{operators_page}"
    );

    // Click 2: the failed orders of India; click 3: the first one.
    let (status, list) = html(addr, failed_href);
    assert_eq!(status, 200, "{failed_href}: {list}");
    let order_links = hrefs(&list, "order-link");
    assert_eq!(order_links.len(), 12, "{list}");
    let (status, page) = html(addr, &order_links[0]);
    assert_eq!(status, 200);
    let id = order_links[0].trim_start_matches("/orders/").to_string();
    for part in [
        "id=\"verdict\"",
        "id=\"rule\"",
        "id=\"finalize-reason\"",
        "id=\"attempts\"",
        "data-event=\"finalized\"",
        "data-event=\"issued\"",
    ] {
        assert!(page.contains(part), "{part} missing:\n{page}");
    }

    // The JSON of the same order: timeline lines in words, attempts with the
    // provider's code, the receiver masked to its calling code and two digits.
    let (_, order) = json(addr, &format!("/api/v1/orders/{id}"));
    assert_eq!(order["country"], "IN");
    let timeline = order["timeline"].as_array().unwrap();
    assert_eq!(timeline[0]["event"], "issued");
    assert_eq!(timeline.last().unwrap()["event"], "finalized");
    assert!(timeline
        .iter()
        .all(|l| !l["text"].as_str().unwrap_or_default().is_empty()));
    assert!(timeline.iter().any(|l| l["event"] == "answered"), "{order}");
    assert!(order["rule"].as_str().is_some(), "{order}");
    assert!(!order["attempts"].as_array().unwrap().is_empty(), "{order}");
    let receiver = order["receiver"].as_str().expect("a masked receiver");
    let digits: String = receiver.chars().filter(char::is_ascii_digit).collect();
    assert!(
        receiver.starts_with("+91 ") && digits.len() == 4,
        "{receiver}"
    );

    // No receiver's number and no secret on any page or answer.
    let mut seen = landing + &list + &page + &order.to_string();
    seen.push_str(&json(addr, "/api/v1/orders?limit=1000").1.to_string());
    for o in ids(&json(addr, "/api/v1/orders?limit=1000").1) {
        seen.push_str(
            &json(addr, &format!("/api/v1/orders/{}", segment(&o)))
                .1
                .to_string(),
        );
        seen.push_str(&html(addr, &format!("/orders/{}", segment(&o))).1);
    }
    for to in &receivers {
        // The national part without its last two digits would identify the person.
        let national = &to[2..to.len() - 2];
        assert!(!seen.contains(national), "{to} shown");
    }
    assert!(!seen.contains(API_SECRET));
}

/// `journal.enabled: false`: the API answers 503 with the reason, the pages say so.
#[test]
fn a_disabled_journal_is_a_503_and_the_pages_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&["--time-scale", TIME_SCALE]);
    let addr = free_addr();
    let config = exporter_config(
        tmp.path(),
        addr,
        &sim.base_url(),
        "journal:\n  enabled: false\n",
    );
    let _exporter = Exporter::start(tmp.path(), &config, addr, "info");
    for path in [
        "/api/v1/orders",
        "/api/v1/orders/x",
        "/api/v1/breakdown?by=country",
    ] {
        let (status, v) = json(addr, path);
        assert_eq!(status, 503, "{path}");
        assert_eq!(
            v["error"], "the order journal is off (journal.enabled: false)",
            "{path}"
        );
    }
    let (status, page) = html(addr, "/orders");
    assert_eq!(status, 503);
    assert!(page.contains("journal.enabled: false"), "{page}");
    let (status, landing) = html(addr, "/");
    assert_eq!(status, 200);
    assert!(landing.contains("journal.enabled: false"), "{landing}");
}

//! The on-call drill-down in a real browser (Debian's headless Chromium through
//! `chromedriver`): the demo runs with an SMS outage in India, and from `/` a person
//! reaches India's failed orders (click 1) and one order's whole timeline (click 2).
//! The test reads what the pages show (cells, attributes, rendered text) and checks it
//! against the daemon's JSON API; it takes a screenshot of each page, written to
//! `docs/screenshots/` when ITNIO_WRITE_SCREENSHOTS=1 (otherwise into a temp dir, so
//! the test command leaves the tree clean).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::browser::{Browser, Element};
use common::http::get_url;
use common::*;
use serde_json::Value;

/// The outage's country and channel.
const COUNTRY: &str = "IN";
/// The outcomes behind the landing page's "failed" links (every one but verified).
const NOT_VERIFIED: [&str; 5] = [
    "failed",
    "unverified",
    "undelivered",
    "not_found",
    "expired",
];
/// An order id (visible ASCII, as the spool allows) that is markup if not escaped.
const HOSTILE_ID: &str = "<script>alert(1)</script>\"'&x";
/// Its receiver: only `+91` and the last two digits may be shown.
const HOSTILE_TO: &str = "+919812345678";
/// The demo's provider credentials (`demo` builds them in).
const DEMO_KEY: &str = "demo-key";
const DEMO_SECRET: &str = "demo-secret";

fn screenshot_dir(tmp: &Path) -> PathBuf {
    if std::env::var("ITNIO_WRITE_SCREENSHOTS").as_deref() == Ok("1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
    } else {
        tmp.join("screenshots")
    }
}

fn unix_ms() -> i64 {
    itnio_otp_exporter::clock::unix_now_ms()
}

fn ms_of(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339:?}: {e}"))
        .timestamp_millis()
}

/// Percent-encodes a path segment (everything but unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn api(base: &str, path: &str) -> Value {
    let (status, body) = get_url(&format!("{base}{path}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The `data-failed` count of a country's row in the landing page's HTML, if present.
fn landing_failed(html: &str, country: &str) -> Option<u64> {
    let row = html.split(&format!("data-key=\"{country}\"")).nth(1)?;
    let rest = row.split("data-failed=\"").nth(1)?;
    rest.split('"').next()?.parse().ok()
}

/// Sends the hostile order to the demo's simulator (signed as the provider requires)
/// and drops its id into the demo's spool: a real order of India, as the traffic
/// generator makes them, whose id is markup.
fn send_hostile_order(sim: SocketAddr, spool: &Path) {
    let ts = unix_now().to_string();
    let body = serde_json::json!({"appId": "demo-app", "to": HOSTILE_TO, "orderId": HOSTILE_ID})
        .to_string();
    let (status, reply) = http(
        sim,
        "POST",
        "/otp/verification/send",
        &[
            ("Content-Type", "application/json;charset=UTF-8"),
            ("Api-Key", DEMO_KEY),
            ("Timestamp", &ts),
            ("Sign", &sign(DEMO_KEY, DEMO_SECRET, &ts)),
        ],
        &body,
    )
    .expect("send");
    assert!(
        status == 200 && reply.contains("\"status\":\"0\""),
        "send refused: {status} {reply}"
    );
    let line = serde_json::json!({"orderId": HOSTILE_ID, "appId": "demo-app"}).to_string();
    drop_spool_file(spool, "browser-test.txt", &format!("{line}\n"));
}

fn cells<'a>(row: &Element<'a>) -> Vec<String> {
    row.find_all("td").iter().map(Element::text).collect()
}

/// Nothing the page shows came from markup in data: no script element, no alert.
fn assert_no_injection(browser: &Browser) {
    let scripts = browser.execute("return document.scripts.length;");
    assert_eq!(scripts, Value::from(0), "a script on {}", browser.url());
    assert!(
        !browser.source().to_lowercase().contains("<script"),
        "a <script> tag on {}",
        browser.url()
    );
}

#[test]
fn from_the_landing_page_to_a_failed_order_s_timeline_in_two_clicks() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let shots = screenshot_dir(tmp.path());
    let demo_dir = tmp.path().join("demo");
    let listen = free_addr();
    let sim = free_addr();
    let base = format!("http://{listen}");
    let (listen_arg, sim_arg) = (listen.to_string(), sim.to_string());
    let outage = format!("{COUNTRY}:sms");
    // Time scale 0.05: the 5 min validity is 15 s, so orders are final within ~25 s.
    let demo = Proc::spawn(
        "demo",
        &[
            "demo",
            "--listen",
            &listen_arg,
            "--sim-listen",
            &sim_arg,
            "--dir",
            demo_dir.to_str().unwrap(),
            "--time-scale",
            "0.05",
            "--orders-per-second",
            "5",
            "--outage",
            &outage,
            "--outage-after",
            "3s",
        ],
        &[],
    );
    assert!(
        answers_ok(listen, "/", Duration::from_secs(30)),
        "the demo did not serve /:\n{}",
        demo.log()
    );
    assert!(
        wait_for(Duration::from_secs(20), || demo
            .log()
            .contains("demo: outage IN sms (fail) starts at")
            .then_some(()))
        .is_some(),
        "{}",
        demo.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    send_hostile_order(sim, &demo_dir.join("spool"));

    // Wait until the landing page's "last 15 minutes" table shows India with failed
    // orders, and the hostile order is journaled as India's.
    let hostile_api = format!("/api/v1/orders/{}", encode(HOSTILE_ID));
    let ready = wait_for(Duration::from_secs(120), || {
        let (_, html) = get_url(&format!("{base}/")).ok()?;
        let failed = landing_failed(&html, COUNTRY).filter(|n| *n >= 5)?;
        let (status, body) = get_url(&format!("{base}{hostile_api}")).ok()?;
        let hostile: Value = serde_json::from_str(&body).ok()?;
        (status == 200 && hostile["country"] == COUNTRY).then_some(failed)
    });
    assert!(
        ready.is_some(),
        "no failed orders of {COUNTRY} on / (or the hostile order not journaled) after 2 min:\n{}",
        demo.log()
    );
    let waited = started.elapsed();

    let browser = Browser::start();
    let mut clicks = 0;

    // The landing page: India's row in "last 15 minutes", worst first.
    browser.goto(&format!("{base}/"));
    assert_eq!(browser.title(), "ITNIO OTP exporter");
    browser.find("#last-15-minutes");
    let row = browser.find(&format!("#countries tr.group[data-key=\"{COUNTRY}\"]"));
    let failed_on_landing: u64 = row
        .attr("data-failed")
        .and_then(|n| n.parse().ok())
        .expect("data-failed");
    assert!(failed_on_landing > 0);
    // The row is labelled by its country, not by one of its orders' operators.
    let label = cells(&row)[0].clone();
    let label_name = label
        .strip_suffix(&format!(" ({COUNTRY})"))
        .unwrap_or(&label);
    assert!(
        label_name == COUNTRY || label_name == "India",
        "India's row is labelled {label:?}"
    );
    // The overview's counters read as counts (no "-0" from an empty float sum).
    for id in ["#api-errors", "#spool-rejects", "#spool-quarantined"] {
        let counter = browser.find(id);
        let n = counter.attr("data-count").unwrap_or_default();
        assert!(
            !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()),
            "{id} data-count={n:?}"
        );
        assert!(
            cells(&counter)[1].starts_with(&n),
            "{id} shows {:?}",
            cells(&counter)[1]
        );
    }
    let other_countries = browser.find_all("#countries tr.group").len();
    assert!(other_countries > 1, "only India on the landing page");
    browser.screenshot_page(&shots.join("drilldown-1-landing.png"), 2400);

    // Click 1: India's failed orders.
    let failed_link = row.find("a.failed-link");
    assert!(
        failed_link
            .text()
            .contains(&format!("failed ({failed_on_landing})")),
        "{}",
        failed_link.text()
    );
    failed_link.click();
    clicks += 1;
    let list_url = browser.wait_for_url(Duration::from_secs(10), |u| u.contains("/orders?"));
    let query: Vec<(String, String)> = reqwest::Url::parse(&list_url)
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(param("country"), Some(COUNTRY), "{list_url}");
    assert_eq!(param("since"), Some("15m"), "{list_url}");
    assert_eq!(param("state"), Some("final"), "{list_url}");
    let outcomes: BTreeSet<&str> = param("outcome").unwrap_or("").split(',').collect();
    assert_eq!(outcomes, NOT_VERIFIED.into_iter().collect(), "{list_url}");
    assert_eq!(browser.find("#title").text(), "Orders");
    let rows = browser.find_all("#orders tbody tr.order");
    let count: usize = browser
        .find("#count")
        .attr("data-count")
        .and_then(|n| n.parse().ok())
        .expect("data-count");
    assert!(count > 0, "no failed orders listed");
    assert_eq!(count, rows.len());
    // Every order the landing page counted is listed (they stay final and in range).
    assert!(
        rows.len() as u64 >= failed_on_landing.min(100),
        "{} rows, the landing page said {failed_on_landing}",
        rows.len()
    );
    let now = unix_ms();
    let mut listed = Vec::new();
    for row in &rows {
        let id = row.attr("data-order-id").expect("data-order-id");
        let outcome = row.attr("data-outcome").expect("data-outcome");
        let c = cells(row);
        // Issued, Order, Outcome, Country, Operator, Latency, Cost, Queries, App, ...
        assert_eq!(c[3], COUNTRY, "order {id}: {c:?}");
        assert_eq!(row.attr("data-state").as_deref(), Some("final"), "{id}");
        assert!(NOT_VERIFIED.contains(&outcome.as_str()), "{id}: {outcome}");
        assert_eq!(c[2], outcome, "order {id}: {c:?}");
        assert_eq!(c[1], id, "the link shows the order id");
        let issued = row.find("td time").attr("datetime").expect("datetime");
        let issued_ms = ms_of(&issued);
        assert!(
            (now - 15 * 60_000..=now).contains(&issued_ms),
            "{id} issued {issued}, not in the last 15 minutes"
        );
        listed.push((id, outcome));
    }
    // What the page shows is what the journal holds.
    for (id, outcome) in &listed {
        let o = api(&base, &format!("/api/v1/orders/{}", encode(id)));
        assert_eq!(o["country"], COUNTRY, "{o}");
        assert_eq!(o["state"], "final", "{o}");
        assert_eq!(o["outcome"], outcome.as_str(), "{o}");
    }
    assert_no_injection(&browser);
    browser.screenshot_page(&shots.join("drilldown-2-orders.png"), 2400);

    // Click 2: one order (a generated one; the hostile id is checked below).
    let pick = rows
        .iter()
        .zip(&listed)
        .find(|(_, (id, _))| id.starts_with("demo-"))
        .expect("a generated order among India's failed orders");
    let (order_id, outcome) = pick.1.clone();
    pick.0.find("a.order-link").click();
    clicks += 1;
    browser.wait_for_url(Duration::from_secs(10), |u| {
        u.ends_with(&format!("/orders/{}", encode(&order_id)))
    });
    assert!(clicks <= 3, "{clicks} clicks");
    let json = api(&base, &format!("/api/v1/orders/{}", encode(&order_id)));

    assert_eq!(browser.find("#order-id").text(), order_id);
    let verdict = browser.find("#verdict");
    assert_eq!(verdict.attr("data-state").as_deref(), Some("final"));
    assert_eq!(
        verdict.attr("data-outcome").as_deref(),
        Some(outcome.as_str())
    );
    let rule = json["rule"].as_str().expect("the order's rule");
    assert_eq!(browser.find("#rule").text(), format!("Why: {rule}."));

    // The timeline: issued, the provider's answers with its codes, decision, finalization.
    let events: Vec<(String, String)> = browser
        .find_all("ol#timeline li")
        .iter()
        .map(|li| (li.attr("data-event").unwrap_or_default(), li.text()))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"issued"), "{events:?}");
    assert!(events[0].1.contains("order issued"), "{events:?}");
    let decided = kinds.iter().position(|k| *k == "decided").expect("decided");
    let finalized = kinds
        .iter()
        .position(|k| *k == "finalized")
        .expect("finalized");
    assert!(decided <= finalized, "{events:?}");
    assert!(
        events[decided]
            .1
            .contains(&format!("decided {outcome}: {rule}")),
        "{events:?}"
    );
    assert!(
        events[finalized]
            .1
            .contains(&format!("finalized as {outcome}")),
        "{events:?}"
    );
    let answers: Vec<&String> = events[..decided]
        .iter()
        .filter(|(k, _)| k == "answered")
        .map(|(_, t)| t)
        .collect();
    assert!(!answers.is_empty(), "no provider answer: {events:?}");
    assert!(
        answers
            .iter()
            .any(|t| t.contains("(status ") || t.contains("(termination code ")),
        "no provider status in the answers: {answers:?}"
    );
    // Each attempt's row shows the provider's own code, as the journal holds it.
    let attempts = browser.find_all("#attempts tr.attempt");
    let json_attempts = json["attempts"].as_array().expect("attempts");
    assert!(!attempts.is_empty());
    assert_eq!(attempts.len(), json_attempts.len());
    for (row, a) in attempts.iter().zip(json_attempts) {
        assert_eq!(
            row.attr("data-channel").as_deref(),
            a["channel"].as_str(),
            "{a}"
        );
        assert_eq!(
            row.attr("data-result").as_deref(),
            a["result"].as_str(),
            "{a}"
        );
        if let Some(status) = a["provider_status"].as_i64() {
            let said = row.find(".provider-said").text();
            assert!(
                said.starts_with(&status.to_string()),
                "provider status {status}, the page says {said:?}"
            );
        }
    }
    // The receiver: calling code and the last two digits, nothing more.
    let receiver = browser.find("tr[data-fact=\"receiver\"] td").text();
    assert_masked(&receiver);
    assert_no_injection(&browser);
    browser.screenshot_page(&shots.join("drilldown-3-order.png"), 3000);

    // The operators of India (the row's other link), a fourth page for the docs.
    browser.goto(&format!("{base}/"));
    browser
        .find(&format!(
            "#countries tr.group[data-key=\"{COUNTRY}\"] a.operators-link"
        ))
        .click();
    let operators_url =
        browser.wait_for_url(Duration::from_secs(10), |u| u.contains("/breakdown?"));
    assert!(
        operators_url.contains("by=operator") && operators_url.contains("country=IN"),
        "{operators_url}"
    );
    let groups = browser.find_all("#breakdown tr.group");
    assert!(!groups.is_empty(), "no operators of {COUNTRY}");
    let failed_by_operator: u64 = groups
        .iter()
        .filter_map(|g| g.attr("data-failed")?.parse::<u64>().ok())
        .sum();
    assert!(failed_by_operator > 0, "no failed orders by operator");
    assert_no_injection(&browser);
    browser.screenshot_page(&shots.join("drilldown-4-operators.png"), 2400);

    // The hostile order: listed and shown as text, its page as text, no script runs
    // (an alert would fail every later WebDriver command). All of India's orders, so
    // that the early hostile one is on the page however long the demo took.
    browser.goto(&format!(
        "{base}/orders?country={COUNTRY}&since=15m&limit=1000"
    ));
    let hostile_row = browser
        .find_all("#orders tbody tr.order")
        .into_iter()
        .find(|r| r.attr("data-order-id").as_deref() == Some(HOSTILE_ID))
        .expect("the hostile order among India's orders");
    let link = hostile_row.find("a.order-link");
    assert_eq!(link.text(), HOSTILE_ID);
    assert_no_injection(&browser);
    link.click();
    browser.wait_for_url(Duration::from_secs(10), |u| {
        u.ends_with(&format!("/orders/{}", encode(HOSTILE_ID)))
    });
    assert_eq!(browser.find("#order-id").text(), HOSTILE_ID);
    assert!(browser.title().contains(HOSTILE_ID), "{}", browser.title());
    assert_no_injection(&browser);
    let receiver = browser.find("tr[data-fact=\"receiver\"] td").text();
    assert_masked(&receiver);
    assert!(
        receiver.starts_with("+91 ") && receiver.ends_with("78"),
        "{receiver}"
    );
    let source = browser.source();
    assert!(
        !source.contains(&HOSTILE_TO[3..]) && !source.contains(&HOSTILE_TO[3..11]),
        "the receiver's number is on the page"
    );

    eprintln!(
        "browser drill-down: demo ready after {:.1} s, whole test {:.1} s, {clicks} clicks, {} failed orders of {COUNTRY} listed; screenshots in {}",
        waited.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        listed.len(),
        shots.display()
    );
}

/// `+CC ••••••••NN`: a calling code, masking dots, exactly two digits.
fn assert_masked(receiver: &str) {
    let (code, rest) = receiver
        .split_once(' ')
        .unwrap_or_else(|| panic!("receiver {receiver:?}"));
    assert!(
        code.starts_with('+') && code.len() > 1 && code[1..].chars().all(|c| c.is_ascii_digit()),
        "receiver {receiver:?}"
    );
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(digits.len(), 2, "receiver {receiver:?} shows {digits}");
    assert!(rest.ends_with(&digits), "receiver {receiver:?}");
    assert!(rest.contains('•'), "receiver {receiver:?}");
}

/// Serves two fixed pages on a real socket (a plain thread), for the client's own test.
fn serve_static_pages() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Skip the headers.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
            let (status, body) = match path.as_str() {
                "/" => ("200 OK", "<!DOCTYPE html><html><head><title>First</title></head><body><p id=\"greeting\" data-n=\"7\">Hello &lt;b&gt; world</p><ul><li class=\"item\">one</li><li class=\"item\">two</li></ul><a id=\"next\" href=\"/second?x=1\">next</a></body></html>".to_string()),
                "/second?x=1" => ("200 OK", format!("<!DOCTYPE html><html><head><title>Second</title></head><body><h1 id=\"h\">Second page</h1><div style=\"height:2000px\">{}</div></body></html>", "tall ".repeat(10))),
                _ => ("404 Not Found", "no".to_string()),
            };
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

/// Running processes whose process group is `pgid` (from /proc/*/stat).
fn processes_in_group(pgid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the command's closing parenthesis: state, ppid, pgrp.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // A zombie has ended; only its parent's reaping is left.
        let running = fields.first().is_some_and(|state| *state != "Z");
        if running && fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn the_webdriver_client_reads_clicks_and_photographs_a_real_page() {
    let addr = serve_static_pages();
    let tmp = tempfile::tempdir().unwrap();
    let browser = Browser::start();
    let driver_pid = browser.driver_pid();
    browser.goto(&format!("http://{addr}/"));
    assert_eq!(browser.title(), "First");
    let greeting = browser.find("#greeting");
    assert_eq!(greeting.text(), "Hello <b> world");
    assert_eq!(greeting.attr("data-n").as_deref(), Some("7"));
    assert_eq!(greeting.attr("data-missing"), None);
    let items: Vec<String> = browser
        .find_all("li.item")
        .iter()
        .map(Element::text)
        .collect();
    assert_eq!(items, ["one", "two"]);
    assert!(browser.try_find("#absent").is_none());
    assert_eq!(browser.find("ul").find_all("li").len(), 2);
    let shot = browser.screenshot(&tmp.path().join("first.png"));
    let viewport = png_size(&shot);
    assert_eq!(viewport.0, 1280);
    assert_eq!(
        std::fs::read(tmp.path().join("first.png")).unwrap(),
        shot,
        "the file holds the PNG"
    );

    let next = browser.find("#next");
    assert_eq!(next.attr("href").as_deref(), Some("/second?x=1"));
    next.click();
    let url = browser.wait_for_url(Duration::from_secs(10), |u| u.ends_with("/second?x=1"));
    assert_eq!(url, format!("http://{addr}/second?x=1"));
    assert_eq!(browser.find("#h").text(), "Second page");
    // The whole page: taller than the 900 px window.
    let page = browser.screenshot_page(&tmp.path().join("second.png"), 4000);
    let (w, h) = png_size(&page);
    assert_eq!(w, 1280);
    let document = browser
        .execute("return document.documentElement.scrollHeight;")
        .as_u64()
        .unwrap();
    assert!(document > 2000, "{document}");
    assert_eq!(u64::from(h), document, "page screenshot {w}x{h}");
    // The window is back to its size.
    let again = png_size(&browser.screenshot(&tmp.path().join("again.png")));
    assert_eq!(again, viewport);

    // Drop closes the session and ends the driver and every browser process.
    assert!(!processes_in_group(driver_pid).is_empty());
    drop(browser);
    let gone = wait_for(Duration::from_secs(10), || {
        processes_in_group(driver_pid).is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "left running: {:?}",
        processes_in_group(driver_pid)
    );
}

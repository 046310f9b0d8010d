//! The journal's HTML pages: the on-call overview (`/`), a filtered list of orders
//! (`/orders`, sortable, with a filter form), one order's timeline (`/orders/{id}`)
//! and a breakdown (`/breakdown?by=operator&country=IN&since=15m`). Plain HTML, no
//! script, no external assets; every string that is not a literal of this file goes
//! through `escape` (order ids, app ids and provider strings are input). Elements a
//! browser test relies on carry a stable `id` or `data-` attribute.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use prometheus::core::Collector;

use super::api::{percent_decode, percent_encode, read_journal, Unavailable};
use super::{escape, response, Ctx};
use crate::error::Chain;
use crate::journal::query::{
    self, rfc3339, timeline_lines, Breakdown, BreakdownRow, Listed, OrderFilter, QueryError,
};
use crate::journal::{Entry, State};
use crate::outcome::Outcome;

const HTML: &str = "text/html; charset=utf-8";

/// Every outcome but `verified`: the "failed" links.
pub const NOT_VERIFIED: &str = "failed,unverified,undelivered,not_found,expired";

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;max-width:80em}\
table{border-collapse:collapse}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
th a{text-decoration:none}.bad{color:#b00020;font-weight:bold}.good{color:#1b5e20}\
.num{text-align:right;font-variant-numeric:tabular-nums}nav a{margin-right:1em}\
form label{display:inline-block;margin:0 .8em .4em 0}input{width:8em}\
#verdict{border-left:4px solid #888;padding:.5em 1em;background:#f6f6f6}\
ol#timeline li{margin:.2em 0}time{font-family:monospace;color:#444;margin-right:.7em}\
.muted{color:#777}";

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · ITNIO OTP exporter</title>
<style>{STYLE}</style></head>
<body><nav id="nav"><a href="/" id="nav-home">Overview</a><a href="/orders" id="nav-orders">Orders</a><a href="/breakdown?by=country&amp;since=15m" id="nav-breakdown">Breakdown</a></nav>
{body}</body></html>
"#,
        title = escape(title),
    )
}

fn html(status: StatusCode, title: &str, body: &str) -> Response<Full<Bytes>> {
    response(status, HTML, page(title, body))
}

fn problem_page(status: StatusCode, title: &str, message: &str) -> Response<Full<Bytes>> {
    html(
        status,
        title,
        &format!(
            "<h1>{}</h1><p id=\"problem\" class=\"bad\">{}</p>",
            escape(title),
            escape(message)
        ),
    )
}

fn unavailable(u: &Unavailable) -> Response<Full<Bytes>> {
    problem_page(u.status(), "Order journal unavailable", &u.message())
}

fn bad_query(e: &QueryError) -> Response<Full<Bytes>> {
    problem_page(StatusCode::BAD_REQUEST, "Bad request", &e.to_string())
}

/// A query string from pairs (values encoded).
fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn orders_href(pairs: &[(&str, &str)]) -> String {
    format!("/orders?{}", query_string(pairs.iter().copied()))
}

fn order_href(order_id: &str) -> String {
    format!("/orders/{}", percent_encode(order_id))
}

fn opt(v: Option<impl ToString>) -> String {
    v.map(|v| escape(&v.to_string()))
        .unwrap_or_else(|| "–".to_string())
}

fn time(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => {
            let t = rfc3339(ms);
            format!("<time datetime=\"{t}\">{t}</time>")
        }
        None => "–".to_string(),
    }
}

fn secs(ms: Option<i64>) -> String {
    ms.map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
        .unwrap_or_else(|| "–".to_string())
}

fn ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{:.1} %", r * 100.0))
        .unwrap_or_else(|| "–".to_string())
}

fn outcome_cell(state: State, outcome: Option<Outcome>) -> String {
    match (state, outcome) {
        (_, Some(Outcome::Verified)) => "<span class=\"good\">verified</span>".to_string(),
        (State::Final, Some(o)) => format!("<span class=\"bad\">{}</span>", o.as_str()),
        (State::Pending, Some(o)) => format!("{} (settling)", o.as_str()),
        (_, None) => "<span class=\"muted\">–</span>".to_string(),
    }
}

/// `/orders…` and `/breakdown`.
pub(super) async fn route(ctx: &Ctx, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    match path {
        "/orders" | "/orders/" => orders(ctx, query).await,
        "/breakdown" => breakdown(ctx, query).await,
        _ => {
            let raw = path.strip_prefix("/orders/").unwrap_or_default();
            match percent_decode(raw).filter(|id| !id.is_empty() && !raw.contains('/')) {
                Some(id) => order(ctx, id).await,
                None => problem_page(
                    StatusCode::NOT_FOUND,
                    "Not found",
                    &format!("no page {path}"),
                ),
            }
        }
    }
}

/// How the list page sorts the orders it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    Issued,
    Order,
    Outcome,
    Country,
    Operator,
    Latency,
    Cost,
    Queries,
}

const SORTS: [(Sort, &str, &str); 8] = [
    (Sort::Issued, "issued", "Issued (UTC)"),
    (Sort::Order, "order", "Order"),
    (Sort::Outcome, "outcome", "Outcome"),
    (Sort::Country, "country", "Country"),
    (Sort::Operator, "operator", "Operator"),
    (Sort::Latency, "latency", "Latency"),
    (Sort::Cost, "cost", "Cost (USD)"),
    (Sort::Queries, "queries", "Queries"),
];

fn sort_rows(rows: &mut [Listed], sort: Sort, descending: bool) {
    use std::cmp::Ordering as O;
    let num = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        (Some(_), None) => O::Less,
        (None, Some(_)) => O::Greater,
        (None, None) => O::Equal,
    };
    rows.sort_by(|a, b| {
        let o = match sort {
            Sort::Issued => a.issued_ms.cmp(&b.issued_ms),
            Sort::Order => a.order_id.cmp(&b.order_id),
            Sort::Outcome => a
                .row
                .outcome
                .map(Outcome::as_str)
                .cmp(&b.row.outcome.map(Outcome::as_str)),
            Sort::Country => a.row.country.cmp(&b.row.country),
            Sort::Operator => a.row.operator.cmp(&b.row.operator),
            Sort::Latency => num(
                a.row.latency_ms.map(|v| v as f64),
                b.row.latency_ms.map(|v| v as f64),
            ),
            Sort::Cost => a.row.cost_usd.total_cmp(&b.row.cost_usd),
            Sort::Queries => a.row.queries.cmp(&b.row.queries),
        };
        if descending {
            o.reverse()
        } else {
            o
        }
    });
}

/// `/orders`: the filter form, the orders of one page, the next page's link.
async fn orders(ctx: &Ctx, query: Option<&str>) -> Response<Full<Bytes>> {
    let now_ms = crate::clock::unix_now_ms();
    let params = query::split_query(query);
    let list = match query::parse_list(&params, now_ms, &["sort", "dir"]) {
        Ok(l) => l,
        Err(e) => return bad_query(&e),
    };
    let given = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let sort_word = given("sort").unwrap_or("issued");
    let Some(&(sort, _, _)) = SORTS.iter().find(|(_, w, _)| *w == sort_word) else {
        let words: Vec<&str> = SORTS.iter().map(|(_, w, _)| *w).collect();
        return bad_query(&QueryError::Bad {
            name: "sort".into(),
            value: sort_word.into(),
            why: format!("one of {}", words.join(", ")),
        });
    };
    let descending = match given("dir").unwrap_or("desc") {
        "desc" => true,
        "asc" => false,
        other => {
            return bad_query(&QueryError::Bad {
                name: "dir".into(),
                value: other.into(),
                why: "asc or desc".into(),
            })
        }
    };
    let l = list.clone();
    let mut page = match read_journal(ctx, move |store| store.journal_list(&l)).await {
        Ok(Ok(page)) => page,
        Ok(Err(e)) => {
            return problem_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Orders",
                &Chain(&e).to_string(),
            )
        }
        Err(u) => return unavailable(&u),
    };
    sort_rows(&mut page.orders, sort, descending);

    // The parameters as given (relative times stay relative in links), minus paging.
    let kept: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !matches!(k.as_str(), "cursor" | "sort" | "dir"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut body = String::from("<h1 id=\"title\">Orders</h1>\n");
    body.push_str(&filter_form(&params, sort_word, descending));
    let _ = writeln!(
        body,
        "<p id=\"count\" data-count=\"{n}\">{n} order{s} shown, {how}. <a href=\"/api/v1/orders?{json}\" id=\"json-link\">JSON</a></p>",
        n = page.orders.len(),
        s = if page.orders.len() == 1 { "" } else { "s" },
        how = if sort == Sort::Issued && descending {
            "newest first".to_string()
        } else {
            format!("this page sorted by {sort_word}")
        },
        json = escape(&query_string(kept.iter().copied())),
    );
    if page.damaged > 0 {
        let _ = writeln!(
            body,
            "<p class=\"bad\" id=\"damaged\">{} damaged journal rows skipped.</p>",
            page.damaged
        );
    }
    body.push_str("<table id=\"orders\"><thead><tr>");
    for (s, word, label) in SORTS {
        let dir = if s == sort && descending {
            "asc"
        } else {
            "desc"
        };
        let arrow = match (s == sort, descending) {
            (true, true) => " ▼",
            (true, false) => " ▲",
            _ => "",
        };
        let mut pairs = kept.clone();
        pairs.extend([("sort", word), ("dir", dir)]);
        let _ = write!(
            body,
            "<th><a href=\"{}\" data-sort=\"{word}\">{label}{arrow}</a></th>",
            escape(&orders_href(&pairs))
        );
    }
    body.push_str("<th>App</th><th>Channel</th><th>MCC/MNC</th></tr></thead><tbody>\n");
    for o in &page.orders {
        let r = &o.row;
        let _ = writeln!(
            body,
            "<tr class=\"order\" data-order-id=\"{id}\" data-outcome=\"{outcome}\" data-state=\"{state}\"><td>{issued}</td><td><a class=\"order-link\" href=\"{href}\">{id}</a></td><td>{outcome_cell}</td><td>{country}</td><td>{operator}</td><td class=\"num\">{latency}</td><td class=\"num\">{cost:.4}</td><td class=\"num\">{queries}</td><td>{app}</td><td>{channel}</td><td>{mcc}/{mnc}</td></tr>",
            id = escape(&o.order_id),
            outcome = r.outcome.map_or("", Outcome::as_str),
            state = r.state.as_str(),
            issued = time(Some(o.issued_ms)),
            href = escape(&order_href(&o.order_id)),
            outcome_cell = outcome_cell(r.state, r.outcome),
            country = opt(r.country.as_ref()),
            operator = opt(r.operator.as_ref()),
            latency = secs(r.latency_ms),
            cost = r.cost_usd,
            queries = r.queries,
            app = escape(&r.app_id),
            channel = opt(r.channel.as_ref()),
            mcc = opt(r.mcc),
            mnc = opt(r.mnc),
        );
    }
    body.push_str("</tbody></table>\n");
    if let Some(next) = &page.next_cursor {
        let cursor = next.encode();
        let mut pairs = kept.clone();
        pairs.push(("cursor", cursor.as_str()));
        if given("sort").is_some() {
            pairs.extend([
                ("sort", sort_word),
                ("dir", if descending { "desc" } else { "asc" }),
            ]);
        }
        let _ = writeln!(
            body,
            "<p><a id=\"next-page\" href=\"{}\">Older orders →</a></p>",
            escape(&orders_href(&pairs))
        );
    }
    html(StatusCode::OK, "Orders", &body)
}

/// The filter form of `/orders`, filled with the parameters as given.
fn filter_form(params: &[(String, String)], sort: &str, descending: bool) -> String {
    let value = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map_or(String::new(), |(_, v)| escape(v))
    };
    let mut form = String::from("<form id=\"filters\" method=\"get\" action=\"/orders\">\n");
    let fields = [
        ("app_id", "App"),
        ("country", "Country"),
        ("operator", "Operator"),
        ("mcc", "MCC"),
        ("mnc", "MNC"),
        ("channel", "Channel"),
        ("outcome", "Outcome(s)"),
        ("state", "State"),
        ("since", "Since"),
        ("until", "Until"),
        ("limit", "Limit"),
    ];
    for (name, label) in fields {
        let _ = writeln!(
            form,
            "<label>{label} <input name=\"{name}\" id=\"f-{name}\" value=\"{}\"></label>",
            value(name)
        );
    }
    let _ = writeln!(
        form,
        "<input type=\"hidden\" name=\"sort\" value=\"{}\"><input type=\"hidden\" name=\"dir\" value=\"{}\">\n<button type=\"submit\" id=\"apply\">Show</button> <span class=\"muted\">since/until: 15m, 2h, 7d, RFC 3339 or Unix ms; outcomes comma-separated; <a href=\"/orders\">clear</a></span></form>",
        escape(sort),
        if descending { "desc" } else { "asc" }
    );
    form
}

/// `/orders/{id}`: what the provider said, when, and why the outcome is what it is.
async fn order(ctx: &Ctx, order_id: String) -> Response<Full<Bytes>> {
    let id = order_id.clone();
    let entry = match read_journal(ctx, move |store| store.journal_get(&id)).await {
        Ok(Ok(Some(entry))) => entry,
        Ok(Ok(None)) => {
            return problem_page(
                StatusCode::NOT_FOUND,
                "Unknown order",
                &format!("no journal entry for order {order_id} (never tracked, or evicted)"),
            )
        }
        Ok(Err(e)) => {
            return problem_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Order",
                &Chain(&e).to_string(),
            )
        }
        Err(u) => return unavailable(&u),
    };
    html(
        StatusCode::OK,
        &format!("Order {}", entry.order_id),
        &order_body(&entry),
    )
}

fn order_body(e: &Entry) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<h1>Order <span id=\"order-id\" data-order-id=\"{id}\">{id}</span></h1>",
        id = escape(&e.order_id)
    );
    // The verdict first: the outcome and the rule that made it.
    let verdict = match (e.state, e.outcome) {
        (State::Final, Some(o)) => format!("Final: {}", outcome_cell(e.state, Some(o))),
        (State::Pending, Some(o)) => format!(
            "Decided {} — still pending while its attempts settle",
            outcome_cell(e.state, Some(o))
        ),
        (_, None) => "Pending: no outcome yet".to_string(),
    };
    let _ = writeln!(
        b,
        "<div id=\"verdict\" data-state=\"{state}\" data-outcome=\"{outcome}\"><p><b>{verdict}</b></p>{rule}{reason}</div>",
        state = e.state.as_str(),
        outcome = e.outcome.map_or("", Outcome::as_str),
        rule = e.rule.as_ref().map_or(String::new(), |r| format!(
            "<p id=\"rule\">Why: {}.</p>",
            escape(r)
        )),
        reason = e.finalize_reason.as_ref().map_or(String::new(), |r| format!(
            "<p id=\"finalize-reason\">Finalized because {}.</p>",
            escape(r)
        )),
    );
    let network = match (e.mcc, e.mnc) {
        (Some(mcc), Some(mnc)) => format!("MCC {mcc}, MNC {mnc}"),
        (Some(mcc), None) => format!("MCC {mcc}"),
        _ => "–".to_string(),
    };
    let country_link = e.country.as_ref().map_or("–".to_string(), |c| {
        format!(
            "<a href=\"{}\">{}</a>",
            escape(&orders_href(&[("country", c), ("since", "1h")])),
            escape(c)
        )
    });
    let rows = [
        ("app", "App", escape(&e.app_id)),
        ("issued", "Issued", time(Some(e.issued_ms))),
        ("country", "Country", country_link),
        ("channel", "Channel", opt(e.channel.as_ref())),
        ("operator", "Operator", opt(e.operator.as_ref())),
        ("network", "Network", network),
        ("receiver", "Receiver", opt(e.receiver.as_ref())),
        ("queries", "Queries", e.queries.to_string()),
        (
            "cost",
            "Cost (USD)",
            format!("{:.4}", e.attempts.iter().map(|a| a.cost_usd).sum::<f64>()),
        ),
        ("decided", "Decided", time(e.decided_ms)),
        ("finalized", "Finalized", time(e.finalized_ms)),
        (
            "matched",
            "Verification state",
            escape(&query::matched_name(e.matched)),
        ),
        ("verified", "Verified", time(e.verified_ms)),
        (
            "verification-latency",
            "Verification latency",
            secs(e.verification_latency_ms),
        ),
    ];
    b.push_str("<table id=\"facts\">\n");
    for (key, label, value) in rows {
        let _ = writeln!(
            b,
            "<tr data-fact=\"{key}\"><th>{label}</th><td>{value}</td></tr>"
        );
    }
    b.push_str("</table>\n<h2>Attempts</h2>\n");
    if e.attempts.is_empty() {
        b.push_str(
            "<p id=\"no-attempts\" class=\"muted\">The provider has shown no attempt.</p>\n",
        );
    } else {
        b.push_str("<table id=\"attempts\"><thead><tr><th>Channel</th><th>#</th><th>Result</th><th>Provider said</th><th>Network</th><th>Submitted</th><th>Done</th><th>Answered</th><th>Latency</th><th>Cost (USD)</th><th>Segments</th></tr></thead><tbody>\n");
        for a in &e.attempts {
            let said = match (a.provider_status, &a.provider_reason) {
                (Some(s), Some(r)) => format!("{s}: {}", escape(r)),
                (Some(s), None) => s.to_string(),
                (None, Some(r)) => escape(r),
                (None, None) => "–".to_string(),
            };
            let network = [
                a.mcc.map(|m| format!("MCC {m}")),
                a.mnc.map(|m| format!("MNC {m}")),
                a.operator.as_ref().map(|o| escape(o)),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
            let result = match a.result {
                crate::outcome::AttemptResult::Delivered => "<span class=\"good\">delivered</span>",
                crate::outcome::AttemptResult::Failed => "<span class=\"bad\">failed</span>",
                crate::outcome::AttemptResult::Pending => "pending",
            };
            let _ = writeln!(
                b,
                "<tr class=\"attempt\" data-channel=\"{ch}\" data-seq=\"{seq}\" data-result=\"{res}\"><td>{ch}</td><td>{n}</td><td>{result}</td><td class=\"provider-said\">{said}</td><td>{network}</td><td>{sub}</td><td>{done}</td><td>{ans}</td><td class=\"num\">{lat}</td><td class=\"num\">{cost:.4}</td><td class=\"num\">{seg}</td></tr>",
                ch = a.channel.as_str(),
                seq = a.seq,
                res = a.result.as_str(),
                n = u16::from(a.seq) + 1,
                sub = time(a.submit_ms),
                done = time(a.done_ms),
                ans = time(a.answer_ms),
                lat = secs(a.latency_ms),
                cost = a.cost_usd,
                seg = a.segments,
            );
        }
        b.push_str("</tbody></table>\n");
    }
    if !e.fallbacks.is_empty() {
        let steps: Vec<String> = e
            .fallbacks
            .iter()
            .map(|(f, t)| format!("{} → {}", f.as_str(), t.as_str()))
            .collect();
        let _ = writeln!(b, "<p id=\"fallbacks\">Fallbacks: {}</p>", steps.join(", "));
    }
    b.push_str("<h2>Timeline</h2>\n");
    if e.timeline_dropped > 0 {
        let _ = writeln!(
            b,
            "<p id=\"timeline-dropped\" class=\"muted\">{} older lines dropped (the timeline keeps the first and the latest {}).</p>",
            e.timeline_dropped,
            crate::journal::MAX_TIMELINE - 1
        );
    }
    b.push_str("<ol id=\"timeline\">\n");
    for line in timeline_lines(e) {
        let t = rfc3339(line.at_ms);
        let _ = writeln!(
            b,
            "<li class=\"event event-{kind}\" data-event=\"{kind}\"><time datetime=\"{t}\">{t}</time>{text}</li>",
            kind = line.event,
            text = escape(&line.text),
        );
    }
    let _ = writeln!(
        b,
        "</ol>\n<p><a id=\"json-link\" href=\"/api/v1/orders/{}\">This order as JSON</a></p>",
        escape(&percent_encode(&e.order_id))
    );
    b
}

/// `/breakdown`: groups of the journal added up, worst first, each linking to its orders.
async fn breakdown(ctx: &Ctx, query: Option<&str>) -> Response<Full<Bytes>> {
    let now_ms = crate::clock::unix_now_ms();
    let params = query::split_query(query);
    let q = match query::parse_breakdown(&params, now_ms) {
        Ok(q) => q,
        Err(e) => return bad_query(&e),
    };
    let by = q.by;
    let filter = q.filter.clone();
    let b = match read_journal(ctx, move |store| store.journal_breakdown(&q)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return problem_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Breakdown",
                &Chain(&e).to_string(),
            )
        }
        Err(u) => return unavailable(&u),
    };
    // Links keep the parameters as given (a relative `since` stays relative).
    let mut kept: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && k != "by")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if !kept.iter().any(|(k, _)| *k == "since") {
        kept.push(("since", "15m"));
    }
    let described: Vec<String> = filter
        .params()
        .into_iter()
        .filter(|(k, _)| !matches!(*k, "since" | "until"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut body = format!(
        "<h1 id=\"title\">Orders by {by}</h1>\n<p id=\"range\">Issued from {since} to {until}{filters}. <a id=\"json-link\" href=\"/api/v1/breakdown?{json}\">JSON</a></p>\n",
        by = by.as_str(),
        since = time(b.since_ms),
        until = b.until_ms.map_or("now".to_string(), |u| time(Some(u))),
        filters = if described.is_empty() {
            String::new()
        } else {
            format!(", {}", escape(&described.join(", ")))
        },
        json = escape(&query_string(
            std::iter::once(("by", by.as_str())).chain(kept.iter().copied())
        )),
    );
    body.push_str(&breakdown_table(&b, &kept, "breakdown"));
    html(StatusCode::OK, &format!("Orders by {}", by.as_str()), &body)
}

/// A breakdown's table; each row links to its orders, its failed orders and (by
/// country) its operators, keeping `kept` (the filter and time range as given).
fn breakdown_table(b: &Breakdown, kept: &[(&str, &str)], id: &str) -> String {
    let by = b.by.as_str();
    let mut t = format!(
        "<table id=\"{id}\" data-by=\"{by}\"><thead><tr><th>{by}</th><th>Orders</th><th>Final</th><th>Pending</th><th>Verified</th><th>Not verified</th><th>Conversion</th><th>Delivery ratio</th><th>Latency p50</th><th>Latency p95</th><th>Cost (USD)</th><th>Per verified (USD)</th><th>Drill down</th></tr></thead><tbody>\n"
    );
    if b.rows.is_empty() {
        t.push_str("<tr id=\"no-rows\"><td colspan=\"13\" class=\"muted\">No orders in this range.</td></tr>\n");
    }
    for row in &b.rows {
        t.push_str(&breakdown_row(b, row, kept));
    }
    t.push_str("</tbody></table>\n");
    t
}

/// `kept` with the group's key as its filter and `extra` replacing what it names.
fn with_group<'a>(
    kept: &[(&'a str, &'a str)],
    by: &'a str,
    key: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut pairs: Vec<(&str, &str)> = vec![(by, key)];
    pairs.extend(
        kept.iter()
            .copied()
            .filter(|(k, _)| *k != by && !extra.iter().any(|(e, _)| e == k)),
    );
    pairs.extend_from_slice(extra);
    pairs
}

fn breakdown_row(b: &Breakdown, row: &BreakdownRow, kept: &[(&str, &str)]) -> String {
    let by = b.by.as_str();
    let with_key = |extra: &[(&'static str, &'static str)]| with_group(kept, by, &row.key, extra);
    let orders = orders_href(&with_key(&[]));
    let failed = orders_href(&with_key(&[("state", "final"), ("outcome", NOT_VERIFIED)]));
    let not_verified = row.final_orders - row.outcomes.get("verified").copied().unwrap_or(0);
    let operators = if b.by == query::By::Country {
        let mut pairs: Vec<(&str, &str)> = vec![("by", "operator")];
        pairs.extend(with_key(&[]));
        format!(
            " · <a class=\"operators-link\" href=\"{}\">operators</a>",
            escape(&format!("/breakdown?{}", query_string(pairs)))
        )
    } else {
        String::new()
    };
    let label = match &row.name {
        Some(name) => format!(
            "{} <span class=\"muted\">({})</span>",
            escape(name),
            escape(&row.key)
        ),
        None => escape(&row.key),
    };
    let conversion_class = match row.conversion {
        Some(c) if c < 0.5 => " bad",
        _ => "",
    };
    format!(
        "<tr class=\"group\" data-key=\"{key}\" data-orders=\"{orders_n}\" data-failed=\"{not_verified}\"><td>{label}</td><td class=\"num\">{orders_n}</td><td class=\"num\">{final_n}</td><td class=\"num\">{pending}</td><td class=\"num\">{verified}</td><td class=\"num\">{not_verified}</td><td class=\"num{conversion_class}\">{conversion}</td><td class=\"num\">{delivery}</td><td class=\"num\">{p50}</td><td class=\"num\">{p95}</td><td class=\"num\">{cost:.4}</td><td class=\"num\">{per}</td><td><a class=\"orders-link\" href=\"{orders}\">orders</a> · <a class=\"failed-link\" href=\"{failed}\">failed ({not_verified})</a>{operators}</td></tr>\n",
        key = escape(&row.key),
        orders_n = row.orders,
        final_n = row.final_orders,
        pending = row.pending,
        verified = row.outcomes.get("verified").copied().unwrap_or(0),
        conversion = ratio(row.conversion),
        delivery = ratio(row.delivery_ratio),
        p50 = secs(row.latency_p50_seconds.map(|s| (s * 1000.0) as i64)),
        p95 = secs(row.latency_p95_seconds.map(|s| (s * 1000.0) as i64)),
        cost = row.cost_usd,
        per = row
            .cost_per_verified_usd
            .map_or("–".to_string(), |c| format!("{c:.4}")),
        orders = escape(&orders),
        failed = escape(&failed),
    )
}

/// Counter values of a labelled family, by the value of `label`.
fn by_label(collector: &dyn Collector, label: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for family in collector.collect() {
        for m in family.get_metric() {
            let key = m
                .get_label()
                .iter()
                .find(|l| l.name() == label)
                .map(|l| l.value().to_string())
                .unwrap_or_default();
            out.push((key, m.get_counter().get_value()));
        }
    }
    out
}

fn human_secs(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// `/`: the on-call overview.
pub(super) async fn landing(ctx: &Ctx) -> Response<Full<Bytes>> {
    let now_ms = crate::clock::unix_now_ms();
    let q = query::BreakdownQuery {
        by: query::By::Country,
        filter: OrderFilter {
            since_ms: Some(now_ms - query::DEFAULT_BREAKDOWN_MS),
            ..OrderFilter::default()
        },
    };
    let countries = read_journal(ctx, move |store| {
        let size = store.journal_size().ok();
        store.journal_breakdown(&q).map(|b| (b, size))
    })
    .await;
    let section = match countries {
        Ok(Ok((b, size))) => {
            let kept = [("since", "15m")];
            let mut s = breakdown_table(&b, &kept, "countries");
            if let Some((bytes, entries)) = size {
                let _ = writeln!(
                    s,
                    "<p id=\"journal-size\" class=\"muted\" data-entries=\"{entries}\" data-bytes=\"{bytes}\">The journal keeps {entries} orders in {:.1} MiB.</p>",
                    bytes as f64 / (1024.0 * 1024.0)
                );
            }
            s
        }
        Ok(Err(e)) => format!(
            "<p id=\"journal-problem\" class=\"bad\">{}</p>",
            escape(&Chain(&e).to_string())
        ),
        Err(u) => format!(
            "<p id=\"journal-problem\" class=\"bad\">{}</p>",
            escape(&u.message())
        ),
    };
    response(StatusCode::OK, HTML, super::landing(ctx, now_ms, &section))
}

/// The overview's status table (uptime, pending, API, spool).
pub(super) fn overview_rows(ctx: &Ctx, now_ms: i64) -> String {
    let s = &ctx.status;
    let m = &ctx.metrics;
    let mut t = String::new();
    let uptime_secs = (now_ms - ctx.started_ms) / 1000;
    let _ = writeln!(
        t,
        "<tr id=\"uptime\" data-seconds=\"{uptime_secs}\"><td>Uptime</td><td>{}</td></tr>",
        human_secs(uptime_secs)
    );
    let pending = s.pending.load(Ordering::Relaxed);
    let oldest = m.oldest_pending_age.get();
    let _ = writeln!(
        t,
        "<tr id=\"pending\" data-pending=\"{pending}\" data-oldest-seconds=\"{oldest:.0}\"><td>Pending orders</td><td><a href=\"/orders?state=pending\">{pending}</a>{}</td></tr>",
        if pending > 0 {
            format!(", the oldest issued {} ago", human_secs(oldest as i64))
        } else {
            String::new()
        }
    );
    let failed: Vec<(String, f64)> = by_label(&m.api_requests, "status")
        .into_iter()
        .filter(|(status, n)| status != "0" && *n > 0.0)
        .collect();
    // Counters are whole numbers; an empty f64 sum would print as -0.
    let failed_total: u64 = failed.iter().map(|(_, n)| *n as u64).sum();
    let last = match s.last_api_problem() {
        Some((at_ms, problem)) => format!(
            "{} <span class=\"muted\">at {} ({} ago)</span>",
            escape(&problem),
            time(Some(at_ms)),
            human_secs((now_ms - at_ms) / 1000)
        ),
        None => "none since start".to_string(),
    };
    let detail: Vec<String> = failed
        .iter()
        .map(|(status, n)| format!("{}: {}", escape(status), *n as u64))
        .collect();
    let _ = writeln!(
        t,
        "<tr id=\"last-api-error\"><td>Last API problem</td><td>{last}</td></tr>\n<tr id=\"api-errors\" data-count=\"{failed_total}\"><td>Queries not answered with status 0</td><td>{failed_total}{}</td></tr>",
        if detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", detail.join(", "))
        }
    );
    let rejected = m.spool_lines.with_label_values(&["rejected"]).get();
    let quarantined = by_label(&m.spool_files_quarantined, "reason");
    let quarantined_total: u64 = quarantined.iter().map(|(_, n)| *n as u64).sum();
    let reasons: Vec<String> = quarantined
        .iter()
        .filter(|(_, n)| *n > 0.0)
        .map(|(r, n)| format!("{}: {}", escape(r), *n as u64))
        .collect();
    let _ = writeln!(
        t,
        "<tr id=\"spool-rejects\" data-count=\"{rejected}\"><td>Spool lines rejected</td><td>{rejected}</td></tr>\n<tr id=\"spool-quarantined\" data-count=\"{quarantined_total}\"><td>Spool files quarantined</td><td>{quarantined_total}{}</td></tr>",
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        }
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::query::{By, Group};
    use crate::journal::{new_entry, AttemptDetail, Event, EventKind};
    use crate::outcome::{AttemptResult, Channel};
    use std::collections::BTreeMap;

    const HOSTILE: &str = r#"<script>alert('x')</script>"&"#;

    /// Provider strings (reasons, operator names, failure details), order and app ids
    /// reach the order page and the breakdown: none can open a tag or leave an attribute.
    #[test]
    fn every_string_of_an_order_and_a_breakdown_is_escaped() {
        let mut e = new_entry(HOSTILE, HOSTILE, 1_800_000_000_000);
        e.outcome = Some(Outcome::Undelivered);
        e.state = State::Final;
        e.rule = Some(HOSTILE.into());
        e.finalize_reason = Some(HOSTILE.into());
        e.country = Some(HOSTILE.into());
        e.channel = Some(HOSTILE.into());
        e.operator = Some(HOSTILE.into());
        e.receiver = Some(HOSTILE.into());
        e.attempts.push(AttemptDetail {
            channel: Channel::Sms,
            seq: 0,
            mcc: Some(404),
            mnc: Some(45),
            operator: Some(HOSTILE.into()),
            result: AttemptResult::Failed,
            provider_status: Some(1),
            provider_reason: Some(HOSTILE.into()),
            submit_ms: None,
            done_ms: None,
            answer_ms: None,
            latency_ms: None,
            cost_usd: 0.0,
            segments: 1,
        });
        e.timeline.push(Event {
            at_ms: 1_800_000_001_000,
            what: EventKind::QueryFailed {
                detail: HOSTILE.into(),
            },
        });
        e.timeline.push(Event {
            at_ms: 1_800_000_002_000,
            what: EventKind::Answered {
                answer: crate::journal::Answer::Record,
                changes: vec![crate::journal::Change::AttemptAppeared {
                    channel: Channel::Sms,
                    seq: 0,
                    result: AttemptResult::Failed,
                }],
            },
        });
        let page = page("Order", &order_body(&e));
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("alert('x')"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"));

        let row = crate::journal::IndexRow {
            app_id: HOSTILE.into(),
            state: State::Final,
            outcome: Some(Outcome::Failed),
            country: Some(HOSTILE.into()),
            channel: None,
            mcc: None,
            mnc: None,
            operator_label: Some(HOSTILE.into()),
            operator: Some(HOSTILE.into()),
            latency_ms: None,
            cost_usd: 0.0,
            attempts_delivered: 0,
            attempts_failed: 1,
            queries: 1,
            finalized_ms: None,
            entry_bytes: 1,
        };
        for by in [By::Country, By::Operator, By::AppId] {
            let mut groups = BTreeMap::new();
            groups
                .entry(by.key(&row))
                .or_insert_with(Group::default)
                .add(&row);
            let b = Breakdown::from_groups(by, &OrderFilter::default(), groups, 0);
            let table = breakdown_table(&b, &[("since", HOSTILE)], "t");
            assert!(!table.contains("<script>"), "{table}");
            assert!(!table.contains("alert('x')"), "{table}");
        }
    }

    /// A fresh daemon has no failed query and no quarantined file: zeros, not "-0".
    #[test]
    fn the_overview_counts_from_zero() {
        let ctx = Ctx {
            metrics: std::sync::Arc::new(crate::metrics::Metrics::new(&["app".to_string()])),
            status: std::sync::Arc::new(crate::status::Status::new()),
            page: std::sync::Arc::new(super::super::PageInfo {
                spool_dir: String::new(),
                state_dir: String::new(),
                api_url: String::new(),
                apps: Vec::new(),
                journal: super::super::JournalHandle::default(),
            }),
            telemetry_path: "/metrics".into(),
            users: None,
            headers: std::sync::Arc::new(Vec::new()),
            journal: super::super::JournalHandle::default(),
            started_ms: 0,
        };
        let rows = overview_rows(&ctx, 90_000);
        for id in ["api-errors", "spool-rejects", "spool-quarantined"] {
            assert!(
                rows.contains(&format!("<tr id=\"{id}\" data-count=\"0\">")),
                "{id}: {rows}"
            );
        }
        assert!(rows.contains("data-seconds=\"90\""), "{rows}");
        assert!(rows.contains("none since start"), "{rows}");
    }

    #[test]
    fn group_links_put_the_key_first_and_keep_the_range() {
        assert_eq!(
            orders_href(&with_group(&[("since", "15m")], "country", "IN", &[])),
            "/orders?country=IN&since=15m"
        );
        assert_eq!(
            orders_href(&with_group(
                &[("since", "15m"), ("country", "DE"), ("state", "pending")],
                "country",
                "IN",
                &[("state", "final"), ("outcome", NOT_VERIFIED)]
            )),
            "/orders?country=IN&since=15m&state=final&outcome=failed%2Cunverified%2Cundelivered%2Cnot_found%2Cexpired"
        );
    }
}

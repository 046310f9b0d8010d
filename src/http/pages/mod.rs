//! The journal's HTML pages: the on-call overview (`/`), a filtered list of orders
//! (`/orders`, sortable, with a filter form), one order's timeline (`/orders/{id}`)
//! and a breakdown (`/breakdown?by=operator&country=IN&since=15m`). Plain HTML, no
//! script, no external assets; every string that is not a literal of this file goes
//! through `escape` (order ids, app ids and provider strings are input). Elements a
//! browser test relies on carry a stable `id` or `data-` attribute.

mod breakdown;
mod order;
mod orders;
mod overview;

use breakdown::*;
use order::*;
use orders::*;
pub(super) use overview::{landing, overview_rows};

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

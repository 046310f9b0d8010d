//! `/orders/{id}`: what the provider said, when, and why the outcome is what it is.

use std::fmt::Write as _;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

use super::html::{html, opt, orders_href, outcome_cell, problem_page, secs, time, unavailable};
use crate::error::Chain;
use crate::http::api::{percent_encode, read_journal};
use crate::http::{escape, Ctx};
use crate::journal::query::{self, rfc3339, timeline_lines};
use crate::journal::{AttemptDetail, Entry, State};
use crate::outcome::{AttemptResult, Outcome};

/// `/orders/{id}`: what the provider said, when, and why the outcome is what it is.
pub(super) async fn order(ctx: &Ctx, order_id: String) -> Response<Full<Bytes>> {
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

/// The order page's body: verdict, facts, attempts, fallbacks, timeline.
pub(super) fn order_body(e: &Entry) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<h1>Order <span id=\"order-id\" data-order-id=\"{id}\">{id}</span></h1>",
        id = escape(&e.order_id)
    );
    // The verdict first: the outcome and the rule that made it.
    b.push_str(&verdict(e));
    b.push_str(&facts_table(e));
    b.push_str("<h2>Attempts</h2>\n");
    b.push_str(&attempts_table(e));
    if !e.fallbacks.is_empty() {
        let steps: Vec<String> = e
            .fallbacks
            .iter()
            .map(|(f, t)| format!("{} → {}", f.as_str(), t.as_str()))
            .collect();
        let _ = writeln!(b, "<p id=\"fallbacks\">Fallbacks: {}</p>", steps.join(", "));
    }
    b.push_str(&timeline(e));
    let _ = writeln!(
        b,
        "<p><a id=\"json-link\" href=\"/api/v1/orders/{}\">This order as JSON</a></p>",
        escape(&percent_encode(&e.order_id))
    );
    b
}

/// The outcome, the rule that made it and why the order was finalized.
fn verdict(e: &Entry) -> String {
    let verdict = match (e.state, e.outcome) {
        (State::Final, Some(o)) => format!("Final: {}", outcome_cell(e.state, Some(o))),
        (State::Pending, Some(o)) => format!(
            "Decided {} — still pending while its attempts settle",
            outcome_cell(e.state, Some(o))
        ),
        (_, None) => "Pending: no outcome yet".to_string(),
    };
    format!(
        "<div id=\"verdict\" data-state=\"{state}\" data-outcome=\"{outcome}\"><p><b>{verdict}</b></p>{rule}{reason}</div>\n",
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
    )
}

/// The order's facts, one row each, keyed by `data-fact`.
fn facts_table(e: &Entry) -> String {
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
    let mut t = String::from("<table id=\"facts\">\n");
    for (key, label, value) in rows {
        let _ = writeln!(
            t,
            "<tr data-fact=\"{key}\"><th>{label}</th><td>{value}</td></tr>"
        );
    }
    t.push_str("</table>\n");
    t
}

/// The attempts as the provider last reported them (or a note that it showed none).
fn attempts_table(e: &Entry) -> String {
    if e.attempts.is_empty() {
        return "<p id=\"no-attempts\" class=\"muted\">The provider has shown no attempt.</p>\n"
            .to_string();
    }
    let mut t = String::from("<table id=\"attempts\"><thead><tr><th>Channel</th><th>#</th><th>Result</th><th>Provider said</th><th>Network</th><th>Submitted</th><th>Done</th><th>Answered</th><th>Latency</th><th>Cost (USD)</th><th>Segments</th></tr></thead><tbody>\n");
    for a in &e.attempts {
        t.push_str(&attempt_row(a));
    }
    t.push_str("</tbody></table>\n");
    t
}

fn attempt_row(a: &AttemptDetail) -> String {
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
        AttemptResult::Delivered => "<span class=\"good\">delivered</span>",
        AttemptResult::Failed => "<span class=\"bad\">failed</span>",
        AttemptResult::Pending => "pending",
    };
    format!(
        "<tr class=\"attempt\" data-channel=\"{ch}\" data-seq=\"{seq}\" data-result=\"{res}\"><td>{ch}</td><td>{n}</td><td>{result}</td><td class=\"provider-said\">{said}</td><td>{network}</td><td>{sub}</td><td>{done}</td><td>{ans}</td><td class=\"num\">{lat}</td><td class=\"num\">{cost:.4}</td><td class=\"num\">{seg}</td></tr>\n",
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
    )
}

/// The timeline in plain English, with a note of the lines the cap dropped.
fn timeline(e: &Entry) -> String {
    let mut t = String::from("<h2>Timeline</h2>\n");
    if e.timeline_dropped > 0 {
        let _ = writeln!(
            t,
            "<p id=\"timeline-dropped\" class=\"muted\">{} older lines dropped (the timeline keeps the first and the latest {}).</p>",
            e.timeline_dropped,
            crate::journal::MAX_TIMELINE - 1
        );
    }
    t.push_str("<ol id=\"timeline\">\n");
    for line in timeline_lines(e) {
        let t_at = rfc3339(line.at_ms);
        let _ = writeln!(
            t,
            "<li class=\"event event-{kind}\" data-event=\"{kind}\"><time datetime=\"{t_at}\">{t_at}</time>{text}</li>",
            kind = line.event,
            text = escape(&line.text),
        );
    }
    t.push_str("</ol>\n");
    t
}

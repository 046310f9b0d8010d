//! What every page shares: the layout, the problem pages, links and cells.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

use crate::http::api::{percent_encode, Unavailable};
use crate::http::{escape, response};
use crate::journal::query::{rfc3339, QueryError};
use crate::journal::State;
use crate::outcome::Outcome;

pub(super) const HTML: &str = "text/html; charset=utf-8";

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;max-width:80em}\
table{border-collapse:collapse}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
th a{text-decoration:none}.bad{color:#b00020;font-weight:bold}.good{color:#1b5e20}\
.num{text-align:right;font-variant-numeric:tabular-nums}nav a{margin-right:1em}\
form label{display:inline-block;margin:0 .8em .4em 0}input{width:8em}\
#verdict{border-left:4px solid #888;padding:.5em 1em;background:#f6f6f6}\
ol#timeline li{margin:.2em 0}time{font-family:monospace;color:#444;margin-right:.7em}\
.muted{color:#777}";

pub(super) fn page(title: &str, body: &str) -> String {
    layout(&format!("{title} · ITNIO OTP exporter"), body)
}

/// A page with the shared style and navigation, titled `title` exactly (the landing
/// page is "ITNIO OTP exporter" alone).
pub(in crate::http) fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{STYLE}</style></head>
<body><nav id="nav"><a href="/" id="nav-home">Overview</a><a href="/orders" id="nav-orders">Orders</a><a href="/breakdown?by=country&amp;since=15m" id="nav-breakdown">Breakdown</a></nav>
{body}</body></html>
"#,
        title = escape(title),
    )
}

pub(super) fn html(status: StatusCode, title: &str, body: &str) -> Response<Full<Bytes>> {
    response(status, HTML, page(title, body))
}

pub(super) fn problem_page(
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response<Full<Bytes>> {
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

pub(super) fn unavailable(u: &Unavailable) -> Response<Full<Bytes>> {
    problem_page(u.status(), "Order journal unavailable", &u.message())
}

pub(super) fn bad_query(e: &QueryError) -> Response<Full<Bytes>> {
    problem_page(StatusCode::BAD_REQUEST, "Bad request", &e.to_string())
}

/// A query string from pairs (values encoded).
pub(super) fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

pub(super) fn orders_href(pairs: &[(&str, &str)]) -> String {
    format!("/orders?{}", query_string(pairs.iter().copied()))
}

pub(super) fn order_href(order_id: &str) -> String {
    format!("/orders/{}", percent_encode(order_id))
}

pub(super) fn opt(v: Option<impl ToString>) -> String {
    v.map(|v| escape(&v.to_string()))
        .unwrap_or_else(|| "–".to_string())
}

pub(super) fn time(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => {
            let t = rfc3339(ms);
            format!("<time datetime=\"{t}\">{t}</time>")
        }
        None => "–".to_string(),
    }
}

pub(super) fn secs(ms: Option<i64>) -> String {
    ms.map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
        .unwrap_or_else(|| "–".to_string())
}

pub(super) fn ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{:.1} %", r * 100.0))
        .unwrap_or_else(|| "–".to_string())
}

pub(super) fn outcome_cell(state: State, outcome: Option<Outcome>) -> String {
    match (state, outcome) {
        (_, Some(Outcome::Verified)) => "<span class=\"good\">verified</span>".to_string(),
        (State::Final, Some(o)) => format!("<span class=\"bad\">{}</span>", o.as_str()),
        (State::Pending, Some(o)) => format!("{} (settling)", o.as_str()),
        (_, None) => "<span class=\"muted\">–</span>".to_string(),
    }
}

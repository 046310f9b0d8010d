//! `/breakdown`: groups of the journal added up, worst first, each linking to its
//! orders; its table is also the overview's.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

use super::html::{
    bad_query, html, orders_href, problem_page, query_string, ratio, secs, time, unavailable,
};
use crate::error::Chain;
use crate::http::api::read_journal;
use crate::http::{escape, Ctx};
use crate::journal::query::By;
use crate::journal::query::{self, Breakdown, BreakdownRow};

/// Every outcome but `verified`: the "failed" links.
pub(super) const NOT_VERIFIED: &str = "failed,unverified,undelivered,not_found,expired";

/// `/breakdown`: groups of the journal added up, worst first, each linking to its orders.
pub(super) async fn breakdown(ctx: &Ctx, query: Option<&str>) -> Response<Full<Bytes>> {
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
pub(super) fn breakdown_table(b: &Breakdown, kept: &[(&str, &str)], id: &str) -> String {
    let by = b.by.as_str();
    let heading = match b.by {
        By::Country => "Country",
        By::Operator => "Operator",
        By::Channel => "Channel",
        By::AppId => "App",
    };
    let mut t = format!(
        "<table id=\"{id}\" data-by=\"{by}\"><thead><tr><th>{heading}</th><th>Orders</th><th>Final</th><th>Pending</th><th>Verified</th><th>Not verified</th><th>Conversion</th><th>Delivery ratio</th><th>Latency p50</th><th>Latency p95</th><th>Cost (USD)</th><th>Per verified (USD)</th><th>Drill down</th></tr></thead><tbody>\n"
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

#[cfg(test)]
mod tests {
    use super::*;

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

//! `/orders`: the filter form, one page of orders (sortable), the next page's link.

use std::fmt::Write as _;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

use super::html::{
    bad_query, html, opt, order_href, orders_href, outcome_cell, problem_page, query_string, secs,
    time, unavailable,
};
use crate::error::Chain;
use crate::http::api::read_journal;
use crate::http::{escape, Ctx};
use crate::journal::query::{self, Cursor, Listed, OrdersPage, QueryError};
use crate::outcome::Outcome;

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
pub(super) async fn orders(ctx: &Ctx, query: Option<&str>) -> Response<Full<Bytes>> {
    let now_ms = crate::clock::unix_now_ms();
    let params = query::split_query(query);
    let list = match query::parse_list(&params, now_ms, &["sort", "dir"]) {
        Ok(l) => l,
        Err(e) => return bad_query(&e),
    };
    let (sort, sort_word, descending) = match sort_order(&params) {
        Ok(order) => order,
        Err(e) => return bad_query(&e),
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
    let body = orders_body(&params, &page, sort, sort_word, descending);
    html(StatusCode::OK, "Orders", &body)
}

/// A parameter's value as given (the first, as `parse_list` refuses repeats).
fn given<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The `sort` (default `issued`) and `dir` (default `desc`) parameters: the sort,
/// its word and whether it is descending.
fn sort_order(params: &[(String, String)]) -> Result<(Sort, &str, bool), QueryError> {
    let sort_word = given(params, "sort").unwrap_or("issued");
    let Some(&(sort, _, _)) = SORTS.iter().find(|(_, w, _)| *w == sort_word) else {
        let words: Vec<&str> = SORTS.iter().map(|(_, w, _)| *w).collect();
        return Err(QueryError::Bad {
            name: "sort".into(),
            value: sort_word.into(),
            why: format!("one of {}", words.join(", ")),
        });
    };
    let descending = match given(params, "dir").unwrap_or("desc") {
        "desc" => true,
        "asc" => false,
        other => {
            return Err(QueryError::Bad {
                name: "dir".into(),
                value: other.into(),
                why: "asc or desc".into(),
            })
        }
    };
    Ok((sort, sort_word, descending))
}

/// The page's body: title, filter form, count, table and the next page's link.
fn orders_body(
    params: &[(String, String)],
    page: &OrdersPage,
    sort: Sort,
    sort_word: &str,
    descending: bool,
) -> String {
    // The parameters as given (relative times stay relative in links), minus paging.
    let kept: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !matches!(k.as_str(), "cursor" | "sort" | "dir"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut body = String::from("<h1 id=\"title\">Orders</h1>\n");
    body.push_str(&filter_form(params, sort_word, descending));
    body.push_str(&count_line(page, sort, sort_word, descending, &kept));
    body.push_str(&orders_table(page, sort, descending, &kept));
    if let Some(next) = &page.next_cursor {
        // A next page keeps the sort only when it was asked for.
        let sorted = given(params, "sort").map(|_| (sort_word, descending));
        body.push_str(&next_page_link(next, &kept, sorted));
    }
    body
}

/// How many orders are shown and how sorted, the JSON link, damaged rows if any.
fn count_line(
    page: &OrdersPage,
    sort: Sort,
    sort_word: &str,
    descending: bool,
    kept: &[(&str, &str)],
) -> String {
    let mut line = String::new();
    let _ = writeln!(
        line,
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
            line,
            "<p class=\"bad\" id=\"damaged\">{} damaged journal rows skipped.</p>",
            page.damaged
        );
    }
    line
}

/// The orders' table: sortable column heads, one row per order.
fn orders_table(page: &OrdersPage, sort: Sort, descending: bool, kept: &[(&str, &str)]) -> String {
    let mut table = String::from("<table id=\"orders\"><thead><tr>");
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
        let mut pairs = kept.to_vec();
        pairs.extend([("sort", word), ("dir", dir)]);
        let _ = write!(
            table,
            "<th><a href=\"{}\" data-sort=\"{word}\">{label}{arrow}</a></th>",
            escape(&orders_href(&pairs))
        );
    }
    table.push_str("<th>App</th><th>Channel</th><th>MCC/MNC</th></tr></thead><tbody>\n");
    for o in &page.orders {
        table.push_str(&order_row(o));
    }
    table.push_str("</tbody></table>\n");
    table
}

/// One order's row, linking to its page.
fn order_row(o: &Listed) -> String {
    let r = &o.row;
    format!(
        "<tr class=\"order\" data-order-id=\"{id}\" data-outcome=\"{outcome}\" data-state=\"{state}\"><td>{issued}</td><td><a class=\"order-link\" href=\"{href}\">{id}</a></td><td>{outcome_cell}</td><td>{country}</td><td>{operator}</td><td class=\"num\">{latency}</td><td class=\"num\">{cost:.4}</td><td class=\"num\">{queries}</td><td>{app}</td><td>{channel}</td><td>{mcc}/{mnc}</td></tr>\n",
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
    )
}

/// The link to the next (older) page; `sorted` is the sort and direction to keep.
fn next_page_link(next: &Cursor, kept: &[(&str, &str)], sorted: Option<(&str, bool)>) -> String {
    let cursor = next.encode();
    let mut pairs = kept.to_vec();
    pairs.push(("cursor", cursor.as_str()));
    if let Some((sort_word, descending)) = sorted {
        pairs.extend([
            ("sort", sort_word),
            ("dir", if descending { "desc" } else { "asc" }),
        ]);
    }
    format!(
        "<p><a id=\"next-page\" href=\"{}\">Older orders →</a></p>\n",
        escape(&orders_href(&pairs))
    )
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

//! The journal's HTML pages: the on-call overview (`/`), a filtered list of orders
//! (`/orders`, sortable, with a filter form), one order's timeline (`/orders/{id}`)
//! and a breakdown (`/breakdown?by=operator&country=IN&since=15m`). Plain HTML, no
//! script, no external assets; every string that is not a literal of this file goes
//! through `escape` (order ids, app ids and provider strings are input). Elements a
//! browser test relies on carry a stable `id` or `data-` attribute.
//!
//! One module per page: `overview` (`/`), `orders` (the list), `order` (one order),
//! `breakdown`; `html` holds the layout and cells they share.

mod breakdown;
mod html;
mod order;
mod orders;
mod overview;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

use super::api::percent_decode;
use super::Ctx;
pub(in crate::http) use html::layout;
use html::problem_page;

pub(super) use overview::{landing, overview_rows};

/// `/orders…` and `/breakdown`.
pub(super) async fn route(ctx: &Ctx, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    match path {
        "/orders" | "/orders/" => orders::orders(ctx, query).await,
        "/breakdown" => breakdown::breakdown(ctx, query).await,
        _ => {
            let raw = path.strip_prefix("/orders/").unwrap_or_default();
            match percent_decode(raw).filter(|id| !id.is_empty() && !raw.contains('/')) {
                Some(id) => order::order(ctx, id).await,
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
    use super::breakdown::breakdown_table;
    use super::html::page;
    use super::order::order_body;
    use crate::journal::query::{Breakdown, By, Group, OrderFilter};
    use crate::journal::{new_entry, AttemptDetail, Event, EventKind, State};
    use crate::outcome::{AttemptResult, Channel, Outcome};
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
}

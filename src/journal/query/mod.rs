//! Questions to the journal, without I/O: the query parameters of `/api/v1/orders`,
//! `/api/v1/breakdown` and the pages (parsed and checked, every mistake named), the
//! filter lists and breakdowns apply to index rows, the breakdown's arithmetic, and the
//! JSON views of an order with its timeline in plain English.
//!
//! One module per concern: `params` (parameters, filters, cursors, their errors),
//! `time` (times in and out), `breakdown` (grouping and its arithmetic), `view` (the
//! JSON of lists and of one order) and `timeline` (its plain-English sentences).

mod breakdown;
mod params;
mod time;
mod timeline;
mod view;

pub use breakdown::{Breakdown, BreakdownRow, By, Group};
pub use params::{
    parse_breakdown, parse_list, split_query, BreakdownQuery, Cursor, ListQuery, OrderFilter,
    QueryError, DEFAULT_BREAKDOWN_MS, DEFAULT_LIMIT, FILTER_PARAMS, MAX_LIMIT,
};
pub use time::{parse_time, rfc3339};
pub use timeline::{matched_name, timeline_lines, TimelineLine};
pub use view::{detail_json, Listed, OrdersPage, Summary};

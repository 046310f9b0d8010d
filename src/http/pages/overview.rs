//! `/`: the on-call overview (the countries of the last 15 minutes and the daemon's
//! status table).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use prometheus::core::Collector;

use super::breakdown::breakdown_table;
use super::html::{time, HTML};
use crate::error::Chain;
use crate::http::api::read_journal;
use crate::http::{escape, response, Ctx};
use crate::journal::query::{self, OrderFilter};

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
pub(in crate::http) async fn landing(ctx: &Ctx) -> Response<Full<Bytes>> {
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
    response(
        StatusCode::OK,
        HTML,
        crate::http::landing(ctx, now_ms, &section),
    )
}

/// The overview's status table (uptime, pending, API, spool).
pub(in crate::http) fn overview_rows(ctx: &Ctx, now_ms: i64) -> String {
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

    /// A fresh daemon has no failed query and no quarantined file: zeros, not "-0".
    #[test]
    fn the_overview_counts_from_zero() {
        let ctx = Ctx {
            metrics: std::sync::Arc::new(crate::metrics::Metrics::new(&["app".to_string()])),
            status: std::sync::Arc::new(crate::status::Status::new()),
            page: std::sync::Arc::new(crate::http::PageInfo {
                spool_dir: String::new(),
                state_dir: String::new(),
                api_url: String::new(),
                apps: Vec::new(),
                journal: crate::http::JournalHandle::default(),
            }),
            telemetry_path: "/metrics".into(),
            users: None,
            headers: std::sync::Arc::new(Vec::new()),
            journal: crate::http::JournalHandle::default(),
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
}

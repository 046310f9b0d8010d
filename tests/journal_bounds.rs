//! The journal's retention and size bounds on the real binary: the background eviction
//! removes entries of orders issued longer ago than `journal.retention`, and the oldest
//! beyond `journal.max_bytes`, while the orders themselves are tracked and counted as
//! before.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::*;

/// The journal's (entries, encoded bytes), from the landing page's `#journal-size`.
fn journal_size(addr: std::net::SocketAddr) -> Option<(u64, u64)> {
    let (status, page) = get(addr, "/").ok()?;
    if status != 200 {
        return None;
    }
    let at = page.find("id=\"journal-size\"")?;
    let tag = &page[at..page[at..].find('>')? + at];
    let attr = |name: &str| -> Option<u64> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        tag[start..].split('"').next()?.parse().ok()
    };
    Some((attr("data-entries")?, attr("data-bytes")?))
}

/// The simulator and the real daemon with `journal` settings and config edits.
fn start(journal: &str, edits: &[(&str, &str)]) -> (Sim, tempfile::TempDir, Exporter) {
    let sim = Sim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = exporter_config(dir.path(), addr, &sim.base_url(), journal);
    edit_config(&config, edits);
    let exporter = Exporter::start(dir.path(), &config, addr, "info");
    (sim, dir, exporter)
}

fn status_of(addr: std::net::SocketAddr, path: &str) -> u16 {
    get(addr, path).map(|(s, _)| s).unwrap_or(0)
}

#[test]
fn entries_older_than_the_retention_are_evicted_and_newer_ones_kept() {
    let (_sim, _dir, exporter) = start("journal:\n  retention: 4s\n", &[]);
    let addr = exporter.addr;
    let ids: String = (0..10).map(|i| format!("old-{i:02}\n")).collect();
    drop_spool_file(&exporter.spool(), "old", &ids);
    wait_for(Duration::from_secs(10), || {
        (status_of(addr, "/api/v1/orders/old-09") == 200).then_some(())
    })
    .unwrap_or_else(|| panic!("old-09 never journaled\n{}", exporter.proc.log()));
    // Issued 4 s ago at the latest by now + the next eviction pass (every 10 s).
    let evicted = wait_for(Duration::from_secs(30), || {
        let gone = (0..10).all(|i| status_of(addr, &format!("/api/v1/orders/old-{i:02}")) == 404);
        gone.then_some(())
    });
    assert!(
        evicted.is_some(),
        "entries older than journal.retention (4s) still there after 30 s: {:?}\n{}",
        journal_size(addr),
        exporter.proc.log()
    );
    // A new order is journaled (and kept until it is older than the retention).
    drop_spool_file(&exporter.spool(), "new", "new-00\n");
    wait_for(Duration::from_secs(10), || {
        (status_of(addr, "/api/v1/orders/new-00") == 200).then_some(())
    })
    .unwrap_or_else(|| panic!("new-00 never journaled\n{}", exporter.proc.log()));
    // The orders themselves were tracked to the end and counted: eviction is the
    // journal's business only.
    metric("otp_orders_total")
        .label("outcome", "not_found")
        .value(10.0)
        .assert_eventually(&exporter.metrics_url(), Duration::from_secs(20));
}

#[test]
fn the_oldest_entries_go_first_beyond_max_bytes() {
    let edits = [(
        "max_requests_per_second: 400",
        "max_requests_per_second: 3000",
    )];
    let (_sim, _dir, exporter) = start("journal:\n  max_bytes: 1MiB\n", &edits);
    let addr = exporter.addr;
    // Ids the provider never heard of: each ends `not_found` after the grace, its
    // entry (about 200 bytes) written by its queries; together about 1.7 MB.
    const ORDERS: usize = 8_000;
    let mut ids = String::new();
    for i in 0..ORDERS {
        writeln!(ids, "size-{i:05}").unwrap();
    }
    drop_spool_file(&exporter.spool(), "many", &ids);
    metric("otp_orders_total")
        .value(ORDERS as f64)
        .assert_eventually(&exporter.metrics_url(), Duration::from_secs(120));
    let bound = 1u64 << 20;
    // The next eviction pass (every 10 s) brings it within the bound.
    let within = wait_for(Duration::from_secs(25), || {
        journal_size(addr).filter(|(entries, bytes)| *entries > 0 && *bytes <= bound)
    });
    let (entries, bytes) = within.unwrap_or_else(|| {
        panic!(
            "the journal never came within journal.max_bytes (1 MiB): {:?}\n{}",
            journal_size(addr),
            exporter.proc.log()
        )
    });
    assert!(
        (entries as usize) < ORDERS,
        "{entries} entries in {bytes} bytes: nothing evicted"
    );
    // Oldest first: same issue time (the file's), so by id.
    assert_eq!(status_of(addr, "/api/v1/orders/size-00000"), 404);
    assert_eq!(
        status_of(addr, &format!("/api/v1/orders/size-{:05}", ORDERS - 1)),
        200
    );
    // Close to the bound, not emptied: eviction stops once within it.
    assert!(bytes > bound / 2, "{entries} entries in {bytes} bytes");
}

//! Tests of the harness's own exposition parser and metric matcher. Mounted by one
//! test binary only (`end_to_end.rs`), so they run once rather than in every binary
//! that uses `common`.

use std::time::{Duration, Instant};

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::common::exposition::{parse, parse_sample};
use crate::common::{free_addr, metric, Metrics};

fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let err = std::panic::catch_unwind(f).expect_err("it panics");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn label_values_are_unescaped() {
    let s = parse_sample(r#"m{path="C:\\DIR\\F.TXT",error="Cannot find:\n\"F.TXT\""} 1"#).unwrap();
    assert_eq!(s.labels["path"], r"C:\DIR\F.TXT");
    assert_eq!(s.labels["error"], "Cannot find:\n\"F.TXT\"");
    // A backslash that ends a value does not swallow the closing quote.
    let s = parse_sample(r#"m{a="x\\",b="y"} 2"#).unwrap();
    assert_eq!(
        (s.labels["a"].as_str(), s.labels["b"].as_str()),
        (r"x\", "y")
    );
}

#[test]
fn separators_inside_a_value_are_part_of_it() {
    let s = parse_sample(r#"m{a="1,b=2}",c = "{x}" ,} 3 1700000000000"#).unwrap();
    assert_eq!(s.labels["a"], "1,b=2}");
    assert_eq!(s.labels["c"], "{x}");
    assert_eq!(s.labels.len(), 2);
    assert_eq!(s.value, 3.0);
    assert_eq!(parse_sample("m{} 4").unwrap().labels.len(), 0);
}

#[test]
fn special_values_are_read_as_go_writes_them() {
    assert!(parse_sample("m NaN").unwrap().value.is_nan());
    assert_eq!(parse_sample("m +Inf").unwrap().value, f64::INFINITY);
    assert_eq!(parse_sample("m -Inf").unwrap().value, f64::NEG_INFINITY);
    assert_eq!(parse_sample("m 1.5e-3").unwrap().value, 0.0015);
}

#[test]
fn unreadable_lines_are_refused_with_their_line_number() {
    for (line, why) in [
        (r#"m{a="x} 1"#, "no closing quote"),
        (r#"m{a="x\t"} 1"#, "unknown escape"),
        (r#"m{a=x} 1"#, "not quoted"),
        (r#"m{a="x" b="y"} 1"#, "expected ','"),
        (r#"m{a="x",a="y"} 1"#, "appears twice"),
        (r#"m{1a="x"} 1"#, "invalid label name"),
        ("m", "no value"),
        ("m one", "not a number"),
        ("m 1 2 3", "unexpected"),
        ("m 1 soon", "timestamp"),
    ] {
        let err = parse(&format!("# HELP m x\n\n{line}\n")).expect_err(line);
        assert!(
            err.contains(why) && err.starts_with("line 3:"),
            "{line}: {err}"
        );
    }
}

/// What the daemon's own encoder (the `prometheus` crate) writes reads back exactly,
/// awkward label values and histogram series included.
#[test]
fn the_prometheus_crates_output_reads_back() {
    let registry = Registry::new();
    let counter = IntCounterVec::new(Opts::new("c_total", "help with \\ and \n"), &["v"]).unwrap();
    let histogram = HistogramVec::new(
        HistogramOpts::new("h_seconds", "h").buckets(vec![0.5, 1.0]),
        &["v"],
    )
    .unwrap();
    registry.register(Box::new(counter.clone())).unwrap();
    registry.register(Box::new(histogram.clone())).unwrap();
    let awkward = "a \\ b \" c\nd,e=f{g}";
    counter.with_label_values(&[awkward]).inc_by(7);
    counter.with_label_values(&["plain"]).inc_by(2);
    histogram.with_label_values(&[awkward]).observe(0.75);
    histogram.with_label_values(&[awkward]).observe(3.0);
    let mut text = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut text)
        .unwrap();
    let m = Metrics::parse(&String::from_utf8(text).unwrap());

    assert_eq!(m.sum("c_total", &[("v", awkward)]), 7.0);
    assert_eq!(m.sum("c_total", &[]), 9.0);
    let bucket = |le| m.sum("h_seconds_bucket", &[("v", awkward), ("le", le)]);
    assert_eq!(
        (bucket("0.5"), bucket("1"), bucket("+Inf")),
        (0.0, 1.0, 2.0)
    );
    assert_eq!(m.sum("h_seconds_count", &[("v", awkward)]), 2.0);
    assert_eq!(m.sum("h_seconds_sum", &[("v", awkward)]), 3.75);
    // Written back for a failure message, the series is escaped again.
    assert!(m
        .list("c_total")
        .contains(r#"c_total{v="a \\ b \" c\nd,e=f{g}"} 7"#));
}

#[test]
fn a_matcher_sums_the_series_it_names_and_lists_them_when_wrong() {
    let m = Metrics::parse(
        "otp_orders_total{country=\"IN\",app_id=\"a\"} 2\notp_orders_total{country=\"IN\",app_id=\"b\"} 1\notp_orders_total{country=\"BR\",app_id=\"a\"} 5\nother 1\n",
    );
    metric("otp_orders_total")
        .label("country", "IN")
        .value(3)
        .assert_in(&m);
    metric("otp_orders_total").at_least(8).assert_in(&m);
    metric("otp_orders_total")
        .label("app_id", "b")
        .assert_in(&m);

    let wrong = metric("otp_orders_total").label("country", "IN").value(4);
    let message = panic_message(|| wrong.assert_in(&m));
    assert!(
        message.contains(r#"sum(otp_orders_total{country="IN"}) == 4, got 3"#)
            && message.contains(r#"otp_orders_total{app_id="a",country="BR"} 5"#)
            && !message.contains("other"),
        "{message}"
    );
    let absent = metric("otp_orders_total").label("country", "NG");
    let message = panic_message(|| absent.assert_in(&m));
    assert!(message.contains("present"), "{message}");
    let message = panic_message(|| metric("nothing").at_least(1).assert_in(&m));
    assert!(message.contains("(no series of nothing)"), "{message}");
}

/// The retrying form gives up after its bound and says why it saw nothing.
#[test]
fn the_retrying_matcher_is_bounded_in_time() {
    let url = format!("http://{}/metrics", free_addr());
    let started = Instant::now();
    let message = panic_message(|| {
        metric("m")
            .value(1)
            .assert_eventually(&url, Duration::from_millis(500));
    });
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(
        message.contains("did not show it within") && message.contains(&url),
        "{message}"
    );
}

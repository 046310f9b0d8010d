//! A scrape and assertions on it, in the style of linkerd2-proxy's integration
//! metrics (`metric("otp_orders_total").label("country", "IN").value(3).assert_in(&scrape)`).
//!
//! A matcher's value is the sum over every series of the metric whose labels include
//! the given ones, as `sum(otp_orders_total{country="IN"})` would be in PromQL: tests
//! name the labels they care about and the rest may take any value.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::exposition::{self, Sample};
use super::http;

/// The samples of one scrape.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Reads an exposition; a line it cannot read fails the test, naming the line.
    pub fn parse(text: &str) -> Metrics {
        match exposition::parse(text) {
            Ok(samples) => Metrics { samples },
            Err(e) => panic!("unreadable exposition: {e}"),
        }
    }

    /// Sum of `name` over series whose labels include all of `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.matching(name, filter).map(|s| s.value).sum()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        filter: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && filter
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// Non-zero series of `name`, keyed by the given label names.
    pub fn by(&self, name: &str, keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
        let mut out = BTreeMap::new();
        for s in self.matching(name, &[]).filter(|s| s.value != 0.0) {
            let key = keys
                .iter()
                .map(|k| s.labels.get(*k).cloned().unwrap_or_default())
                .collect();
            *out.entry(key).or_insert(0.0) += s.value;
        }
        out
    }

    /// Every series of `name`, one per line, for failure messages.
    pub fn list(&self, name: &str) -> String {
        let lines: Vec<String> = self.matching(name, &[]).map(|s| format!("  {s}")).collect();
        if lines.is_empty() {
            format!("  (no series of {name})")
        } else {
            lines.join("\n")
        }
    }
}

/// Scrapes `url` once.
pub fn scrape(url: &str) -> Result<Metrics, String> {
    let (status, body) = http::get_url(url).map_err(|e| format!("GET {url}: {e}"))?;
    if status != 200 {
        return Err(format!("GET {url}: HTTP {status}: {body}"));
    }
    exposition::parse(&body)
        .map(|samples| Metrics { samples })
        .map_err(|e| format!("GET {url}: unreadable exposition: {e}"))
}

#[derive(Debug, Clone, Copy)]
enum Want {
    /// Some series matches, whatever its value.
    Present,
    Equal(f64),
    AtLeast(f64),
}

/// What one metric must show; build with [`metric`].
#[derive(Debug, Clone)]
pub struct MetricMatch {
    name: String,
    labels: Vec<(String, String)>,
    want: Want,
}

/// A matcher for `name`; without `.value()` or `.at_least()` it wants some
/// matching series to exist.
pub fn metric(name: &str) -> MetricMatch {
    MetricMatch {
        name: name.to_string(),
        labels: Vec::new(),
        want: Want::Present,
    }
}

impl MetricMatch {
    /// Only series with this label value count.
    pub fn label(mut self, key: &str, value: impl fmt::Display) -> Self {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }

    /// The sum must equal `value` exactly (counters and gauges of whole things).
    pub fn value(mut self, value: impl Into<f64>) -> Self {
        self.want = Want::Equal(value.into());
        self
    }

    /// The sum must be at least `value`.
    pub fn at_least(mut self, value: impl Into<f64>) -> Self {
        self.want = Want::AtLeast(value.into());
        self
    }

    /// The sum of the matching series in `scrape`, checked against what is wanted.
    fn check(&self, scrape: &Metrics) -> Result<f64, f64> {
        let filter: Vec<(&str, &str)> = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let got = scrape.sum(&self.name, &filter);
        let ok = match self.want {
            Want::Present => scrape.matching(&self.name, &filter).next().is_some(),
            Want::Equal(want) => got == want,
            Want::AtLeast(want) => got >= want,
        };
        if ok {
            Ok(got)
        } else {
            Err(got)
        }
    }

    fn failure(&self, scrape: &Metrics, got: f64) -> String {
        format!(
            "wanted {self}, got {got}; the series of {} were:\n{}",
            self.name,
            scrape.list(&self.name)
        )
    }

    /// Panics unless `scrape` shows what is wanted, listing the metric's series.
    #[track_caller]
    pub fn assert_in(&self, scrape: &Metrics) {
        if let Err(got) = self.check(scrape) {
            panic!("{}", self.failure(scrape, got));
        }
    }

    /// Scrapes `url` until it shows what is wanted, for at most `within`; returns
    /// that scrape. On timeout, panics with the last scrape's series of the metric.
    #[track_caller]
    pub fn assert_eventually(&self, url: &str, within: Duration) -> Metrics {
        assert_all_eventually(url, within, std::slice::from_ref(self))
    }
}

impl fmt::Display for MetricMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        write!(f, "sum({}{{{}}})", self.name, labels.join(","))?;
        match self.want {
            Want::Present => f.write_str(" present"),
            Want::Equal(v) => write!(f, " == {v}"),
            Want::AtLeast(v) => write!(f, " >= {v}"),
        }
    }
}

/// Scrapes `url` until one scrape shows everything in `wants` at once, for at most
/// `within`; returns that scrape. On timeout, panics with what the last scrape
/// showed for each unmet matcher (or why there was no scrape).
#[track_caller]
pub fn assert_all_eventually(url: &str, within: Duration, wants: &[MetricMatch]) -> Metrics {
    let deadline = Instant::now() + within;
    loop {
        let last = scrape(url);
        if let Ok(m) = &last {
            if wants.iter().all(|w| w.check(m).is_ok()) {
                return m.clone();
            }
        }
        if Instant::now() >= deadline {
            let why = match last {
                Err(e) => e,
                Ok(m) => wants
                    .iter()
                    .filter_map(|w| w.check(&m).err().map(|got| w.failure(&m, got)))
                    .collect::<Vec<_>>()
                    .join("\n"),
            };
            panic!("{url} did not show it within {within:?}:\n{why}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

//! Labelled metric families that render themselves into the text exposition format.
//!
//! Why not the prometheus crate's vectors for these: its `Registry::gather()` copies
//! every series' label pairs into fresh strings at each scrape and its `TextEncoder`
//! formats every value through a temporary `String`; with 20,000 series a scrape took
//! about 30 ms. Here a series renders its label set once, when it is first used, and a
//! scrape copies those bytes and formats the numbers. The output is the one
//! `TextEncoder` writes for the same data, byte for byte (see the tests), and
//! [`Collector`] is implemented so code that reads a family the prometheus way still
//! works.
//!
//! Locking: recorders take a family's read lock to find a series (a write lock only to
//! add one); a scrape holds the read lock just long enough to clone an `Arc` of the
//! sorted series list, then formats without any lock.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::io::Write as _;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto;

/// Counter of whole numbers (`IntCounterVec`'s children).
pub type IntCounterFamily<const N: usize> = Family<IntCount, N>;
/// Counter of amounts (`CounterVec`'s children).
pub type CounterFamily<const N: usize> = Family<FloatCount, N>;
/// Histogram (`HistogramVec`'s children).
pub type HistogramFamily<const N: usize> = Family<Histo, N>;

/// The value kept per series.
pub trait Value: Send + Sync + 'static {
    const TYPE: proto::MetricType;
    fn new(bounds: &'static [f64]) -> Self;
    /// Appends this series' sample lines.
    fn render(&self, text: &FamilyText, labels: &[u8], out: &mut Vec<u8>);
    /// Fills the value part of `metric` (what the prometheus crate's child would).
    fn proto(&self, metric: &mut proto::Metric);
}

/// What every sample line of a family starts with, rendered once.
pub struct FamilyText {
    name: String,
    /// `le="…"` of each bucket bound, then `le="+Inf"` (histograms only).
    le: Vec<String>,
}

/// One labelled family. Cloning shares it (like the prometheus crate's vectors).
pub struct Family<V: Value, const N: usize> {
    inner: Arc<Inner<V, N>>,
}

impl<V: Value, const N: usize> Clone for Family<V, N> {
    fn clone(&self) -> Self {
        Family {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<V: Value, const N: usize> {
    desc: Desc,
    help: String,
    text: FamilyText,
    /// `# HELP` and `# TYPE` lines.
    header: Vec<u8>,
    /// Label names in name order: the order of the exposition's label pairs.
    sorted_names: [&'static str; N],
    /// `rank[i]`: the place of the i-th declared label in name order.
    rank: [usize; N],
    bounds: &'static [f64],
    /// foldhash, randomly seeded per process (label values are the provider's words):
    /// SipHash showed in the poll path's profile, several lookups per answer.
    hasher: hashbrown::DefaultHashBuilder,
    series: RwLock<Series<V>>,
}

struct Series<V> {
    /// Series by the hash of their label values (declared order); a hash shared by
    /// different label values keeps each of them.
    by_hash: HashMap<u64, Vec<Arc<Child<V>>>, BuildHasherDefault<KeyIsHash>>,
    /// Every series sorted by label values in name order (the order `gather()` sorts
    /// into); shared with scrapes in progress, copied only if one is.
    sorted: Arc<Vec<Arc<Child<V>>>>,
}

/// One series: its label set, rendered, and its value.
pub struct Child<V> {
    /// Label values in label-name order (the sort key).
    values: Box<[Box<str>]>,
    /// `a="x",b="y"`: escaped, in label-name order, without braces.
    labels: Box<[u8]>,
    value: V,
}

impl<V> Deref for Child<V> {
    type Target = V;
    fn deref(&self) -> &V {
        &self.value
    }
}

/// The keys of `Series::by_hash` are hashes already.
#[derive(Default)]
struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl<V: Value, const N: usize> Family<V, N> {
    /// A family; names, labels and bounds are constants of the metrics module, so an
    /// invalid definition is a programming error that every test building `Metrics`
    /// catches, never something input can cause.
    pub fn with_bounds(
        name: &str,
        help: &str,
        bounds: &'static [f64],
        labels: [&'static str; N],
    ) -> Self {
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]) && bounds.iter().all(|b| b.is_finite()),
            "{name}: bucket bounds must be finite and increasing"
        );
        let desc = Desc::new(
            name.to_string(),
            help.to_string(),
            labels.iter().map(|l| l.to_string()).collect(),
            HashMap::new(),
        )
        .expect("valid metric definition");
        let mut sorted_names = labels;
        sorted_names.sort_unstable();
        let rank = labels.map(|l| sorted_names.iter().position(|s| *s == l).unwrap_or(0));
        let type_name = match V::TYPE {
            proto::MetricType::COUNTER => "counter",
            proto::MetricType::GAUGE => "gauge",
            proto::MetricType::HISTOGRAM => "histogram",
            proto::MetricType::SUMMARY => "summary",
            proto::MetricType::UNTYPED => "untyped",
        };
        let mut header = Vec::new();
        if !help.is_empty() {
            header.extend_from_slice(b"# HELP ");
            header.extend_from_slice(name.as_bytes());
            header.push(b' ');
            escape_into(help, false, &mut header);
            header.push(b'\n');
        }
        header.extend_from_slice(format!("# TYPE {name} {type_name}\n").as_bytes());
        let mut le = Vec::new();
        if V::TYPE == proto::MetricType::HISTOGRAM {
            // The bound as the prometheus crate writes it (`f64`'s Display).
            le = bounds.iter().map(|b| format!("le=\"{b}\"")).collect();
            le.push("le=\"+Inf\"".to_string());
        }
        Family {
            inner: Arc::new(Inner {
                desc,
                help: help.to_string(),
                text: FamilyText {
                    name: name.to_string(),
                    le,
                },
                header,
                sorted_names,
                rank,
                bounds,
                hasher: hashbrown::DefaultHashBuilder::default(),
                series: RwLock::new(Series {
                    by_hash: HashMap::default(),
                    sorted: Arc::new(Vec::new()),
                }),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.text.name
    }

    /// The series with these label values (in the declared label order), created at
    /// its first use.
    pub fn with_label_values(&self, values: &[&str; N]) -> Arc<Child<V>> {
        let inner = &*self.inner;
        let hash = inner.hasher.hash_one(values);
        if let Some(child) = inner
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .find(hash, values, &inner.rank)
        {
            return child;
        }
        let mut series = inner.series.write().unwrap_or_else(PoisonError::into_inner);
        // Another recorder may have added it between the two locks.
        if let Some(child) = series.find(hash, values, &inner.rank) {
            return child;
        }
        let child = Arc::new(inner.child(values));
        series
            .by_hash
            .entry(hash)
            .or_default()
            .push(Arc::clone(&child));
        let sorted = Arc::make_mut(&mut series.sorted);
        let at = sorted.partition_point(|c| c.values < child.values);
        sorted.insert(at, Arc::clone(&child));
        child
    }

    /// Every series, sorted; the lock is held only to clone the list's `Arc`.
    fn snapshot(&self) -> Arc<Vec<Arc<Child<V>>>> {
        let series = self
            .inner
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&series.sorted)
    }

    /// Appends the family's exposition; nothing when it has no series (as `gather()`
    /// leaves out empty families).
    pub fn render(&self, out: &mut Vec<u8>) {
        let series = self.snapshot();
        if series.is_empty() {
            return;
        }
        out.extend_from_slice(&self.inner.header);
        for child in series.iter() {
            child.value.render(&self.inner.text, &child.labels, out);
        }
    }
}

impl<V: Value, const N: usize> Inner<V, N> {
    fn child(&self, values: &[&str; N]) -> Child<V> {
        let mut sorted_values: [&str; N] = [""; N];
        for (value, rank) in values.iter().zip(self.rank) {
            sorted_values[rank] = *value;
        }
        let mut labels = Vec::new();
        for (i, (name, value)) in self.sorted_names.iter().zip(sorted_values).enumerate() {
            if i > 0 {
                labels.push(b',');
            }
            labels.extend_from_slice(name.as_bytes());
            labels.extend_from_slice(b"=\"");
            escape_into(value, true, &mut labels);
            labels.push(b'"');
        }
        Child {
            values: sorted_values.iter().map(|v| Box::from(*v)).collect(),
            labels: labels.into_boxed_slice(),
            value: V::new(self.bounds),
        }
    }
}

impl<V> Series<V> {
    fn find<const N: usize>(
        &self,
        hash: u64,
        values: &[&str; N],
        rank: &[usize; N],
    ) -> Option<Arc<Child<V>>> {
        self.by_hash
            .get(&hash)?
            .iter()
            .find(|c| values.iter().zip(rank).all(|(v, r)| *c.values[*r] == **v))
            .cloned()
    }
}

impl<V: Value, const N: usize> Collector for Family<V, N> {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.inner.desc]
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let inner = &*self.inner;
        let mut family = proto::MetricFamily::default();
        family.set_name(inner.text.name.clone());
        family.set_help(inner.help.clone());
        family.set_field_type(V::TYPE);
        let metrics = self
            .snapshot()
            .iter()
            .map(|child| {
                let pairs = inner
                    .sorted_names
                    .iter()
                    .zip(child.values.iter())
                    .map(|(name, value)| {
                        let mut pair = proto::LabelPair::default();
                        pair.set_name(name.to_string());
                        pair.set_value(value.to_string());
                        pair
                    })
                    .collect();
                let mut metric = proto::Metric::default();
                metric.set_label(pairs);
                child.value.proto(&mut metric);
                metric
            })
            .collect();
        family.set_metric(metrics);
        vec![family]
    }
}

/// `\` → `\\`, newline → `\n` and, in label values, `"` → `\"` (the text format's
/// escapes, as the prometheus crate applies them).
fn escape_into(text: &str, quote: bool, out: &mut Vec<u8>) {
    for b in text.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if quote => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
}

/// `name` + `suffix` + `{labels,extra} ` (braces only when there are labels).
fn open(out: &mut Vec<u8>, name: &str, suffix: &str, labels: &[u8], extra: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    match (labels.is_empty(), extra.is_empty()) {
        (true, true) => {}
        (false, true) => {
            out.push(b'{');
            out.extend_from_slice(labels);
            out.push(b'}');
        }
        (true, false) => {
            out.push(b'{');
            out.extend_from_slice(extra.as_bytes());
            out.push(b'}');
        }
        (false, false) => {
            out.push(b'{');
            out.extend_from_slice(labels);
            out.push(b',');
            out.extend_from_slice(extra.as_bytes());
            out.push(b'}');
        }
    }
    out.push(b' ');
}

/// A count as the prometheus crate writes it: `as f64`, then `f64`'s Display, which
/// is the plain integer up to 2^53 (written here without the formatting machinery).
fn push_count(out: &mut Vec<u8>, n: u64) {
    if n > 1 << 53 {
        push_f64(out, n as f64);
        return;
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// An amount as the prometheus crate writes it (`f64`'s Display).
fn push_f64(out: &mut Vec<u8>, v: f64) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{v}");
}

fn add_f64(cell: &AtomicU64, v: f64) {
    let mut current = cell.load(Ordering::Relaxed);
    loop {
        let new = (f64::from_bits(current) + v).to_bits();
        match cell.compare_exchange_weak(current, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

/// A whole-number counter.
pub struct IntCount(AtomicU64);

impl IntCount {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Value for IntCount {
    const TYPE: proto::MetricType = proto::MetricType::COUNTER;
    fn new(_: &'static [f64]) -> Self {
        IntCount(AtomicU64::new(0))
    }
    fn render(&self, text: &FamilyText, labels: &[u8], out: &mut Vec<u8>) {
        open(out, &text.name, "", labels, "");
        push_count(out, self.get());
        out.push(b'\n');
    }
    fn proto(&self, metric: &mut proto::Metric) {
        let mut counter = proto::Counter::default();
        counter.set_value(self.get() as f64);
        metric.set_counter(counter);
    }
}

/// A counter of amounts (kept as `f64` bits).
pub struct FloatCount(AtomicU64);

impl FloatCount {
    pub fn inc_by(&self, v: f64) {
        debug_assert!(v >= 0.0, "counters only grow");
        add_f64(&self.0, v);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl Value for FloatCount {
    const TYPE: proto::MetricType = proto::MetricType::COUNTER;
    fn new(_: &'static [f64]) -> Self {
        FloatCount(AtomicU64::new(0.0f64.to_bits()))
    }
    fn render(&self, text: &FamilyText, labels: &[u8], out: &mut Vec<u8>) {
        open(out, &text.name, "", labels, "");
        push_f64(out, self.get());
        out.push(b'\n');
    }
    fn proto(&self, metric: &mut proto::Metric) {
        let mut counter = proto::Counter::default();
        counter.set_value(self.get());
        metric.set_counter(counter);
    }
}

/// A histogram: a count per bucket (not cumulative; the last one above every bound)
/// and the sum. The count is the buckets' total, so `+Inf` and `_count` always agree.
pub struct Histo {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histo {
    pub fn observe(&self, v: f64) {
        // `le`: a value equal to a bound falls in that bound's bucket; NaN in none
        // but `+Inf`, as with the prometheus crate.
        let at = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(bucket) = self.buckets.get(at) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        add_f64(&self.sum, v);
    }
    pub fn get_sample_count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
    pub fn get_sample_sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }
}

impl Value for Histo {
    const TYPE: proto::MetricType = proto::MetricType::HISTOGRAM;
    fn new(bounds: &'static [f64]) -> Self {
        Histo {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0.0f64.to_bits()),
        }
    }
    fn render(&self, text: &FamilyText, labels: &[u8], out: &mut Vec<u8>) {
        let mut cumulative = 0u64;
        for (bucket, le) in self.buckets.iter().zip(&text.le) {
            cumulative += bucket.load(Ordering::Relaxed);
            open(out, &text.name, "_bucket", labels, le);
            push_count(out, cumulative);
            out.push(b'\n');
        }
        open(out, &text.name, "_sum", labels, "");
        push_f64(out, self.get_sample_sum());
        out.push(b'\n');
        open(out, &text.name, "_count", labels, "");
        push_count(out, cumulative);
        out.push(b'\n');
    }
    fn proto(&self, metric: &mut proto::Metric) {
        let mut cumulative = 0u64;
        let buckets = self
            .bounds
            .iter()
            .zip(self.buckets.iter())
            .map(|(bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                let mut bucket = proto::Bucket::default();
                bucket.set_upper_bound(*bound);
                bucket.set_cumulative_count(cumulative);
                bucket
            })
            .collect();
        let above = self.buckets.last().map_or(0, |b| b.load(Ordering::Relaxed));
        let mut histogram = proto::Histogram::default();
        histogram.set_bucket(buckets);
        histogram.set_sample_count(cumulative + above);
        histogram.set_sample_sum(self.get_sample_sum());
        metric.set_histogram(histogram);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts};

    /// Label values that need escaping, share prefixes, are empty or not ASCII: the
    /// cases where an own renderer could drift from the prometheus crate's.
    const VALUES: &[&str] = &[
        "IN",
        "I",
        "INx",
        "",
        "a\"b",
        "back\\slash",
        "new\nline",
        "ü",
        "z",
        "IN,x=\"y\"",
    ];

    /// A deterministic stream of picks (no test depends on a random seed).
    struct Picks(u64);

    impl Picks {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) % n as u64) as usize
        }
        /// Three label values; the first two end in `~`, found nowhere else, because
        /// the prometheus crate's vectors key a series by its values concatenated
        /// (`["a", "bc"]` and `["ab", "c"]` share one series there) and the
        /// comparison needs label sets it keeps apart.
        fn labels(&mut self) -> [String; 3] {
            [
                format!("{}~", VALUES[self.next(VALUES.len())]),
                format!("{}~", VALUES[self.next(VALUES.len())]),
                VALUES[self.next(VALUES.len())].to_string(),
            ]
        }
    }

    fn rendered<V: Value, const N: usize>(family: &Family<V, N>) -> String {
        let mut out = Vec::new();
        family.render(&mut out);
        String::from_utf8(out).unwrap()
    }

    // Declared label order differs from name order, as in several real families.
    const LABELS: [&str; 3] = ["zone", "app_id", "mcc"];
    const HELP: &str = "help with \\ and \n and \"quotes\"";

    /// Sorts a family's metrics the way `Registry::gather()` does (by label values),
    /// so a family collected alone compares with what a scrape would show.
    fn gathered(collector: impl Collector + Clone + 'static) -> String {
        let registry = prometheus::Registry::new();
        registry.register(Box::new(collector)).unwrap();
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn counters_render_as_the_text_encoder_writes_them() {
        let ours = IntCounterFamily::with_bounds("c_total", HELP, &[], LABELS);
        let theirs = IntCounterVec::new(Opts::new("c_total", HELP), &LABELS).unwrap();
        let mut picks = Picks(7);
        for i in 0..400u64 {
            let labels = picks.labels();
            let labels = [&*labels[0], &*labels[1], &*labels[2]];
            let by = [0, 1, 3, 1 << 40][picks.next(4)];
            ours.with_label_values(&labels).inc_by(by);
            theirs.with_label_values(&labels).inc_by(by);
            if i % 3 == 0 {
                ours.with_label_values(&labels).inc();
                theirs.with_label_values(&labels).inc();
            }
        }
        let want = gathered(theirs.clone());
        assert!(want.lines().count() > 300, "{want}");
        assert_eq!(rendered(&ours), want);
        // What reads the family the prometheus way sees the same.
        assert_eq!(gathered(ours.clone()), want);
        assert_eq!(
            ours.with_label_values(&["IN~", "I~", ""]).get(),
            theirs.with_label_values(&["IN~", "I~", ""]).get()
        );
    }

    #[test]
    fn amounts_render_as_the_text_encoder_writes_them() {
        let ours = CounterFamily::with_bounds("usd_total", HELP, &[], LABELS);
        let theirs = CounterVec::new(Opts::new("usd_total", HELP), &LABELS).unwrap();
        let amounts = [0.1, 0.2, 0.0, 1e-7, 1e21, 0.25, 3.0, 1e308, 123.456];
        let mut picks = Picks(11);
        for _ in 0..300 {
            let labels = picks.labels();
            let labels = [&*labels[0], &*labels[1], &*labels[2]];
            let amount = amounts[picks.next(amounts.len())];
            ours.with_label_values(&labels).inc_by(amount);
            theirs.with_label_values(&labels).inc_by(amount);
        }
        let want = gathered(theirs.clone());
        assert!(want.contains("e+") || want.contains("inf") || want.len() > 1000);
        assert_eq!(rendered(&ours), want);
        assert_eq!(gathered(ours.clone()), want);
    }

    #[test]
    fn histograms_render_as_the_text_encoder_writes_them() {
        const BOUNDS: &[f64] = &[0.025, 0.5, 1.0, 2.5, 10.0, 600.0];
        let ours = HistogramFamily::with_bounds("latency_seconds", HELP, BOUNDS, LABELS);
        let theirs = HistogramVec::new(
            HistogramOpts::new("latency_seconds", HELP).buckets(BOUNDS.to_vec()),
            &LABELS,
        )
        .unwrap();
        // On a bound, between bounds, above all, negative, and fractions whose sum
        // shows float rounding.
        let observations = [
            0.025, 0.1, 0.5, 0.7, 1.0, 2.5, 9.99, 600.0, 601.0, 1e9, -1.0, 0.3,
        ];
        let mut picks = Picks(13);
        for _ in 0..500 {
            let labels = picks.labels();
            let labels = [&*labels[0], &*labels[1], &*labels[2]];
            let v = observations[picks.next(observations.len())];
            ours.with_label_values(&labels).observe(v);
            theirs.with_label_values(&labels).observe(v);
        }
        // NaN counts in +Inf only and makes the sum NaN.
        ours.with_label_values(&["n~", "a~", "n"]).observe(f64::NAN);
        theirs
            .with_label_values(&["n~", "a~", "n"])
            .observe(f64::NAN);
        let want = gathered(theirs.clone());
        assert!(
            want.contains(r#"le="+Inf""#) && want.contains("NaN"),
            "{want}"
        );
        assert_eq!(rendered(&ours), want);
        assert_eq!(gathered(ours.clone()), want);
        let (a, b) = (
            ours.with_label_values(&["IN~", "I~", "z"]),
            theirs.with_label_values(&["IN~", "I~", "z"]),
        );
        assert_eq!(a.get_sample_count(), b.get_sample_count());
        assert_eq!(a.get_sample_sum(), b.get_sample_sum());
    }

    #[test]
    fn label_sets_that_concatenate_alike_are_separate_series() {
        // The prometheus crate's vectors merge these into the first one's series.
        let family = IntCounterFamily::with_bounds("c_total", "help", &[], ["country", "mcc"]);
        family.with_label_values(&["IN", "404"]).inc();
        family.with_label_values(&["IN4", "04"]).inc_by(2);
        family.with_label_values(&["", "IN404"]).inc_by(3);
        assert_eq!(family.with_label_values(&["IN", "404"]).get(), 1);
        assert_eq!(
            rendered(&family),
            "# HELP c_total help\n# TYPE c_total counter\n\
             c_total{country=\"\",mcc=\"IN404\"} 3\n\
             c_total{country=\"IN\",mcc=\"404\"} 1\n\
             c_total{country=\"IN4\",mcc=\"04\"} 2\n"
        );
    }

    #[test]
    fn an_empty_family_renders_nothing_like_gather_leaves_it_out() {
        let ours = IntCounterFamily::with_bounds("c_total", "help", &[], ["a"]);
        assert_eq!(rendered(&ours), "");
        let theirs = IntCounterVec::new(Opts::new("c_total", "help"), &["a"]).unwrap();
        assert_eq!(gathered(theirs), "");
        assert!(ours.collect()[0].get_metric().is_empty());
    }

    #[test]
    fn concurrent_recorders_lose_no_increment_and_create_each_series_once() {
        let family = IntCounterFamily::with_bounds("c_total", "help", &[], ["a", "b"]);
        let names: Vec<String> = (0..50).map(|i| format!("s{i}")).collect();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for round in 0..20 {
                        for name in &names {
                            family.with_label_values(&[name, "x"]).inc();
                            if round % 5 == 0 {
                                // Scrapes in between see a consistent list.
                                let mut out = Vec::new();
                                family.render(&mut out);
                            }
                        }
                    }
                });
            }
        });
        let text = rendered(&family);
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 50);
        for name in &names {
            assert_eq!(family.with_label_values(&[name, "x"]).get(), 80, "{text}");
        }
    }
}

//! The Prometheus metrics (names, types and labels are a contract: dashboards and
//! alerts depend on them letter for letter).

use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

mod family;

pub use family::{Child, CounterFamily, Family, HistogramFamily, IntCounterFamily};

use crate::build_info;
use crate::outcome::{AttemptResult, Channel, Fact, OrderSamples, Outcome, VALIDATED_FIELDS};

/// Delivery and verification latency buckets: 0.5 s to 10 min.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
];
const API_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const POLL_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0, 89.0];
/// Lateness of record queries against their plan: healthy is well under a second.
const POLL_DELAY_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// Spool line results (label `result`).
pub const SPOOL_RESULTS: [&str; 3] = ["accepted", "duplicate", "rejected"];

/// Labelled counters and histograms (the families that grow to thousands of series)
/// are [`Family`]s that render themselves; the prometheus crate's registry keeps the
/// scalars, the gauges and the process collector, and its output is merged in.
pub struct Metrics {
    registry: Registry,
    /// The [`Family`]s, sorted by name (clones sharing the fields' series).
    families: Vec<Box<dyn RenderFamily>>,
    /// Length of the last exposition: the next one's buffer starts that large.
    last_len: AtomicUsize,
    pub orders: IntCounterFamily<4>,
    pub fallbacks: IntCounterFamily<4>,
    pub attempts: IntCounterFamily<5>,
    /// `otp_operator_orders_total{app_id,country,operator,outcome}`.
    pub operator_orders: IntCounterFamily<4>,
    /// `otp_operator_attempts_total{country,mcc,mnc,operator,channel,result}`.
    pub operator_attempts: IntCounterFamily<6>,
    /// `otp_operator_delivery_latency_seconds{country,operator}`.
    pub operator_delivery_latency: HistogramFamily<2>,
    /// `otp_operator_cost_usd_total{app_id,country,operator}`.
    pub operator_cost_usd: CounterFamily<3>,
    pub delivery_latency: HistogramFamily<2>,
    pub verification_latency: HistogramFamily<3>,
    pub cost_usd: CounterFamily<4>,
    pub sms_segments: IntCounterFamily<3>,
    pub orders_pending: IntGaugeVec,
    pub oldest_pending_age: Gauge,
    pub spool_lines: IntCounterFamily<1>,
    pub spool_files_quarantined: IntCounterFamily<1>,
    pub api_requests: IntCounterFamily<1>,
    pub api_duration: Histogram,
    pub api_up: IntGauge,
    pub polls_per_order: Histogram,
    pub build_info: IntGaugeVec,
    pub store_errors: IntCounterFamily<1>,
    pub store_healthy: IntGauge,
    pub invalid_values: IntCounterFamily<1>,
    pub attempts_dropped: IntCounter,
    pub attempt_results: IntCounterFamily<5>,
    pub verifications: IntCounterFamily<3>,
    pub orders_sent: IntCounterFamily<3>,
    pub orders_overdue: IntCounterFamily<4>,
    /// `otp_exporter_poll_delay_seconds{purpose}`: observed when a query is handed to
    /// a worker.
    pub poll_delay: HistogramFamily<1>,
    /// `otp_account_balance_usd{kind}`: a kind's series appears with its first good
    /// reading (see `account`).
    pub account_balance: GaugeVec,
    /// No labels: the series is made when the balance poller starts, so that it is
    /// absent (not stale) with the poller off.
    pub account_last_success: GaugeVec,
    /// No labels, made like `account_last_success`.
    pub account_locked: IntGaugeVec,
    /// `otp_exporter_balance_requests_total{status}`: balance queries, apart from the
    /// record queries of `otp_exporter_api_requests_total`.
    pub balance_requests: IntCounterFamily<1>,
}

/// Registers metrics: scalars and gauges in the prometheus registry, labelled counters
/// and histograms as [`Family`]s. Names and label sets are constants of this file, so
/// a failure is a programming error caught by every test that builds `Metrics`, never
/// something input can cause.
struct Registrar {
    registry: Registry,
    families: Vec<Box<dyn RenderFamily>>,
}

/// A [`Family`] of any kind, as the exposition sees it.
trait RenderFamily: Send + Sync {
    fn name(&self) -> &str;
    fn render(&self, out: &mut Vec<u8>);
    #[cfg(test)]
    fn collector(&self) -> Box<dyn prometheus::core::Collector>;
}

impl<V: family::Value, const N: usize> RenderFamily for Family<V, N> {
    fn name(&self) -> &str {
        Family::name(self)
    }
    fn render(&self, out: &mut Vec<u8>) {
        Family::render(self, out)
    }
    #[cfg(test)]
    fn collector(&self) -> Box<dyn prometheus::core::Collector> {
        Box::new(self.clone())
    }
}

impl Registrar {
    fn add<M: prometheus::core::Collector + Clone + 'static>(
        &self,
        metric: prometheus::Result<M>,
    ) -> M {
        let metric = metric.expect("valid metric definition");
        self.registry
            .register(Box::new(metric.clone()))
            .expect("unique metric name");
        metric
    }

    fn family<V: family::Value, const N: usize>(&mut self, family: Family<V, N>) -> Family<V, N> {
        self.families.push(Box::new(family.clone()));
        family
    }

    fn counter<const N: usize>(
        &mut self,
        name: &str,
        help: &str,
        labels: [&'static str; N],
    ) -> IntCounterFamily<N> {
        self.family(Family::with_bounds(name, help, &[], labels))
    }

    fn amount<const N: usize>(
        &mut self,
        name: &str,
        help: &str,
        labels: [&'static str; N],
    ) -> CounterFamily<N> {
        self.family(Family::with_bounds(name, help, &[], labels))
    }

    fn histogram<const N: usize>(
        &mut self,
        name: &str,
        help: &str,
        buckets: &'static [f64],
        labels: [&'static str; N],
    ) -> HistogramFamily<N> {
        self.family(Family::with_bounds(name, help, buckets, labels))
    }
}

/// The standard `process_*` metrics of Prometheus exporters (CPU seconds, resident and
/// virtual memory, open and maximum descriptors, start time, threads). They are read
/// from /proc/self at each scrape: `stat`, `limits` and a listing of `fd`, a few
/// microseconds (and one transient descriptor) per scrape.
#[cfg(target_os = "linux")]
fn register_process_collector(registry: &Registry) {
    let collector = prometheus::process_collector::ProcessCollector::for_self();
    registry
        .register(Box::new(collector))
        .expect("process_* names are unique in this registry");
}

fn histogram_opts(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(buckets.to_vec())
}

impl Metrics {
    /// Registers every metric; `app_ids` pre-creates the per-app pending gauges.
    pub fn new(app_ids: &[String]) -> Metrics {
        let mut r = Registrar {
            registry: Registry::new(),
            families: Vec::new(),
        };
        let mut m = Metrics {
            orders: r.counter("otp_orders_total", "Finalized OTP orders by outcome; channel is the verification's channel, else the last attempt's, else none.",
                ["app_id", "channel", "country", "outcome"]),
            fallbacks: r.counter("otp_channel_fallbacks_total", "Channel switches inside finalized orders (attempts in submit order).",
                ["app_id", "from", "to", "country"]),
            attempts: r.counter("otp_delivery_attempts_total", "Delivery attempts of finalized orders by result.",
                ["app_id", "channel", "country", "mcc", "result"]),
            operator_orders: r.counter("otp_operator_orders_total", "Finalized OTP orders by outcome and the receiver's operator: the network (MCC, MNC) of the order's first attempt that reports both, named by the MCC/MNC table (normalised); unknown when no attempt reports both or the table does not name that network.",
                ["app_id", "country", "operator", "outcome"]),
            operator_attempts: r.counter("otp_operator_attempts_total", "Delivery attempts of finalized orders by result and operator (the attempts of otp_delivery_attempts_total); mnc as the MCC/MNC table writes it and operator its network name (normalised), both unknown when the attempt has no MNC or the table lacks the network; a call takes its order's SMS/SNA network.",
                ["country", "mcc", "mnc", "operator", "channel", "result"]),
            operator_delivery_latency: r.histogram("otp_operator_delivery_latency_seconds", "Delivery latency of delivered attempts by operator (the observations of otp_delivery_latency_seconds); operator as in otp_operator_attempts_total: the attempt's network named by the MCC/MNC table (normalised), unknown without an MNC or a named network; a call takes its order's SMS/SNA network.",
                LATENCY_BUCKETS, ["country", "operator"]),
            operator_cost_usd: r.amount("otp_operator_cost_usd_total", "Money spent on finalized orders in USD (SMS pay plus call cost) by operator: the money of otp_cost_usd_total, each attempt's under its operator as in otp_operator_attempts_total; a call takes its order's SMS/SNA network.",
                ["app_id", "country", "operator"]),
            delivery_latency: r.histogram("otp_delivery_latency_seconds", "Delivery latency of delivered attempts (SMS submit to DLR, call submit to answer, SNA request to result).",
                LATENCY_BUCKETS, ["channel", "country"]),
            verification_latency: r.histogram("otp_verification_latency_seconds", "Time from the first attempt's submit to verification, for verified orders.",
                LATENCY_BUCKETS, ["app_id", "channel", "country"]),
            cost_usd: r.amount("otp_cost_usd_total", "Money spent on finalized orders in USD (SMS pay plus call cost).",
                ["app_id", "channel", "country", "mcc"]),
            sms_segments: r.counter("otp_sms_segments_total", "Billed SMS segments of finalized orders.",
                ["app_id", "country", "mcc"]),
            orders_pending: r.add(IntGaugeVec::new(Opts::new("otp_exporter_orders_pending", "Orders being tracked."),
                &["app_id"])),
            oldest_pending_age: r.add(Gauge::with_opts(Opts::new("otp_exporter_oldest_pending_age_seconds", "Age of the oldest pending order (0 when none)."))),
            spool_lines: r.counter("otp_exporter_spool_lines_total", "Spool lines read, by result.",
                ["result"]),
            spool_files_quarantined: r.counter("otp_exporter_spool_files_quarantined_total", "Spool files moved to quarantine whole, by reason.",
                ["reason"]),
            api_requests: r.counter("otp_exporter_api_requests_total", "Record queries by the API's status, or http_NNN, timeout, connect_error, invalid_response.",
                ["status"]),
            api_duration: r.add(Histogram::with_opts(histogram_opts("otp_exporter_api_request_duration_seconds", "Record query latency.", API_BUCKETS))),
            api_up: r.add(IntGauge::with_opts(Opts::new("otp_exporter_api_up", "1 while the API accepts our credentials and answers."))),
            polls_per_order: r.add(Histogram::with_opts(histogram_opts("otp_exporter_polls_per_order", "Record queries spent per finalized order.", POLL_BUCKETS))),
            build_info: r.add(IntGaugeVec::new(Opts::new("otp_exporter_build_info", "Build information (version, git revision, rustc version); always 1."),
                &["version", "revision", "rustc"])),
            store_errors: r.counter("otp_exporter_store_errors_total", "Failed writes to the state database, by operation (admit, commit, purge, reopen).",
                ["op"]),
            store_healthy: r.add(IntGauge::with_opts(Opts::new("otp_exporter_store_healthy", "1 while the state database takes writes; 0 after a failed write until a write succeeds again (not ready, spool files wait)."))),
            invalid_values: r.counter("otp_exporter_invalid_values_total", "Provider values of finalized orders dropped as unbelievable (negative, not finite or above tracking.max_cost_per_attempt_usd amounts; times unparseable, before the order's issue or in the future; chargeCnt above 255), by wire field.",
                ["field"]),
            attempts_dropped: r.add(IntCounter::new("otp_exporter_attempts_dropped_total", "Attempts of finalized orders beyond tracking.max_attempts_per_order, not counted in the otp_* metrics.")),
            attempt_results: r.counter("otp_attempt_results_total", "Delivery results of attempts (delivered, failed), counted when a poll first shows them, before the order is final.",
                ["app_id", "channel", "country", "mcc", "result"]),
            verifications: r.counter("otp_verifications_total", "Orders counted when a poll first shows them verified, before they are final.",
                ["app_id", "channel", "country"]),
            orders_sent: r.counter("otp_orders_sent_total", "Orders counted when a poll first shows an attempt; channel is the first attempt's.",
                ["app_id", "channel", "country"]),
            orders_overdue: r.counter("otp_orders_overdue_total", "Orders later than expected for their country and first channel (learned 90th percentile): the first attempt's delivery report (stage delivery) or the verification (stage verification); each once per order.",
                ["app_id", "channel", "country", "stage"]),
            poll_delay: r.histogram("otp_exporter_poll_delay_seconds", "How late each record query went out against the time it was planned for, by why it was planned (decisive, expected, routine).",
                POLL_DELAY_BUCKETS, ["purpose"]),
            account_balance: r.add(GaugeVec::new(Opts::new("otp_account_balance_usd", "The ITNIO account's money in USD by kind (balance, gift, credit) as last read; a kind appears with its first good reading and keeps its last good value when an answer lacks it."),
                &["kind"])),
            account_last_success: r.add(GaugeVec::new(Opts::new("otp_account_balance_last_success_timestamp_seconds", "Unix time of the last balance query whose balance could be read; 0 until the first (only while account.balance_interval polls)."),
                &[])),
            account_locked: r.add(IntGaugeVec::new(Opts::new("otp_account_locked", "1 while the balance query answers -13 (user locked): sends fail until ITNIO unlocks the account."),
                &[])),
            balance_requests: r.counter("otp_exporter_balance_requests_total", "Balance queries by the API's status, or http_NNN, timeout, connect_error, invalid_response (record queries are otp_exporter_api_requests_total).",
                ["status"]),
            families: Vec::new(),
            last_len: AtomicUsize::new(0),
            registry: r.registry,
        };
        m.families = r.families;
        m.families.sort_by(|a, b| a.name().cmp(b.name()));
        #[cfg(target_os = "linux")]
        register_process_collector(&m.registry);
        m.preset(app_ids);
        m
    }

    /// Series that exist before anything happens, so that dashboards and alerts see
    /// zeros instead of gaps.
    fn preset(&self, app_ids: &[String]) {
        self.build_info
            .with_label_values(&[
                build_info::VERSION,
                build_info::REVISION,
                build_info::RUSTC_VERSION,
            ])
            .set(1);
        for result in SPOOL_RESULTS {
            self.spool_lines.with_label_values(&[result]);
        }
        for field in VALIDATED_FIELDS {
            self.invalid_values.with_label_values(&[field]);
        }
        for app in app_ids {
            self.orders_pending.with_label_values(&[app.as_str()]);
        }
        // Unknown until the first answer; 1 is optimistic and 0 would page on start.
        self.api_up.set(1);
        for op in crate::store::StoreOp::ALL {
            self.store_errors.with_label_values(&[op.as_str()]);
        }
        // The store opened, or the daemon would not be running.
        self.store_healthy.set(1);
        for purpose in crate::outcome::PollPurpose::ALL {
            self.poll_delay.with_label_values(&[purpose.as_str()]);
        }
    }

    /// Adds a finalized order's samples, all at once.
    pub fn record_order(&self, app_id: &str, samples: &OrderSamples, polls: u32) {
        let outcome = samples.outcome.as_str();
        self.orders
            .with_label_values(&[app_id, samples.channel, samples.country, outcome])
            .inc();
        self.operator_orders
            .with_label_values(&[app_id, samples.country, samples.operator, outcome])
            .inc();
        for (from, to) in &samples.fallbacks {
            self.fallbacks
                .with_label_values(&[app_id, from.as_str(), to.as_str(), samples.country])
                .inc();
        }
        for a in &samples.attempts {
            let channel = a.channel.as_str();
            self.attempts
                .with_label_values(&[
                    app_id,
                    channel,
                    a.country,
                    a.mcc.as_str(),
                    a.result.as_str(),
                ])
                .inc();
            self.operator_attempts
                .with_label_values(&[
                    a.country,
                    a.mcc.as_str(),
                    a.mnc,
                    a.operator,
                    channel,
                    a.result.as_str(),
                ])
                .inc();
            if let (AttemptResult::Delivered, Some(latency)) = (a.result, a.latency_seconds) {
                self.delivery_latency
                    .with_label_values(&[channel, a.country])
                    .observe(latency);
                self.operator_delivery_latency
                    .with_label_values(&[a.country, a.operator])
                    .observe(latency);
            }
            // SNA carries no price; SMS and calls always get a (possibly zero) cost series.
            if a.channel != Channel::Sna {
                self.cost_usd
                    .with_label_values(&[app_id, channel, a.country, a.mcc.as_str()])
                    .inc_by(a.cost_usd);
                self.operator_cost_usd
                    .with_label_values(&[app_id, a.country, a.operator])
                    .inc_by(a.cost_usd);
            }
            if a.channel == Channel::Sms {
                self.sms_segments
                    .with_label_values(&[app_id, a.country, a.mcc.as_str()])
                    .inc_by(u64::from(a.segments));
            }
        }
        if let (Outcome::Verified, Some(latency)) =
            (samples.outcome, samples.verification_latency_seconds)
        {
            self.verification_latency
                .with_label_values(&[app_id, samples.channel, samples.country])
                .observe(latency);
        }
        self.polls_per_order.observe(f64::from(polls));
        for (field, count) in samples.invalid_values.iter() {
            self.invalid_values
                .with_label_values(&[field])
                .inc_by(count);
        }
        if samples.attempts_dropped > 0 {
            self.attempts_dropped
                .inc_by(samples.attempts_dropped as u64);
        }
    }

    /// Counts a fact a poll revealed first (the early signals).
    pub fn record_fact(&self, app_id: &str, fact: &Fact) {
        match fact {
            Fact::Sent { channel, country } => self
                .orders_sent
                .with_label_values(&[app_id, channel.as_str(), country])
                .inc(),
            Fact::Result {
                channel,
                country,
                mcc,
                result,
                ..
            } => self
                .attempt_results
                .with_label_values(&[app_id, channel.as_str(), country, mcc, result.as_str()])
                .inc(),
            Fact::Verified {
                channel, country, ..
            } => self
                .verifications
                .with_label_values(&[app_id, channel, country])
                .inc(),
            Fact::Overdue {
                channel,
                country,
                stage,
            } => self
                .orders_overdue
                .with_label_values(&[app_id, channel.as_str(), country, stage.as_str()])
                .inc(),
        }
    }

    /// The text exposition format: the families in name order, as `gather()` sorts
    /// them, each family's series sorted by label values.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.last_len.load(Ordering::Relaxed) + 4096);
        // Scalars, gauges and process_*: a few dozen series.
        let gathered = self.registry.gather();
        let mut gathered = gathered.iter().peekable();
        let encoder = TextEncoder::new();
        for family in &self.families {
            while let Some(mf) = gathered.next_if(|mf| mf.name() < family.name()) {
                // Encoding into a Vec only fails on invalid metric families, which we
                // never build.
                let _ = encoder.encode(std::slice::from_ref(mf), &mut out);
            }
            family.render(&mut out);
        }
        for mf in gathered {
            let _ = encoder.encode(std::slice::from_ref(mf), &mut out);
        }
        self.last_len.store(out.len(), Ordering::Relaxed);
        out
    }

    /// What the prometheus crate's `TextEncoder` writes for the same data, through a
    /// registry holding every family: the reference `render` must equal.
    #[cfg(test)]
    fn render_by_text_encoder(&self) -> Vec<u8> {
        let all = Registry::new();
        for family in &self.families {
            all.register(family.collector())
                .expect("family names are unique");
        }
        let mut families = all.gather();
        families.extend(self.registry.gather());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&families, &mut out);
        out
    }
}

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build_info;
    use crate::outcome::AttemptSample;

    #[test]
    fn an_order_emits_every_family_with_contract_labels() {
        let m = Metrics::new(&["app".to_string()]);
        let samples = OrderSamples {
            outcome: Outcome::Verified,
            channel: "call",
            country: "IN",
            network: Some((404, 45)),
            operator: "bharti_airtel_limited_karnataka",
            operator_name: Some("Bharti Airtel Limited (Karnataka) (India)"),
            attempts: vec![
                AttemptSample {
                    channel: Channel::Sms,
                    country: "IN",
                    mcc: "404".into(),
                    mnc: "045",
                    operator: "bharti_airtel_limited_karnataka",
                    operator_name: Some("Bharti Airtel Limited (Karnataka) (India)"),
                    result: AttemptResult::Failed,
                    latency_seconds: None,
                    cost_usd: 0.25,
                    segments: 2,
                },
                AttemptSample {
                    channel: Channel::Call,
                    country: "IN",
                    mcc: "404".into(),
                    mnc: "unknown",
                    operator: "unknown",
                    operator_name: None,
                    result: AttemptResult::Delivered,
                    latency_seconds: Some(7.0),
                    cost_usd: 0.5,
                    segments: 0,
                },
            ],
            fallbacks: vec![(Channel::Sms, Channel::Call)],
            verification_latency_seconds: Some(30.0),
            attempts_dropped: 0,
            invalid_values: Default::default(),
        };
        m.record_order("app", &samples, 4);
        let text = String::from_utf8(m.render()).unwrap();
        for line in [
            r#"otp_orders_total{app_id="app",channel="call",country="IN",outcome="verified"} 1"#,
            r#"otp_channel_fallbacks_total{app_id="app",country="IN",from="sms",to="call"} 1"#,
            r#"otp_delivery_attempts_total{app_id="app",channel="sms",country="IN",mcc="404",result="failed"} 1"#,
            r#"otp_delivery_attempts_total{app_id="app",channel="call",country="IN",mcc="404",result="delivered"} 1"#,
            r#"otp_delivery_latency_seconds_count{channel="call",country="IN"} 1"#,
            r#"otp_verification_latency_seconds_count{app_id="app",channel="call",country="IN"} 1"#,
            r#"otp_cost_usd_total{app_id="app",channel="sms",country="IN",mcc="404"} 0.25"#,
            r#"otp_cost_usd_total{app_id="app",channel="call",country="IN",mcc="404"} 0.5"#,
            r#"otp_sms_segments_total{app_id="app",country="IN",mcc="404"} 2"#,
            r#"otp_operator_orders_total{app_id="app",country="IN",operator="bharti_airtel_limited_karnataka",outcome="verified"} 1"#,
            r#"otp_operator_attempts_total{channel="sms",country="IN",mcc="404",mnc="045",operator="bharti_airtel_limited_karnataka",result="failed"} 1"#,
            r#"otp_operator_attempts_total{channel="call",country="IN",mcc="404",mnc="unknown",operator="unknown",result="delivered"} 1"#,
            r#"otp_operator_delivery_latency_seconds_count{country="IN",operator="unknown"} 1"#,
            r#"otp_operator_delivery_latency_seconds_bucket{country="IN",operator="unknown",le="5"} 0"#,
            r#"otp_operator_delivery_latency_seconds_bucket{country="IN",operator="unknown",le="10"} 1"#,
            r#"otp_operator_cost_usd_total{app_id="app",country="IN",operator="bharti_airtel_limited_karnataka"} 0.25"#,
            r#"otp_operator_cost_usd_total{app_id="app",country="IN",operator="unknown"} 0.5"#,
            "# TYPE otp_operator_delivery_latency_seconds histogram",
            "# TYPE otp_operator_cost_usd_total counter",
            r#"otp_exporter_orders_pending{app_id="app"} 0"#,
            r#"otp_exporter_spool_lines_total{result="rejected"} 0"#,
            r#"otp_exporter_polls_per_order_sum 4"#,
            r#"otp_exporter_store_errors_total{op="commit"} 0"#,
            "otp_exporter_store_healthy 1",
            "# TYPE otp_delivery_latency_seconds histogram",
            "# TYPE otp_exporter_api_up gauge",
            r#"otp_delivery_latency_seconds_bucket{channel="call",country="IN",le="0.5"} 0"#,
            r#"otp_delivery_latency_seconds_bucket{channel="call",country="IN",le="600"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
        // The failed SMS has no latency: its operator has no latency series.
        assert!(
            !text.contains(
                r#"otp_operator_delivery_latency_seconds_count{country="IN",operator="bharti"#
            ),
            "{text}"
        );
    }

    /// The exposition without the `process_*` families, whose values move between
    /// two renders (CPU seconds, memory).
    fn without_process(text: &[u8]) -> String {
        String::from_utf8(text.to_vec())
            .unwrap()
            .lines()
            .filter(|l| !l.contains(" process_") && !l.starts_with("process_"))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn render_writes_what_the_text_encoder_writes_for_the_same_data() {
        let m = Metrics::new(&["app".to_string(), "b\"pp".to_string()]);
        let samples = |country: &'static str, operator: &'static str| OrderSamples {
            outcome: Outcome::Verified,
            channel: "sms",
            country,
            network: Some((404, 45)),
            operator,
            operator_name: None,
            attempts: vec![AttemptSample {
                channel: Channel::Sms,
                country,
                mcc: "404".into(),
                mnc: "045",
                operator,
                operator_name: None,
                result: AttemptResult::Delivered,
                latency_seconds: Some(2.5),
                cost_usd: 0.1,
                segments: 1,
            }],
            fallbacks: vec![(Channel::Sms, Channel::Call)],
            verification_latency_seconds: Some(30.0),
            attempts_dropped: 1,
            invalid_values: Default::default(),
        };
        for (i, country) in ["IN", "ID", "BR", "I"].into_iter().enumerate() {
            for app in ["app", "b\"pp", "z\\z"] {
                for _ in 0..=i {
                    m.record_order(app, &samples(country, "op_a"), 3);
                    m.record_order(app, &samples(country, "unknown"), 1);
                }
            }
        }
        m.api_requests.with_label_values(&["0"]).inc();
        m.poll_delay.with_label_values(&["routine"]).observe(0.7);
        m.api_duration.observe(0.03);
        m.orders_pending.with_label_values(&["app"]).set(5);
        let ours = without_process(&m.render());
        let want = without_process(&m.render_by_text_encoder());
        assert!(ours.contains("otp_operator_cost_usd_total{"), "{ours}");
        assert!(
            ours.contains("otp_exporter_api_request_duration_seconds_bucket"),
            "{ours}"
        );
        assert_eq!(ours, want);
        // The process collector is there too, in its place.
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains("\nprocess_threads "), "{text}");
    }

    #[test]
    fn build_info_names_version_revision_and_rustc() {
        let text = String::from_utf8(Metrics::new(&[]).render()).unwrap();
        let want = format!(
            r#"otp_exporter_build_info{{revision="{}",rustc="{}",version="{}"}} 1"#,
            build_info::REVISION,
            build_info::RUSTC_VERSION,
            build_info::VERSION
        );
        assert!(text.lines().any(|l| l == want), "missing {want}\n{text}");
        // build.rs found real values (the revision may be `unknown` without .git).
        assert!(build_info::RUSTC_VERSION.starts_with("1."), "{text}");
        assert!(!build_info::REVISION.is_empty(), "{text}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_describe_this_process() {
        let text = String::from_utf8(Metrics::new(&[]).render()).unwrap();
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no {name}\n{text}"))
        };
        // The test process itself holds stdin/stdout/stderr at least.
        assert!(value("process_open_fds") >= 3.0, "{text}");
        assert!(
            value("process_max_fds") >= value("process_open_fds"),
            "{text}"
        );
        assert!(
            value("process_resident_memory_bytes") > 1_000_000.0,
            "{text}"
        );
        assert!(value("process_threads") >= 1.0, "{text}");
        assert!(value("process_cpu_seconds_total") >= 0.0, "{text}");
        // Started within the last hour by the wall clock.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 3600.0,
            "{start} vs {now}"
        );
    }
    /// What the counters say after orders whose records are decoded, observed and
    /// finalized like the daemon does.
    fn after_orders(bodies: &[&str]) -> String {
        use crate::api::wire::decode_reply;
        use crate::outcome::{observe, samples, ReadFor, Reading};
        let m = Metrics::new(&["app".to_string()]);
        let reading = Reading {
            zone: chrono::FixedOffset::east_opt(8 * 3600).unwrap(),
            max_attempts: 64,
            max_cost_per_attempt_usd: 10.0,
        };
        // 2022-07-12 13:00 +08:00, read an hour later.
        let order = ReadFor {
            issued_ms: 1_657_602_000_000,
            now_ms: 1_657_605_600_000,
        };
        for body in bodies {
            let record = decode_reply(body.as_bytes()).unwrap().data.unwrap();
            let o = observe(&record, &reading, order);
            m.record_order("app", &samples(Outcome::Unverified, Some(&o)), 1);
        }
        String::from_utf8(m.render()).unwrap()
    }

    #[test]
    fn absurd_amounts_never_make_the_cost_counter_infinite() {
        let body =
            r#"{"status":"0","data":{"sms":[{"status":0,"mcc":404,"mnc":10,"pay":"1e308"}]}}"#;
        let text = after_orders(&[body, body, body]);
        let cost = |text: &str| {
            text.lines()
                .find(|l| l.starts_with("otp_cost_usd_total{"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        assert_eq!(cost(&text), Some(0.0), "{text}");
        assert!(
            text.contains(r#"otp_exporter_invalid_values_total{field="pay"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"otp_exporter_invalid_values_total{field="submitTm"} 0"#),
            "every checked field is exported from the start\n{text}"
        );
        assert!(
            text.contains("otp_exporter_attempts_dropped_total 0"),
            "{text}"
        );
    }

    #[test]
    fn a_record_with_too_many_attempts_counts_only_the_cap() {
        let attempts: Vec<String> = (0..1000)
            .map(|i| {
                format!(
                    r#"{{"status":1,"mcc":{},"mnc":1,"pay":"0.01"}}"#,
                    200 + i % 230
                )
            })
            .collect();
        let body = format!(
            r#"{{"status":"0","data":{{"sms":[{}]}}}}"#,
            attempts.join(",")
        );
        let text = after_orders(&[&body]);
        let attempts_total: f64 = text
            .lines()
            .filter(|l| l.starts_with("otp_delivery_attempts_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(attempts_total, 64.0, "{text}");
        // The operator breakdown counts the same attempts.
        let operator_attempts: f64 = text
            .lines()
            .filter(|l| l.starts_with("otp_operator_attempts_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(operator_attempts, 64.0, "{text}");
        assert!(
            text.contains("otp_exporter_attempts_dropped_total 936"),
            "{text}"
        );
        let series = text
            .lines()
            .filter(|l| l.starts_with("otp_delivery_attempts_total{"))
            .count();
        assert!(series <= 64, "{series} series");
    }

    /// `(labels, value)` of every sample of `name` in `text`.
    fn samples_of<'a>(text: &'a str, name: &str) -> Vec<(&'a str, f64)> {
        text.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(name)?;
                let (labels, value) = rest.rsplit_once(' ')?;
                (labels.is_empty() || labels.starts_with('{'))
                    .then_some((labels, value.parse().ok()?))
            })
            .collect()
    }

    fn total(text: &str, name: &str) -> f64 {
        samples_of(text, name).iter().map(|(_, v)| v).sum()
    }

    #[test]
    fn operator_latency_and_cost_hold_the_same_observations_and_money() {
        // Karnataka's SMS fails, its fallback SMS on 404/10 (a network the table names)
        // is delivered in 4 s, and the call (taking the order's network, 404/45) is paid;
        // then an order on 460/10, a network the table lacks, delivered in 6 s.
        let india = r#"{"status":"0","data":{
            "sms":[
                {"status":1,"mcc":404,"mnc":45,"pay":"0.01","submitTm":"2022-07-12T13:10:00+08:00"},
                {"status":0,"mcc":404,"mnc":10,"pay":"0.02","submitTm":"2022-07-12T13:11:00+08:00","doneTm":"2022-07-12T13:11:04+08:00"}],
            "call":[{"terminationCode":100005,"submitTime":"2022-07-12T13:12:00+08:00","cost":"0.25"}]}}"#;
        let china = r#"{"status":"0","data":{"sms":[
            {"status":0,"mcc":460,"mnc":10,"pay":"0.5","submitTm":"2022-07-12T13:10:00+08:00","doneTm":"2022-07-12T13:10:06+08:00"}]}}"#;
        let text = after_orders(&[india, china]);
        let karnataka = crate::geo::operator(404, 45).expect("404/45 is in the table");
        let delhi = crate::geo::operator(404, 10).expect("404/10 is in the table");
        let cost = samples_of(&text, "otp_operator_cost_usd_total");
        let cost_of = |country: &str, operator: &str| {
            let labels = format!(r#"{{app_id="app",country="{country}",operator="{operator}"}}"#);
            cost.iter().find(|(l, _)| *l == labels).map(|(_, v)| *v)
        };
        // The call's cost goes to the order's network, like its attempt count.
        assert_eq!(cost_of("IN", karnataka.label), Some(0.01 + 0.25), "{text}");
        assert_eq!(cost_of("IN", delhi.label), Some(0.02), "{text}");
        assert_eq!(cost_of("CN", "unknown"), Some(0.5), "{text}");
        assert_eq!(cost.len(), 3, "{text}");
        let money = total(&text, "otp_cost_usd_total");
        assert!(
            (total(&text, "otp_operator_cost_usd_total") - money).abs() < 1e-9 && money > 0.7,
            "{text}"
        );
        // Latency: the two delivered SMS, under their own networks' operators.
        let count = samples_of(&text, "otp_operator_delivery_latency_seconds_count");
        let mut want = vec![
            (r#"{country="CN",operator="unknown"}"#.to_string(), 1.0),
            (
                format!(r#"{{country="IN",operator="{}"}}"#, delhi.label),
                1.0,
            ),
        ];
        want.sort_by(|a, b| a.0.cmp(&b.0));
        let mut got: Vec<(String, f64)> = count.iter().map(|(l, v)| (l.to_string(), *v)).collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, want, "{text}");
        assert_eq!(
            total(&text, "otp_operator_delivery_latency_seconds_sum"),
            total(&text, "otp_delivery_latency_seconds_sum"),
        );
        assert_eq!(
            total(&text, "otp_operator_delivery_latency_seconds_sum"),
            10.0
        );
    }
}

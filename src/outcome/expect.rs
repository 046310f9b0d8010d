//! What "on time" means for each country and channel, learned from recent history: a
//! small, bounded histogram of delivery-report delays (submit → the report of a
//! delivered or failed attempt) and verification delays (first submit → verified) per key, from which the
//! polls are planned and lateness is judged.

use std::collections::HashMap;
use std::time::Duration;

use super::Channel;

/// Lateness stage (label `stage` of `otp_orders_overdue_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Delivery,
    Verification,
}

impl Stage {
    pub const ALL: [Stage; 2] = [Stage::Delivery, Stage::Verification];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Delivery => "delivery",
            Stage::Verification => "verification",
        }
    }
}

/// Bucket bounds grow by this factor: quantiles are read to within about 12%.
const GROWTH: f64 = 1.25;
/// The first bucket ends at 250 ms; 40 buckets reach 25 minutes (longer delays share
/// the last bucket: a verification window is minutes long).
const FIRST_BOUND_MS: f64 = 250.0;
const BUCKETS: usize = 40;
/// Past this many observations the counts are halved: the estimate follows the last
/// few hundred observations, so it adapts to a route that changes for good.
const MEMORY: f32 = 512.0;

/// Observations needed before the estimate replaces the configured fallback.
pub const MIN_OBSERVATIONS: f32 = 20.0;
/// The quantile beyond which an order is overdue: high enough that a calm route has
/// one order in ten overdue at most, low enough that a silent route (nothing ever
/// reported) shows within about a minute even where reports have a long tail (the
/// 95th percentile of a tail-heavy route can be twice its 90th).
pub const OVERDUE_QUANTILE: f64 = 0.9;

/// A decaying log-bucketed histogram of delays (160 bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct DelayHistogram {
    counts: [f32; BUCKETS],
    total: f32,
}

impl Default for DelayHistogram {
    fn default() -> Self {
        DelayHistogram {
            counts: [0.0; BUCKETS],
            total: 0.0,
        }
    }
}

fn upper_bound_ms(bucket: usize) -> f64 {
    FIRST_BOUND_MS * GROWTH.powi(bucket as i32)
}

impl DelayHistogram {
    pub fn observe(&mut self, delay_ms: i64) {
        let ms = delay_ms.max(0) as f64;
        let bucket = if ms <= FIRST_BOUND_MS {
            0
        } else {
            ((ms / FIRST_BOUND_MS).ln() / GROWTH.ln()).ceil() as usize
        };
        if self.total >= MEMORY {
            self.counts.iter_mut().for_each(|c| *c /= 2.0);
            self.total /= 2.0;
        }
        self.counts[bucket.min(BUCKETS - 1)] += 1.0;
        self.total += 1.0;
    }

    pub fn observations(&self) -> f32 {
        self.total
    }

    /// The `q` quantile (linear within its bucket), or `None` while fewer than
    /// [`MIN_OBSERVATIONS`] were seen.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total < MIN_OBSERVATIONS {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * f64::from(self.total);
        let mut below = 0.0;
        for (i, count) in self.counts.iter().enumerate() {
            let count = f64::from(*count);
            if count > 0.0 && below + count >= rank {
                let lower = if i == 0 { 0.0 } else { upper_bound_ms(i - 1) };
                let within = ((rank - below) / count).clamp(0.0, 1.0);
                let ms = lower + (upper_bound_ms(i) - lower) * within;
                return Some(Duration::from_millis(ms as u64));
            }
            below += count;
        }
        Some(Duration::from_millis(upper_bound_ms(BUCKETS - 1) as u64))
    }
}

/// Bounds of the overdue rule: the estimate's 90th percentile, never below the floor;
/// the fallback while history is thin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverdueRule {
    pub delivery_fallback: Duration,
    pub verification_fallback: Duration,
}

/// The shortest delivery and verification expectation: a burst of instant reports must
/// not make every ordinary one overdue.
pub const DELIVERY_FLOOR: Duration = Duration::from_secs(10);
pub const VERIFICATION_FLOOR: Duration = Duration::from_secs(30);

/// What is expected of one (country, channel) at one stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expectation {
    /// When half of the facts have come (`None` while history is thin).
    pub median: Option<Duration>,
    /// Later than this is overdue.
    pub overdue_after: Duration,
}

/// The estimates of one app, by (country, channel) and stage. Countries are the
/// bounded label set, so the map is bounded too.
#[derive(Debug, Default)]
pub struct Estimates {
    by_key: HashMap<(&'static str, Channel, Stage), DelayHistogram>,
}

impl Estimates {
    pub fn observe(&mut self, stage: Stage, country: &'static str, channel: Channel, ms: i64) {
        self.by_key
            .entry((country, channel, stage))
            .or_default()
            .observe(ms);
    }

    pub fn histogram(
        &self,
        stage: Stage,
        country: &'static str,
        channel: Channel,
    ) -> Option<&DelayHistogram> {
        self.by_key.get(&(country, channel, stage))
    }

    pub fn expect(
        &self,
        stage: Stage,
        country: &'static str,
        channel: Channel,
        rule: &OverdueRule,
    ) -> Expectation {
        let histogram = self.histogram(stage, country, channel);
        let q = |q: f64| histogram.and_then(|h| h.quantile(q));
        let (floor, fallback) = match stage {
            Stage::Delivery => (DELIVERY_FLOOR, rule.delivery_fallback),
            Stage::Verification => (VERIFICATION_FLOOR, rule.verification_fallback),
        };
        Expectation {
            median: q(0.5),
            overdue_after: q(OVERDUE_QUANTILE).map_or(fallback, |d| d.max(floor)),
        }
    }

    /// Keys with history (for tests and the bench).
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: OverdueRule = OverdueRule {
        delivery_fallback: Duration::from_secs(120),
        verification_fallback: Duration::from_secs(180),
    };

    #[test]
    fn quantiles_follow_the_data_within_a_bucket() {
        let mut h = DelayHistogram::default();
        assert_eq!(h.quantile(0.5), None, "no history");
        // 1..=100 s, uniformly.
        for s in 1..=100 {
            h.observe(s * 1000);
        }
        for (q, want_s) in [(0.5, 50.0), (0.9, 90.0), (0.95, 95.0)] {
            let got = h.quantile(q).unwrap().as_secs_f64();
            assert!(
                (got - want_s).abs() / want_s < 0.15,
                "q{q}: {got} vs {want_s}"
            );
        }
        let mut tiny = DelayHistogram::default();
        for _ in 0..50 {
            tiny.observe(-5);
        }
        assert!(tiny.quantile(0.95).unwrap() <= Duration::from_millis(250));
        let mut huge = DelayHistogram::default();
        for _ in 0..50 {
            huge.observe(i64::MAX);
        }
        assert!(huge.quantile(0.5).unwrap() > Duration::from_secs(1_200));
    }

    #[test]
    fn thin_history_uses_the_fallback_and_floors_hold() {
        let mut e = Estimates::default();
        for _ in 0..19 {
            e.observe(Stage::Delivery, "IN", Channel::Sms, 1_000);
        }
        let x = e.expect(Stage::Delivery, "IN", Channel::Sms, &RULE);
        assert_eq!(
            (x.median, x.overdue_after),
            (None, Duration::from_secs(120))
        );
        e.observe(Stage::Delivery, "IN", Channel::Sms, 1_000);
        let x = e.expect(Stage::Delivery, "IN", Channel::Sms, &RULE);
        assert!(x.median.unwrap() <= Duration::from_millis(1_200));
        assert_eq!(x.overdue_after, DELIVERY_FLOOR, "a 1 s p90 is floored");
        // Keys are separate: another channel, country or stage is still thin.
        assert_eq!(
            e.expect(Stage::Verification, "IN", Channel::Sms, &RULE)
                .overdue_after,
            Duration::from_secs(180)
        );
        assert_eq!(
            e.expect(Stage::Delivery, "ID", Channel::Sms, &RULE)
                .overdue_after,
            Duration::from_secs(120)
        );
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn the_estimate_forgets_old_history() {
        let mut e = Estimates::default();
        for _ in 0..2_000 {
            e.observe(Stage::Delivery, "IN", Channel::Sms, 5_000);
        }
        let before = e.expect(Stage::Delivery, "IN", Channel::Sms, &RULE);
        assert!(before.overdue_after <= Duration::from_secs(10));
        // The route becomes slow for good: within a few hundred reports the estimate
        // follows.
        for _ in 0..1_500 {
            e.observe(Stage::Delivery, "IN", Channel::Sms, 60_000);
        }
        let after = e.expect(Stage::Delivery, "IN", Channel::Sms, &RULE);
        assert!(after.median.unwrap() > Duration::from_secs(45), "{after:?}");
        let h = e.histogram(Stage::Delivery, "IN", Channel::Sms).unwrap();
        assert!(h.observations() <= MEMORY + 1.0);
    }
}

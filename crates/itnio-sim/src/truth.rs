//! Ground truth: what the exporter must conclude about each order, derived from the
//! order's timeline with the exporter's outcome rules.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::profile::Channel;
use super::quirks::Quirks;
use super::timeline::{AttemptResult, Order, VerifyKind};

/// An outcome, channel, country or result word: the simulator's own constants when
/// it writes the truth, owned text when a test reads it back.
pub type Word = Cow<'static, str>;

/// One order as the exporter must count it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TruthOrder {
    pub order_id: String,
    pub app_id: String,
    pub outcome: Word,
    pub channel: Word,
    pub country: Word,
    pub attempts: Vec<TruthAttempt>,
    pub fallbacks: Vec<[Word; 2]>,
    pub cost_usd: f64,
    pub sms_segments: u32,
    pub verified_latency: bool,
}

/// One attempt with its final result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthAttempt {
    pub channel: Word,
    pub country: Word,
    pub mcc: String,
    pub result: Word,
    /// A delivery latency is observable: delivered, with both of its times.
    pub latency: bool,
}

/// The whole `GET /sim/truth` document; integration tests decode it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub orders: Vec<TruthOrder>,
}

/// The outcome the exporter's rules give the order's final record.
pub fn outcome(order: &Order) -> &'static str {
    let t = &order.timeline;
    match t.verification.map(|v| v.kind) {
        Some(VerifyKind::Matched) => "verified",
        Some(VerifyKind::WrongCode) => "failed",
        None if t.is_stuck() => "expired",
        None if t
            .attempts
            .iter()
            .any(|a| a.result == AttemptResult::Delivered) =>
        {
            "unverified"
        }
        None => "undelivered",
    }
}

impl TruthOrder {
    /// Truth of an order the simulator sent.
    pub fn of(order: &Order) -> TruthOrder {
        let t = &order.timeline;
        let country = t.profile.country;
        // A call has no network of its own: it reports the SMS/SNA attempt's MCC.
        let network_mcc = t
            .attempts
            .iter()
            .any(|a| a.channel != Channel::Call)
            .then(|| t.network.mcc.to_string());
        let attempts = t
            .attempts
            .iter()
            .map(|a| {
                let latency = a.result == AttemptResult::Delivered
                    && !(a.channel == Channel::Sms && t.quirks.has(Quirks::NO_DONE_TIME));
                TruthAttempt {
                    channel: a.channel.as_str().into(),
                    country: country.into(),
                    mcc: match a.channel {
                        Channel::Call => {
                            network_mcc.clone().unwrap_or_else(|| "unknown".to_string())
                        }
                        _ => t.network.mcc.to_string(),
                    },
                    result: a.result.as_str().into(),
                    latency,
                }
            })
            .collect();
        let fallbacks = t
            .attempts
            .windows(2)
            .filter(|w| w[0].channel != w[1].channel)
            .map(|w| [w[0].channel.as_str().into(), w[1].channel.as_str().into()])
            .collect();
        // Calls cost nothing until they end; stuck calls never do.
        let cost_units = t.billed_units();
        let outcome = outcome(order);
        let channel = t
            .verification
            .map(|v| v.channel)
            .or_else(|| t.attempts.last().map(|a| a.channel))
            .map_or("none", Channel::as_str);
        TruthOrder {
            order_id: order.order_id.clone(),
            app_id: order.app_id.clone(),
            outcome: outcome.into(),
            channel: channel.into(),
            country: country.into(),
            attempts,
            fallbacks,
            cost_usd: cost_units as f64 / 10_000.0,
            sms_segments: t
                .attempts
                .iter()
                .filter(|a| a.channel == Channel::Sms)
                .map(|a| u32::from(a.segments))
                .sum(),
            verified_latency: outcome == "verified",
        }
    }

    /// Truth of an id that was written to the spool but never sent.
    pub fn not_found(order_id: &str, app_id: &str) -> TruthOrder {
        TruthOrder {
            order_id: order_id.to_string(),
            app_id: app_id.to_string(),
            outcome: "not_found".into(),
            channel: "none".into(),
            country: "unknown".into(),
            attempts: Vec::new(),
            fallbacks: Vec::new(),
            cost_usd: 0.0,
            sms_segments: 0,
            verified_latency: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::OutageKind;
    use crate::profile::PROFILES;
    use crate::record::render;
    use crate::testutil::{seen, Seen};
    use crate::timeline::tests::generator;
    use crate::timeline::{Generator, LATE_SHARE, SETTLE_SHARE};

    const SENT: i64 = 1_700_000_000_000;

    fn orders(validity_ms: u32, per: usize) -> Vec<Order> {
        orders_of(&generator(21, validity_ms, true), per)
    }

    /// Silent outages on every channel somewhere: SMS in India and Brazil, calls in
    /// Brazil and Indonesia, SNA in Indonesia and the US.
    fn silent_somewhere(country: &str, ch: Channel) -> Option<OutageKind> {
        let hit = matches!(
            (country, ch),
            ("IN" | "BR", Channel::Sms)
                | ("BR" | "ID", Channel::Call)
                | ("ID" | "US", Channel::Sna)
        );
        hit.then_some(OutageKind::Silent)
    }

    fn orders_of(g: &Generator, per: usize) -> Vec<Order> {
        let mut out = Vec::new();
        for p in PROFILES {
            for start in [Channel::Sms, Channel::Call, Channel::Sna] {
                for i in 0..per {
                    let order_id = format!("t-{}-{}-{i}", p.country, start.as_str());
                    let timeline = g.generate(&order_id, p, start);
                    out.push(Order {
                        order_id,
                        app_id: "app".into(),
                        receiver: format!("{}9000000000", p.calling_code),
                        sent_at_ms: SENT,
                        timeline,
                    });
                }
            }
        }
        out
    }

    /// The moment the exporter may decide: the window's close for orders not
    /// verified, the end of the late-DLR allowance for verified ones.
    fn decision_offset(order: &Order, validity_ms: u32) -> u32 {
        let v = f64::from(validity_ms);
        match order.timeline.verification {
            Some(ver) if ver.kind == VerifyKind::Matched => ver.at + (v * LATE_SHARE) as u32,
            _ => (v * SETTLE_SHARE) as u32,
        }
    }

    fn view(order: &Order, offset_ms: u32, scale: f64) -> Seen {
        let now = SENT + (f64::from(offset_ms) * scale).round() as i64;
        seen(&render(order, now, scale))
    }

    fn assert_truth_matches(order: &Order, final_view: &Seen, truth: &TruthOrder) {
        let ctx = || format!("{}: {truth:?}\n{final_view:?}", order.order_id);
        assert_eq!(final_view.outcome(), truth.outcome, "{}", ctx());
        let channel = final_view
            .channel
            .clone()
            .or_else(|| final_view.attempts.last().map(|a| a.channel.to_string()))
            .unwrap_or_else(|| "none".into());
        assert_eq!(channel, truth.channel, "{}", ctx());
        let attempts: Vec<(&str, &str, bool)> = final_view
            .attempts
            .iter()
            .map(|a| (a.channel, a.result, a.latency))
            .collect();
        let expected: Vec<(&str, &str, bool)> = truth
            .attempts
            .iter()
            .map(|a| (&*a.channel, &*a.result, a.latency))
            .collect();
        assert_eq!(attempts, expected, "{}", ctx());
        let fallbacks: Vec<[&str; 2]> = final_view
            .attempts
            .windows(2)
            .filter(|w| w[0].channel != w[1].channel)
            .map(|w| [w[0].channel, w[1].channel])
            .collect();
        assert_eq!(fallbacks, truth.fallbacks, "{}", ctx());
        assert!(
            (final_view.cost_usd - truth.cost_usd).abs() < 1e-9,
            "{}",
            ctx()
        );
        assert_eq!(
            final_view.sms_segments,
            u64::from(truth.sms_segments),
            "{}",
            ctx()
        );
        let verified_latency = final_view.outcome() == "verified"
            && final_view.verified_ms.is_some()
            && final_view
                .attempts
                .first()
                .and_then(|a| a.submit_ms)
                .is_some();
        assert_eq!(verified_latency, truth.verified_latency, "{}", ctx());
    }

    /// What a client reads from the records, with the exporter's rules, is the truth;
    /// and it is already final when the exporter may decide.
    #[test]
    fn records_read_with_the_exporters_rules_give_the_truth() {
        for (validity_ms, scale) in [(300_000, 1.0), (300_000, 0.02), (30_000, 0.05)] {
            for order in orders(validity_ms, 120) {
                let truth = TruthOrder::of(&order);
                let final_view = view(&order, validity_ms * 20, scale);
                assert_truth_matches(&order, &final_view, &truth);
                let early = view(&order, decision_offset(&order, validity_ms), scale);
                assert_eq!(
                    early, final_view,
                    "{} changes after the decision",
                    order.order_id
                );
            }
        }
    }

    /// The same under silent outages: pending-forever attempts do not change what the
    /// exporter concludes from the records, nor when.
    #[test]
    fn silent_outages_keep_the_truth_exact() {
        for (validity_ms, scale) in [(300_000, 1.0), (30_000, 0.05)] {
            let g = Generator {
                seed: 21,
                validity_ms,
                quirks: true,
                outage: &silent_somewhere,
            };
            let all = orders_of(&g, 60);
            assert!(all
                .iter()
                .any(|o| o.timeline.attempts.iter().any(|a| a.silent)));
            for order in all {
                let truth = TruthOrder::of(&order);
                let final_view = view(&order, validity_ms * 20, scale);
                assert_truth_matches(&order, &final_view, &truth);
                let early = view(&order, decision_offset(&order, validity_ms), scale);
                assert_eq!(early, final_view, "{}", order.order_id);
            }
        }
    }

    /// One test per rule of a silent attempt's outcome: alone (or with other silent
    /// ones) it is `expired`; beside a failed call `undelivered`; beside a delivered
    /// call what the user did (`verified`, `failed`, or `unverified`).
    #[test]
    fn silent_attempts_outcome_rules() {
        let silent_sms_and_call = |country: &str, ch: Channel| {
            (country == "IN" && ch != Channel::Sna).then_some(OutageKind::Silent)
        };
        let all_silent = Generator {
            seed: 3,
            validity_ms: 300_000,
            quirks: false,
            outage: &silent_sms_and_call,
        };
        let sms_only = Generator {
            seed: 3,
            validity_ms: 300_000,
            quirks: false,
            outage: &crate::timeline::tests::silent_india_sms,
        };
        let india = crate::profile::profile_for_country("IN").expect("IN");
        let order = |g: &Generator, i: usize| {
            let order_id = format!("rule-{i}");
            let timeline = g.generate(&order_id, india, Channel::Sms);
            Order {
                order_id,
                app_id: "app".into(),
                receiver: "919000000000".into(),
                sent_at_ms: SENT,
                timeline,
            }
        };
        let mut seen_outcomes = std::collections::BTreeSet::new();
        for i in 0..400 {
            let o = order(&all_silent, i);
            if o.timeline.attempts.iter().any(|a| a.silent) {
                assert_eq!(outcome(&o), "expired", "{:#?}", o.timeline);
            }
            let o = order(&sms_only, i);
            let t = &o.timeline;
            let (Some(sms), Some(call)) = (t.attempts.first(), t.attempts.get(1)) else {
                continue;
            };
            assert!(sms.silent && sms.result == AttemptResult::Pending);
            let expected = match (call.result, t.verification.map(|v| v.kind)) {
                (_, Some(VerifyKind::Matched)) => "verified",
                (_, Some(VerifyKind::WrongCode)) => "failed",
                (AttemptResult::Failed, None) => "undelivered",
                (AttemptResult::Delivered, None) => "unverified",
                (AttemptResult::Pending, None) => "expired",
            };
            assert_eq!(outcome(&o), expected, "{:#?}", t);
            let truth = TruthOrder::of(&o);
            assert_eq!(truth.attempts[0].result, "pending");
            assert_eq!(truth.attempts[1].channel, "call");
            assert_eq!(
                truth.fallbacks,
                vec![[Word::from("sms"), Word::from("call")]]
            );
            seen_outcomes.insert(expected);
        }
        for want in ["verified", "undelivered", "unverified"] {
            assert!(seen_outcomes.contains(want), "{want}: {seen_outcomes:?}");
        }
    }

    #[test]
    fn unverified_results_are_visible_before_80_percent_of_validity() {
        let validity_ms = 300_000;
        for order in orders(validity_ms, 80) {
            if TruthOrder::of(&order).outcome == "verified" {
                continue;
            }
            for a in &order.timeline.attempts {
                if let Some(done) = a.done {
                    assert!(
                        f64::from(done) <= f64::from(validity_ms) * 0.8,
                        "{}",
                        order.order_id
                    );
                }
            }
        }
    }

    #[test]
    fn call_attempts_borrow_the_network_of_the_order() {
        let all = orders(300_000, 150);
        let with_sms_and_call = all
            .iter()
            .map(TruthOrder::of)
            .find(|t| t.attempts.len() > 1 && t.attempts.iter().any(|a| a.channel == "call"))
            .expect("a fallback to a call");
        let sms_mcc = &with_sms_and_call.attempts[0].mcc;
        assert!(with_sms_and_call.attempts.iter().all(|a| &a.mcc == sms_mcc));
        let call_only = all
            .iter()
            .map(TruthOrder::of)
            .find(|t| t.attempts.len() == 1 && t.attempts[0].channel == "call")
            .expect("a call-only order");
        assert_eq!(call_only.attempts[0].mcc, "unknown");
        assert_ne!(call_only.attempts[0].country, "unknown");
        let guam = all
            .iter()
            .find(|o| o.timeline.profile.country == "GU")
            .map(TruthOrder::of)
            .expect("Guam");
        assert_eq!(guam.country, "GU");
    }

    #[test]
    fn not_found_shape() {
        let t = TruthOrder::not_found("x", "app");
        assert_eq!(
            (&*t.outcome, &*t.channel, &*t.country),
            ("not_found", "none", "unknown")
        );
        let json = serde_json::to_value(&t).expect("json");
        assert_eq!(json["orderId"], "x");
        assert_eq!(json["costUsd"], 0.0);
        assert_eq!(json["smsSegments"], 0);
        assert_eq!(json["verifiedLatency"], false);
        assert_eq!(json["attempts"], serde_json::json!([]));
    }
}

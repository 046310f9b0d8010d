//! The metric samples of a finalized order.

use super::{Attempt, AttemptResult, Channel, Observation, Outcome};
use crate::api::wire::InvalidValues;
use crate::geo;

/// One attempt's share of the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptSample {
    pub channel: Channel,
    pub country: &'static str,
    /// Three digits, or `unknown`.
    pub mcc: String,
    /// The MNC's digits as the MCC/MNC table writes them ("01", "045"), or `unknown`
    /// when the attempt has no MNC or (MCC, MNC) is not in the table.
    pub mnc: &'static str,
    /// The operator's label value (`geo::operator_label` of its name), or `unknown`.
    pub operator: &'static str,
    /// The operator's name as the table writes it, for logs and pages.
    pub operator_name: Option<&'static str>,
    pub result: AttemptResult,
    pub latency_seconds: Option<f64>,
    pub cost_usd: f64,
    pub segments: u32,
}

/// Everything a finalized order adds to the metrics, emitted at once.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderSamples {
    pub outcome: Outcome,
    /// `sms`, `call`, `sna` or `none`.
    pub channel: &'static str,
    pub country: &'static str,
    /// The order's network (MCC, MNC): its first attempt in submit order with both.
    pub network: Option<(u16, u16)>,
    /// The operator label of that network, or `unknown` (no such attempt, or the
    /// table does not name its operator).
    pub operator: &'static str,
    /// That operator's name as the table writes it.
    pub operator_name: Option<&'static str>,
    pub attempts: Vec<AttemptSample>,
    pub fallbacks: Vec<(Channel, Channel)>,
    pub verification_latency_seconds: Option<f64>,
    /// Attempts of the record beyond `tracking.max_attempts_per_order`, not counted.
    pub attempts_dropped: usize,
    /// Values of the record dropped as unbelievable, by wire field.
    pub invalid_values: InvalidValues,
}

pub const UNKNOWN: &str = "unknown";

fn mcc_label(mcc: Option<u16>) -> String {
    match mcc {
        Some(mcc) if geo::is_known_mcc(mcc) => format!("{mcc:03}"),
        _ => UNKNOWN.to_string(),
    }
}

/// Where an attempt went: its `country`, `mcc`, `mnc` and `operator` labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub country: &'static str,
    /// Three digits, or `unknown`.
    pub mcc: String,
    /// The MNC's digits as the table writes them, or `unknown`.
    pub mnc: &'static str,
    /// The network's operator, when the table names it.
    pub operator: Option<geo::Operator>,
}

/// The table's row for a network; `None` without an MNC or for a network it lacks.
fn table_network(mcc: Option<u16>, mnc: Option<u16>) -> Option<geo::Network> {
    mcc.zip(mnc).and_then(|(mcc, mnc)| geo::network(mcc, mnc))
}

fn operator_label(operator: Option<geo::Operator>) -> &'static str {
    operator.map_or(geo::UNKNOWN_OPERATOR, |o| o.label)
}

/// The place of each attempt of `obs`, in order. A call has no network of its own: it
/// takes the order's SMS/SNA network, else the receiver's country by calling code.
pub fn attempt_places(obs: &Observation) -> Vec<Place> {
    let network = sms_network(obs);
    obs.attempts
        .iter()
        .map(|a| {
            let (country, mcc, mnc) = attempt_network(obs, a, network);
            let row = table_network(mcc, mnc);
            Place {
                country: country.unwrap_or(UNKNOWN),
                mcc: mcc_label(mcc),
                mnc: row.map_or(UNKNOWN, |n| n.mnc),
                operator: row.and_then(|n| n.operator),
            }
        })
        .collect()
}

/// The order's SMS/SNA network with a known MCC, which its calls take.
fn sms_network(obs: &Observation) -> Option<(u16, Option<u16>)> {
    obs.attempts
        .iter()
        .filter(|a| a.channel != Channel::Call)
        .find_map(|a| a.mcc.filter(|m| geo::is_known_mcc(*m)).map(|m| (m, a.mnc)))
}

/// An attempt's country, MCC and MNC (`network`: [`sms_network`]).
fn attempt_network(
    obs: &Observation,
    a: &Attempt,
    network: Option<(u16, Option<u16>)>,
) -> (Option<&'static str>, Option<u16>, Option<u16>) {
    match a.channel {
        // A call's MNC and operator are those of the network its country came from.
        Channel::Call => match network {
            Some((mcc, mnc)) => (geo::country_of_network(mcc, mnc), Some(mcc), mnc),
            None => (obs.receiver_country, None, None),
        },
        _ => (
            a.mcc.and_then(|m| geo::country_of_network(m, a.mnc)),
            a.mcc,
            a.mnc,
        ),
    }
}

/// The order's country as [`order_country`] has it, without the attempts' places (the
/// journal's view of every changed record needs only this).
pub fn country_of(obs: &Observation) -> &'static str {
    obs.attempts
        .first()
        .map(|a| {
            attempt_network(obs, a, sms_network(obs))
                .0
                .unwrap_or(UNKNOWN)
        })
        .or(obs.receiver_country)
        .unwrap_or(UNKNOWN)
}

/// The channel changes from one attempt to the next (label pairs of the fallback
/// counter).
pub fn fallbacks(obs: &Observation) -> Vec<(Channel, Channel)> {
    obs.attempts
        .windows(2)
        .filter(|pair| pair[0].channel != pair[1].channel)
        .map(|pair| (pair[0].channel, pair[1].channel))
        .collect()
}

/// The order's country (label `country` of order metrics): its first attempt's, else
/// the receiver's.
pub fn order_country(obs: &Observation, places: &[Place]) -> &'static str {
    places
        .first()
        .map(|p| p.country)
        .or(obs.receiver_country)
        .unwrap_or(UNKNOWN)
}

/// The order's network (MCC, MNC): its first attempt in submit order that has both.
pub fn order_network(obs: &Observation) -> Option<(u16, u16)> {
    obs.attempts.iter().find_map(|a| a.mcc.zip(a.mnc))
}

/// The order's channel (label `channel` of order metrics): the verification's, else
/// the last attempt's, else `none`.
pub fn order_channel(obs: &Observation) -> &'static str {
    obs.verification_channel
        .or_else(|| obs.attempts.last().map(|a| a.channel))
        .map_or("none", Channel::as_str)
}

/// The metric samples of a finalized order.
pub fn samples(outcome: Outcome, obs: Option<&Observation>) -> OrderSamples {
    let Some(obs) = obs else {
        return OrderSamples {
            outcome,
            channel: "none",
            country: UNKNOWN,
            network: None,
            operator: geo::UNKNOWN_OPERATOR,
            operator_name: None,
            attempts: Vec::new(),
            fallbacks: Vec::new(),
            verification_latency_seconds: None,
            attempts_dropped: 0,
            invalid_values: InvalidValues::default(),
        };
    };
    let places = attempt_places(obs);
    let attempts: Vec<AttemptSample> = obs
        .attempts
        .iter()
        .zip(places.iter())
        .map(|(a, place)| AttemptSample {
            channel: a.channel,
            country: place.country,
            mcc: place.mcc.clone(),
            mnc: place.mnc,
            operator: operator_label(place.operator),
            operator_name: place.operator.map(|o| o.name),
            result: a.result,
            latency_seconds: a.latency_ms.map(|ms| ms as f64 / 1000.0),
            cost_usd: a.cost_usd,
            segments: a.segments,
        })
        .collect();
    let fallbacks = fallbacks(obs);
    let channel = order_channel(obs);
    let country = order_country(obs, &places);
    let network = order_network(obs);
    let order_operator = network.and_then(|(mcc, mnc)| geo::operator(mcc, mnc));
    let verification_latency_seconds = match (outcome, obs.attempts.first(), obs.verified_ms) {
        (Outcome::Verified, Some(first), Some(verified)) => first
            .submit_ms
            .filter(|submit| verified >= *submit)
            .map(|submit| (verified - submit) as f64 / 1000.0),
        _ => None,
    };
    OrderSamples {
        outcome,
        channel,
        country,
        network,
        operator: operator_label(order_operator),
        operator_name: order_operator.map(|o| o.name),
        attempts,
        fallbacks,
        verification_latency_seconds,
        attempts_dropped: obs.attempts_dropped,
        invalid_values: obs.invalid_values.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::observe;
    use super::super::test_support::{attempt, obs, read_for, reading};
    use super::*;
    use crate::api::wire::decode_reply;
    use AttemptResult::{Delivered, Failed};
    use Channel::{Call, Sms, Sna};

    fn with_network(mut a: Attempt, mcc: u16, mnc: u16) -> Attempt {
        a.mcc = Some(mcc);
        a.mnc = Some(mnc);
        a
    }

    #[test]
    fn samples_of_the_provider_sample() {
        let record = decode_reply(crate::api::wire::tests::PROVIDER_SAMPLE.as_bytes())
            .unwrap()
            .data
            .unwrap();
        let o = observe(&record, &reading(), read_for());
        let s = samples(Outcome::Verified, Some(&o));
        assert_eq!(s.channel, "call");
        assert_eq!(s.country, "CN");
        assert_eq!(s.fallbacks, vec![(Sms, Call)]);
        assert_eq!(s.attempts.len(), 2);
        assert_eq!(
            (s.attempts[0].country, s.attempts[0].mcc.as_str()),
            ("CN", "460")
        );
        assert_eq!(s.attempts[0].result, Delivered);
        assert_eq!(s.attempts[0].latency_seconds, Some(4.0));
        assert_eq!(s.attempts[0].segments, 1);
        assert_eq!(s.attempts[0].cost_usd, 0.000002);
        // The call takes the SMS's network.
        assert_eq!(
            (s.attempts[1].country, s.attempts[1].mcc.as_str()),
            ("CN", "460")
        );
        assert_eq!(s.attempts[1].result, Failed);
        assert_eq!(s.attempts[1].latency_seconds, None);
        assert_eq!(s.verification_latency_seconds, Some(2.0));
    }

    /// The journal's shortcut gives the metrics' country and fallbacks, whatever the
    /// attempts' channels and networks.
    #[test]
    fn the_journals_country_is_the_metrics_country() {
        let india = geo::country_of_number("918563214120");
        let cases = [
            (vec![], None),
            (vec![], india),
            (vec![attempt(Call, 0, Delivered)], india),
            (vec![attempt(Call, 0, Delivered)], None),
            (vec![with_network(attempt(Sms, 0, Failed), 404, 10)], india),
            (
                vec![
                    attempt(Call, 0, Failed),
                    with_network(attempt(Sms, 1, Delivered), 262, 1),
                ],
                india,
            ),
            (
                vec![
                    with_network(attempt(Sna, 0, Failed), 999, 99),
                    attempt(Call, 1, Delivered),
                ],
                None,
            ),
            (
                vec![
                    with_network(attempt(Sms, 0, Failed), 460, 0),
                    attempt(Call, 1, Failed),
                    attempt(Sms, 2, Delivered),
                ],
                None,
            ),
        ];
        for (attempts, receiver_country) in cases {
            let mut o = obs(Some(-1), attempts);
            o.receiver_country = receiver_country;
            let s = samples(Outcome::Unverified, Some(&o));
            assert_eq!(
                (country_of(&o), fallbacks(&o)),
                (s.country, s.fallbacks),
                "{o:?}"
            );
        }
    }

    #[test]
    fn call_only_order_takes_country_from_the_receiver() {
        let mut o = obs(Some(-1), vec![attempt(Call, 0, Delivered)]);
        o.receiver_country = geo::country_of_number("918563214120");
        let s = samples(Outcome::Unverified, Some(&o));
        assert_eq!(
            (s.country, s.attempts[0].country, s.attempts[0].mcc.as_str()),
            ("IN", "IN", "unknown")
        );
        assert_eq!(s.verification_latency_seconds, None);
    }

    #[test]
    fn fallbacks_follow_submit_order_and_channel_defaults() {
        let o = obs(
            Some(-1),
            vec![
                with_network(attempt(Sna, 0, Failed), 404, 10),
                attempt(Sms, 1, Failed),
                attempt(Sms, 2, Failed),
                attempt(Call, 3, Delivered),
            ],
        );
        let s = samples(Outcome::Unverified, Some(&o));
        assert_eq!(s.fallbacks, vec![(Sna, Sms), (Sms, Call)]);
        assert_eq!(
            s.channel, "call",
            "no verification channel: the last attempt's"
        );
        assert_eq!(s.country, "IN");
        assert_eq!(
            s.attempts[1].country, "unknown",
            "an SMS without MCC has no country"
        );
        assert_eq!(s.attempts[3].mcc, "404");
        let none = samples(Outcome::NotFound, None);
        assert_eq!((none.channel, none.country), ("none", "unknown"));
        let empty = samples(Outcome::Expired, Some(&obs(Some(1), vec![])));
        assert_eq!((empty.channel, empty.country), ("none", "unknown"));
    }

    #[test]
    fn unknown_mcc_is_not_a_label() {
        let o = obs(
            Some(0),
            vec![with_network(attempt(Sms, 0, Delivered), 999, 1)],
        );
        let s = samples(Outcome::Verified, Some(&o));
        assert_eq!(
            (s.attempts[0].mcc.as_str(), s.attempts[0].country),
            ("unknown", "unknown")
        );
    }

    #[test]
    fn verification_latency_needs_verified_and_sane_times() {
        let mut o = obs(Some(0), vec![attempt(Sms, 10_000, Delivered)]);
        o.verified_ms = Some(25_000);
        assert_eq!(
            samples(Outcome::Verified, Some(&o)).verification_latency_seconds,
            Some(15.0)
        );
        o.verified_ms = Some(5_000);
        assert_eq!(
            samples(Outcome::Verified, Some(&o)).verification_latency_seconds,
            None
        );
        o.verified_ms = Some(25_000);
        assert_eq!(
            samples(Outcome::Unverified, Some(&o)).verification_latency_seconds,
            None
        );
    }

    /// (mcc, mnc, operator) labels and the name of attempt `i`.
    fn network_labels(s: &OrderSamples, i: usize) -> (&str, &str, &str, Option<&str>) {
        let a = &s.attempts[i];
        (a.mcc.as_str(), a.mnc, a.operator, a.operator_name)
    }

    #[test]
    fn attempts_carry_the_tables_mnc_and_operator() {
        let o = obs(
            Some(0),
            vec![
                with_network(attempt(Sms, 0, Failed), 404, 45),
                attempt(Call, 1, Delivered),
            ],
        );
        let s = samples(Outcome::Verified, Some(&o));
        // "045" as written in the table; the 37-char name cut to 32 and trimmed.
        let karnataka = (
            "404",
            "045",
            "bharti_airtel_limited_karnataka",
            Some("Bharti Airtel Limited (Karnataka) (India)"),
        );
        assert_eq!(network_labels(&s, 0), karnataka);
        assert_eq!(
            network_labels(&s, 1),
            karnataka,
            "the call takes the SMS's network"
        );
        assert_eq!(s.network, Some((404, 45)));
        assert_eq!(s.operator, "bharti_airtel_limited_karnataka");
        assert_eq!(s.operator_name, karnataka.3);
    }

    #[test]
    fn networks_the_table_lacks_or_does_not_name_are_unknown() {
        // The provider's sample: 460/10 is not in the table (460/00 and 460/01 are).
        let record = decode_reply(crate::api::wire::tests::PROVIDER_SAMPLE.as_bytes())
            .unwrap()
            .data
            .unwrap();
        let s = samples(
            Outcome::Verified,
            Some(&observe(&record, &reading(), read_for())),
        );
        assert_eq!(network_labels(&s, 0), ("460", "unknown", "unknown", None));
        assert_eq!(network_labels(&s, 1), ("460", "unknown", "unknown", None));
        assert_eq!(
            (s.network, s.operator, s.operator_name),
            (Some((460, 10)), "unknown", None)
        );
        // 238/05 is a row without an operator name: the MNC is known, the operator not.
        let o = obs(Some(0), vec![with_network(attempt(Sms, 0, Failed), 238, 5)]);
        let s = samples(Outcome::Unverified, Some(&o));
        assert_eq!(network_labels(&s, 0), ("238", "05", "unknown", None));
        assert_eq!((s.country, s.operator), ("DK", "unknown"));
        // An unknown MCC: nothing is a label.
        let o = obs(Some(0), vec![with_network(attempt(Sms, 0, Failed), 999, 1)]);
        let s = samples(Outcome::Unverified, Some(&o));
        assert_eq!(
            network_labels(&s, 0),
            ("unknown", "unknown", "unknown", None)
        );
        // A call-only order has no network at all.
        let s = samples(
            Outcome::Unverified,
            Some(&obs(Some(0), vec![attempt(Call, 0, Delivered)])),
        );
        assert_eq!(
            network_labels(&s, 0),
            ("unknown", "unknown", "unknown", None)
        );
        assert_eq!((s.network, s.operator), (None, "unknown"));
        let none = samples(Outcome::NotFound, None);
        assert_eq!(
            (none.network, none.operator, none.operator_name),
            (None, "unknown", None)
        );
    }

    #[test]
    fn the_orders_operator_is_its_first_attempt_with_mcc_and_mnc() {
        let mut sna = attempt(Sna, 0, Failed);
        sna.mcc = Some(234); // no MNC
        let o = obs(
            Some(0),
            vec![
                sna,
                with_network(attempt(Sms, 1, Failed), 234, 15),
                with_network(attempt(Sms, 2, Delivered), 234, 10),
            ],
        );
        let s = samples(Outcome::Verified, Some(&o));
        assert_eq!(network_labels(&s, 0), ("234", "unknown", "unknown", None));
        assert_eq!(network_labels(&s, 2), ("234", "10", "o2", Some("O2")));
        assert_eq!(
            (s.network, s.operator, s.operator_name),
            (Some((234, 15)), "vodafone", Some("Vodafone"))
        );
        // The first attempt with both decides, even when the table lacks it.
        let o = obs(
            Some(0),
            vec![
                with_network(attempt(Sms, 0, Failed), 234, 997),
                with_network(attempt(Sms, 1, Delivered), 234, 15),
            ],
        );
        let s = samples(Outcome::Verified, Some(&o));
        assert_eq!((s.network, s.operator), (Some((234, 997)), "unknown"));
        assert_eq!(s.attempts[1].operator, "vodafone");
    }
}

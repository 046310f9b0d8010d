//! Per-country behaviour of the simulated provider: networks, prices, delivery and
//! user-behaviour distributions.
//!
//! The numbers are plausible, not measured: they exist so that dashboards built on the
//! exporter show countries that differ from each other (India is cheap and slow-ish,
//! Nigeria loses messages, the UK delivers fast and dear, ...). Every MCC/MNC pair below
//! is a row of the repository's `data/mcc-mnc.csv` whose integer MNC is unambiguous
//! within its MCC, because the record renders MNCs as integers.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A delivery channel of the OTP flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Call,
    Sna,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Call => "call",
            Channel::Sna => "sna",
        }
    }

    /// Parses a channel name as the send endpoint accepts it.
    pub fn parse(text: &str) -> Option<Channel> {
        match text.trim().to_ascii_lowercase().as_str() {
            "sms" => Some(Channel::Sms),
            "call" | "voice" => Some(Channel::Call),
            "sna" => Some(Channel::Sna),
            _ => None,
        }
    }

    /// The record's `flowId` of a flow that starts on this channel.
    pub fn flow_id(self) -> u8 {
        match self {
            Channel::Sms => 1,
            Channel::Call => 2,
            Channel::Sna => 3,
        }
    }
}

/// A mobile network (MCC, MNC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub mcc: u16,
    pub mnc: u16,
}

const fn net(mcc: u16, mnc: u16) -> Network {
    Network { mcc, mnc }
}

/// A delay distribution in milliseconds (unscaled): most draws are uniform in
/// `[min, typical]`, a `tail_share` of them uniform in `[typical, tail]`, so that
/// latency histograms get the long tail real carriers have.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delay {
    pub min_ms: u32,
    pub typical_ms: u32,
    pub tail_ms: u32,
    pub tail_share: f64,
}

const fn delay(min_ms: u32, typical_ms: u32, tail_ms: u32, tail_share: f64) -> Delay {
    Delay {
        min_ms,
        typical_ms,
        tail_ms,
        tail_share,
    }
}

impl Delay {
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        let tail = rng.gen_bool(self.tail_share.clamp(0.0, 1.0));
        let (lo, hi) = if tail {
            (self.typical_ms, self.tail_ms)
        } else {
            (self.min_ms, self.typical_ms)
        };
        if hi <= lo {
            lo
        } else {
            rng.gen_range(lo..=hi)
        }
    }
}

/// How one destination country behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// ISO 3166-1 alpha-2, upper case (the exporter's `country` label).
    pub country: &'static str,
    /// E.164 calling code; the longest matching prefix of the receiver wins.
    pub calling_code: &'static str,
    pub networks: &'static [Network],
    /// Rendered as the SMS `sender`.
    pub sender: &'static str,
    pub sms_success: f64,
    /// Send → handset, for delivered messages.
    pub dlr_latency: Delay,
    /// Send → failure report, for failed messages.
    pub sms_fail_latency: Delay,
    /// Price of one segment in 1e-4 USD (integers keep sums exact).
    pub sms_price: u32,
    pub two_segment_share: f64,
    /// Voice rate per minute in 1e-4 USD.
    pub voice_rate: u32,
    /// Billing period `first+next` in seconds (`billPeriodstring`).
    pub bill_period: (u16, u16),
    /// Regional supplier code of voice calls (`code`).
    pub supplier_code: &'static str,
    pub call_success: f64,
    /// Ringing → answer.
    pub answer_delay: Delay,
    /// `None`: the operators do not offer silent network authentication.
    pub sna_success: Option<f64>,
    /// Share of orders whose user types the code they received …
    pub verify_share: f64,
    /// … and the share whose user types a wrong one and gives up.
    pub wrong_code_share: f64,
    /// Code received → code typed.
    pub verify_delay: Delay,
    /// Share of verified SMS orders whose DLR arrives after the verification.
    pub late_dlr_share: f64,
    /// Share of orders whose attempts stay pending forever.
    pub stuck_share: f64,
}

/// Defaults shared by the profiles; each country overrides what differs.
const BASE: Profile = Profile {
    country: "",
    calling_code: "",
    networks: &[],
    sender: "ITNIO",
    sms_success: 0.9,
    dlr_latency: delay(1_500, 6_000, 60_000, 0.08),
    sms_fail_latency: delay(1_000, 15_000, 90_000, 0.1),
    sms_price: 100,
    two_segment_share: 0.1,
    voice_rate: 300,
    bill_period: (20, 20),
    supplier_code: "661",
    call_success: 0.7,
    answer_delay: delay(3_000, 10_000, 20_000, 0.1),
    sna_success: None,
    verify_share: 0.72,
    wrong_code_share: 0.04,
    // Code received → code typed; several countries override it (p95 here about 75 s).
    verify_delay: delay(4_000, 25_000, 100_000, 0.15),
    late_dlr_share: 0.06,
    stuck_share: 0.01,
};

/// Every supported destination. Numbers of other countries are refused at send time.
pub static PROFILES: &[Profile] = &[
    Profile {
        country: "IN",
        calling_code: "91",
        networks: &[
            net(404, 10),
            net(404, 45),
            net(404, 43),
            net(405, 53),
            net(404, 34),
        ],
        sender: "ITNIOT",
        sms_success: 0.86,
        dlr_latency: delay(2_000, 8_000, 90_000, 0.1),
        sms_price: 30,
        two_segment_share: 0.15,
        voice_rate: 250,
        bill_period: (60, 60),
        supplier_code: "401",
        late_dlr_share: 0.1,
        // Users take a little longer, with a longer tail (app switches, slow
        // handsets): p95 of the delay about 80 s.
        verify_delay: delay(5_000, 25_000, 120_000, 0.12),
        ..BASE
    },
    Profile {
        country: "ID",
        calling_code: "62",
        networks: &[net(510, 10), net(510, 1), net(510, 11), net(510, 89)],
        sms_success: 0.8,
        dlr_latency: delay(3_000, 12_000, 90_000, 0.12),
        sms_price: 300,
        voice_rate: 900,
        supplier_code: "512",
        call_success: 0.65,
        sna_success: Some(0.85),
        verify_share: 0.65,
        verify_delay: delay(5_000, 28_000, 100_000, 0.12),
        ..BASE
    },
    Profile {
        country: "BR",
        calling_code: "55",
        networks: &[net(724, 5), net(724, 6), net(724, 2), net(724, 31)],
        sms_success: 0.9,
        dlr_latency: delay(1_500, 6_000, 45_000, 0.06),
        sms_price: 180,
        voice_rate: 400,
        supplier_code: "701",
        call_success: 0.75,
        sna_success: Some(0.9),
        verify_share: 0.75,
        ..BASE
    },
    Profile {
        country: "NG",
        calling_code: "234",
        networks: &[net(621, 30), net(621, 20), net(621, 50), net(621, 60)],
        sms_success: 0.7,
        dlr_latency: delay(5_000, 20_000, 150_000, 0.15),
        sms_fail_latency: delay(5_000, 30_000, 120_000, 0.2),
        sms_price: 350,
        two_segment_share: 0.2,
        voice_rate: 1_200,
        supplier_code: "234",
        call_success: 0.6,
        verify_share: 0.55,
        wrong_code_share: 0.06,
        stuck_share: 0.02,
        // The slowest users, the longest tail (p95 about 2 min).
        verify_delay: delay(8_000, 35_000, 150_000, 0.2),
        ..BASE
    },
    Profile {
        country: "PH",
        calling_code: "63",
        networks: &[net(515, 2), net(515, 3), net(515, 5)],
        sms_success: 0.85,
        dlr_latency: delay(3_000, 10_000, 80_000, 0.1),
        sms_price: 150,
        voice_rate: 1_100,
        supplier_code: "515",
        call_success: 0.6,
        verify_share: 0.7,
        ..BASE
    },
    Profile {
        country: "US",
        calling_code: "1",
        networks: &[net(310, 260), net(310, 410), net(310, 590)],
        sender: "88001",
        sms_success: 0.95,
        dlr_latency: delay(1_000, 4_000, 30_000, 0.05),
        sms_price: 80,
        voice_rate: 130,
        bill_period: (6, 6),
        supplier_code: "310",
        call_success: 0.8,
        sna_success: Some(0.92),
        verify_share: 0.8,
        late_dlr_share: 0.04,
        stuck_share: 0.005,
        // Autofill of SMS codes: most users are quick.
        verify_delay: delay(3_000, 15_000, 60_000, 0.08),
        ..BASE
    },
    Profile {
        // Guam numbers (+1 671) ride on MCC 310 networks that are Guam's, not the US's:
        // the exporter must look up (MCC, MNC), not the MCC alone.
        country: "GU",
        calling_code: "1671",
        networks: &[net(310, 370), net(310, 140)],
        sms_success: 0.9,
        sms_price: 300,
        voice_rate: 500,
        supplier_code: "671",
        ..BASE
    },
    Profile {
        country: "GB",
        calling_code: "44",
        networks: &[net(234, 10), net(234, 15), net(234, 20), net(234, 30)],
        sender: "ITNIO",
        sms_success: 0.96,
        dlr_latency: delay(1_000, 4_000, 30_000, 0.04),
        sms_price: 350,
        voice_rate: 200,
        bill_period: (60, 1),
        supplier_code: "234",
        call_success: 0.8,
        sna_success: Some(0.93),
        verify_share: 0.8,
        late_dlr_share: 0.03,
        stuck_share: 0.005,
        verify_delay: delay(3_000, 15_000, 60_000, 0.08),
        ..BASE
    },
    Profile {
        country: "MX",
        calling_code: "52",
        networks: &[net(334, 20), net(334, 30), net(334, 50)],
        sms_success: 0.88,
        dlr_latency: delay(2_000, 8_000, 60_000, 0.08),
        sms_price: 200,
        voice_rate: 300,
        supplier_code: "334",
        sna_success: Some(0.88),
        ..BASE
    },
    Profile {
        country: "VN",
        calling_code: "84",
        networks: &[net(452, 4), net(452, 1), net(452, 2)],
        sms_success: 0.82,
        dlr_latency: delay(3_000, 12_000, 90_000, 0.12),
        sms_price: 320,
        voice_rate: 1_000,
        supplier_code: "452",
        call_success: 0.6,
        verify_share: 0.68,
        ..BASE
    },
    Profile {
        country: "CN",
        calling_code: "86",
        networks: &[net(460, 0), net(460, 1), net(460, 3)],
        sender: "",
        sms_success: 0.93,
        dlr_latency: delay(1_000, 5_000, 40_000, 0.05),
        sms_price: 40,
        voice_rate: 400,
        bill_period: (60, 60),
        supplier_code: "460",
        call_success: 0.75,
        verify_share: 0.76,
        ..BASE
    },
];

/// The receiver as the provider stores it (`oriReceiver`): digits only, without `+`
/// or an international `00` prefix. `None` for text that is not a phone number.
pub fn normalize_receiver(to: &str) -> Option<String> {
    let trimmed = to.trim();
    let without_plus = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let digits: String = without_plus
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = match digits.strip_prefix("00") {
        Some(rest) if !trimmed.starts_with('+') => rest.to_string(),
        _ => digits,
    };
    (7..=15).contains(&digits.len()).then_some(digits)
}

/// The profile of a normalized receiver: longest calling-code prefix.
pub fn profile_for_receiver(digits: &str) -> Option<&'static Profile> {
    PROFILES
        .iter()
        .filter(|p| digits.starts_with(p.calling_code))
        .max_by_key(|p| p.calling_code.len())
}

/// The profile of an ISO country code (any case).
pub fn profile_for_country(country: &str) -> Option<&'static Profile> {
    PROFILES
        .iter()
        .find(|p| p.country.eq_ignore_ascii_case(country.trim()))
}

/// Comma-separated list of supported countries, for error messages.
pub fn supported_countries() -> String {
    PROFILES
        .iter()
        .map(|p| format!("{} (+{})", p.country, p.calling_code))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn receivers_map_to_countries_by_longest_prefix() {
        let country = |to: &str| {
            normalize_receiver(to)
                .and_then(|d| profile_for_receiver(&d))
                .map(|p| p.country)
        };
        assert_eq!(country("+91 98563 21412"), Some("IN"));
        assert_eq!(country("0091856321412"), Some("IN"));
        assert_eq!(country("14155550100"), Some("US"));
        assert_eq!(country("+1 671 555 0100"), Some("GU"));
        assert_eq!(country("+2348031234567"), Some("NG"));
        assert_eq!(country("+33612345678"), None, "France is not simulated");
        assert_eq!(normalize_receiver("call me"), None);
        assert_eq!(normalize_receiver("+12"), None);
    }

    #[test]
    fn profiles_are_sane() {
        for p in PROFILES {
            assert!(!p.networks.is_empty(), "{}", p.country);
            assert_eq!(p.country.len(), 2);
            for share in [
                p.sms_success,
                p.call_success,
                p.verify_share + p.wrong_code_share,
                p.late_dlr_share,
                p.stuck_share,
                p.two_segment_share,
            ] {
                assert!((0.0..=1.0).contains(&share), "{}", p.country);
            }
            assert!(p.bill_period.0 > 0 && p.bill_period.1 > 0);
        }
    }

    /// Every simulated network is a row of the repository's MCC/MNC table, in the
    /// profile's country. The MNC is compared as an integer, the way the record
    /// renders it, so every row it could be read as must agree on the country.
    #[test]
    fn networks_exist_in_the_shared_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mcc-mnc.csv");
        let table = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut lines = table.lines();
        assert_eq!(
            lines.next(),
            Some("mcc,mnc,iso,calling_code,operator"),
            "{} has another header",
            path.display()
        );
        let rows: Vec<(u16, u16, &str)> = lines
            .map(|line| {
                let cols: Vec<&str> = line.split(',').collect();
                let parsed = match cols.as_slice() {
                    [mcc, mnc, iso, _, _] => mcc
                        .parse()
                        .ok()
                        .zip(mnc.parse().ok())
                        .map(|(a, b)| (a, b, *iso)),
                    _ => None,
                };
                parsed.unwrap_or_else(|| panic!("{}: bad row {line:?}", path.display()))
            })
            .collect();
        assert!(
            rows.len() > 1000,
            "{} has {} rows",
            path.display(),
            rows.len()
        );
        for p in PROFILES {
            for n in p.networks {
                let countries: Vec<&str> = rows
                    .iter()
                    .filter(|(mcc, mnc, _)| *mcc == n.mcc && *mnc == n.mnc)
                    .map(|(_, _, c)| *c)
                    .collect();
                assert!(
                    !countries.is_empty() && countries.iter().all(|c| *c == p.country),
                    "{} {}-{} maps to {:?}",
                    p.country,
                    n.mcc,
                    n.mnc,
                    countries
                );
            }
        }
    }

    /// The delays the exporter learns per country differ per country and have a long
    /// tail, so its estimates meet real variance.
    #[test]
    fn delays_differ_per_country_and_have_a_tail() {
        let distinct = |f: &dyn Fn(&Profile) -> Delay| {
            let mut seen: Vec<Delay> = Vec::new();
            for p in PROFILES {
                let d = f(p);
                assert!(
                    d.tail_share > 0.0 && d.tail_ms >= 3 * d.typical_ms,
                    "{}: {d:?} has no long tail",
                    p.country
                );
                if !seen.contains(&d) {
                    seen.push(d);
                }
            }
            seen.len()
        };
        assert!(distinct(&|p| p.dlr_latency) >= 5);
        assert!(distinct(&|p| p.verify_delay) >= 4);
    }

    #[test]
    fn delays_stay_in_range() {
        let mut rng = StdRng::seed_from_u64(7);
        let d = delay(10, 20, 100, 0.5);
        for _ in 0..1000 {
            let v = d.sample(&mut rng);
            assert!((10..=100).contains(&v));
        }
        assert_eq!(delay(5, 5, 5, 0.0).sample(&mut rng), 5);
    }
}

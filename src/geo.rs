//! Country resolution: (MCC, MNC) → ISO 3166-1 alpha-2, and phone number → country by
//! the longest calling-code prefix. The table (`data/mcc-mnc.csv`) is derived from
//! musalbas/mcc-mnc-table (MIT, notice in `data/LICENSE-mcc-mnc`) by
//! `scripts/derive-mcc-table.py`, and embedded in the binary.

use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("../data/mcc-mnc.csv");

/// Longest calling code in the table ("1671", Guam).
const MAX_CODE_DIGITS: usize = 4;

struct Geo {
    /// (mcc, mnc as integer) → country; `None` when the integer MNC is ambiguous
    /// across countries (the provider sends MNCs as integers, so "01" and "001" meet).
    networks: HashMap<(u16, u16), Option<&'static str>>,
    /// MCC → the country with the most networks under it.
    mcc_country: HashMap<u16, &'static str>,
    /// Calling code → the country with the most networks using it.
    calling_codes: HashMap<&'static str, &'static str>,
    skipped_rows: usize,
}

fn geo() -> &'static Geo {
    static GEO: OnceLock<Geo> = OnceLock::new();
    GEO.get_or_init(|| {
        let geo = build(TABLE);
        if geo.skipped_rows > 0 {
            tracing::warn!(
                rows = geo.skipped_rows,
                "rows of the embedded MCC/MNC table could not be read"
            );
        }
        geo
    })
}

fn build(table: &'static str) -> Geo {
    let mut networks: HashMap<(u16, u16), Option<&'static str>> = HashMap::new();
    let mut mcc_rows: HashMap<u16, HashMap<&'static str, usize>> = HashMap::new();
    let mut code_rows: HashMap<&'static str, HashMap<&'static str, usize>> = HashMap::new();
    let mut skipped_rows = 0;
    for line in table.lines().skip(1) {
        let fields: Vec<&'static str> = line.split(',').collect();
        let parsed = match fields.as_slice() {
            [mcc, mnc, iso, code] if iso.len() == 2 => mcc
                .parse::<u16>()
                .ok()
                .zip(mnc.parse::<u16>().ok())
                .map(|(m, n)| (m, n, *iso, *code)),
            _ => None,
        };
        let Some((mcc, mnc, iso, code)) = parsed else {
            skipped_rows += 1;
            continue;
        };
        networks
            .entry((mcc, mnc))
            .and_modify(|known| {
                if *known != Some(iso) {
                    *known = None;
                }
            })
            .or_insert(Some(iso));
        *mcc_rows.entry(mcc).or_default().entry(iso).or_default() += 1;
        if !code.is_empty() {
            *code_rows.entry(code).or_default().entry(iso).or_default() += 1;
        }
    }
    Geo {
        networks,
        mcc_country: majority(mcc_rows),
        calling_codes: majority(code_rows),
        skipped_rows,
    }
}

/// The country with the most rows for each key; ties go to the alphabetically first
/// country, so the answer never depends on hash order.
fn majority<K: std::hash::Hash + Eq>(
    counts: HashMap<K, HashMap<&'static str, usize>>,
) -> HashMap<K, &'static str> {
    counts
        .into_iter()
        .filter_map(|(key, countries)| {
            countries
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
                .map(|(iso, _)| (key, iso))
        })
        .collect()
}

/// ISO 3166-1 alpha-2 (upper case) of the network (mcc, mnc). With no MNC, or a pair
/// that is unknown or ambiguous, the country with the most networks under that MCC.
/// `None` if the MCC is unknown.
pub fn country_of_network(mcc: u16, mnc: Option<u16>) -> Option<&'static str> {
    let g = geo();
    mnc.and_then(|mnc| g.networks.get(&(mcc, mnc)).copied().flatten())
        .or_else(|| g.mcc_country.get(&mcc).copied())
}

/// True when the MCC belongs to a country in the table (only such MCCs become label values).
pub fn is_known_mcc(mcc: u16) -> bool {
    geo().mcc_country.contains_key(&mcc)
}

/// Country of a phone number in international form by the longest calling-code prefix
/// (`+91…`, `0091…` and `91…` alike; spaces, dashes and brackets are ignored). A code
/// shared by several countries (`1`, `7`) resolves to the one with the most networks.
pub fn country_of_number(number: &str) -> Option<&'static str> {
    let mut digits = [0u8; MAX_CODE_DIGITS + 2];
    let mut len = 0;
    let trimmed = number.trim();
    let trimmed = trimmed.strip_prefix('+').unwrap_or(trimmed);
    for b in trimmed.bytes() {
        match b {
            b'0'..=b'9' if len < digits.len() => {
                digits[len] = b;
                len += 1;
            }
            b'0'..=b'9' => break,
            b' ' | b'-' | b'(' | b')' | b'.' => {}
            _ => return None,
        }
    }
    let mut start = 0;
    // International dialling prefix "00".
    if len >= 2 && digits[0] == b'0' && digits[1] == b'0' {
        start = 2;
    }
    let digits = std::str::from_utf8(&digits[start..len]).ok()?;
    let g = geo();
    (1..=digits.len().min(MAX_CODE_DIGITS))
        .rev()
        .find_map(|n| g.calling_codes.get(&digits[..n]).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_table_parses_completely() {
        let g = geo();
        assert_eq!(g.skipped_rows, 0);
        assert!(g.networks.len() > 2000, "{}", g.networks.len());
        assert!(g.mcc_country.len() > 200, "{}", g.mcc_country.len());
        assert!(g.calling_codes.keys().all(|c| c.len() <= MAX_CODE_DIGITS));
    }

    #[test]
    fn known_networks() {
        assert_eq!(country_of_network(404, Some(10)), Some("IN"));
        assert_eq!(country_of_network(460, Some(0)), Some("CN"));
        assert_eq!(country_of_network(460, Some(10)), Some("CN"));
        assert_eq!(country_of_network(234, Some(15)), Some("GB"));
        assert_eq!(country_of_network(310, Some(260)), Some("US"));
        assert_eq!(country_of_network(250, None), Some("RU"));
    }

    #[test]
    fn mccs_spanning_several_countries() {
        // A Guam network under 310/311, and the US majority otherwise.
        let guam: Vec<u16> = TABLE
            .lines()
            .filter(|l| l.starts_with("310,") && l.contains(",GU,"))
            .filter_map(|l| l.split(',').nth(1)?.parse().ok())
            .collect();
        assert!(!guam.is_empty());
        assert!(guam
            .iter()
            .any(|mnc| country_of_network(310, Some(*mnc)) == Some("GU")));
        assert_eq!(country_of_network(310, None), Some("US"));
        assert_eq!(country_of_network(310, Some(999)), Some("US"));
        assert_eq!(country_of_network(311, None), Some("US"));
        for mcc in [340, 362, 376, 425, 647] {
            let majority = country_of_network(mcc, None).expect("known");
            assert_eq!(
                country_of_network(mcc, None),
                Some(majority),
                "deterministic"
            );
            // Every specific pair resolves to a country of that MCC.
            for line in TABLE.lines().filter(|l| l.starts_with(&format!("{mcc},"))) {
                let f: Vec<&str> = line.split(',').collect();
                let got = country_of_network(mcc, f[1].parse().ok()).unwrap();
                assert!(TABLE
                    .lines()
                    .any(|l| l.starts_with(&format!("{mcc},")) && l.contains(&format!(",{got},"))));
            }
        }
        assert_eq!(country_of_network(425, Some(1)), Some("IL"));
        assert_eq!(country_of_network(425, Some(5)), Some("PS"));
    }

    #[test]
    fn unknown_mcc() {
        assert_eq!(country_of_network(999, Some(1)), None);
        assert_eq!(country_of_network(0, None), None);
        assert!(!is_known_mcc(999));
        assert!(!is_known_mcc(901), "international networks have no country");
        assert!(is_known_mcc(404));
    }

    #[test]
    fn longest_calling_code_prefix() {
        assert_eq!(country_of_number("16715551234"), Some("GU"));
        assert_eq!(country_of_number("18765551234"), Some("JM"));
        assert_eq!(country_of_number("12125551234"), Some("US"));
        assert_eq!(country_of_number("918563214120"), Some("IN"));
        assert_eq!(country_of_number("91856321412"), Some("IN"));
        assert_eq!(country_of_number("+44 20 7946 0000"), Some("GB"));
        assert_eq!(country_of_number("0044 20 7946 0000"), Some("GB"));
        assert_eq!(country_of_number("+86 (10) 1234-5678"), Some("CN"));
        assert_eq!(country_of_number("79161234567"), Some("RU"));
    }

    #[test]
    fn garbage_numbers() {
        assert_eq!(country_of_number(""), None);
        assert_eq!(country_of_number("+"), None);
        assert_eq!(country_of_number("abc"), None);
        assert_eq!(country_of_number("91x"), None);
        assert_eq!(country_of_number("00"), None);
    }
}

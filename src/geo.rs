//! Country resolution: (MCC, MNC) → ISO 3166-1 alpha-2, and phone number → country by
//! the longest calling-code prefix.
//!
//! The table (`data/mcc-mnc.csv`: `mcc,mnc,iso,calling_code`, one row per distinct
//! network) is derived by `scripts/derive-mcc-table.py` from musalbas/mcc-mnc-table
//! (commit 45b06a1, MIT, notice in `data/LICENSE-mcc-mnc`), embedded in the binary and
//! indexed once on first use.
//!
//! Shared keys resolve by majority: an MCC spanning several countries (310 US/Guam,
//! 340, 362, 376, 425, 647) and a calling code shared by several (`1` US/CA, `7`,
//! `262`, `599`) both go to the country with the most networks (rows) under that key,
//! ties to the alphabetically first ISO code, so the answer never depends on hash order.

use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("../data/mcc-mnc.csv");

/// E.164: at most 15 digits after the international prefix. The shortest real
/// international numbers (Niue, Saint Helena: 3-digit code + 4 digits) have 7.
const MIN_NUMBER_DIGITS: usize = 7;
const MAX_NUMBER_DIGITS: usize = 15;
/// Calling codes longer than this are not indexed (the table's longest is 4, "1671").
const MAX_CODE_DIGITS: usize = 4;

struct Geo {
    /// (mcc, mnc as integer) → country, `None` when that integer names networks in
    /// several countries (the provider sends MNCs as integers, so "050" and "50" meet).
    networks: HashMap<(u16, u16), Option<&'static str>>,
    /// MCC → majority country.
    mcc_country: HashMap<u16, &'static str>,
    /// Calling code (digits) → majority country.
    calling_codes: HashMap<&'static str, &'static str>,
}

fn geo() -> &'static Geo {
    static GEO: OnceLock<Geo> = OnceLock::new();
    GEO.get_or_init(|| build(TABLE))
}

/// One table row, or `None` if it is malformed.
fn parse_row(line: &'static str) -> Option<(u16, u16, &'static str, &'static str)> {
    let mut fields = line.split(',');
    let (mcc, mnc, iso, code) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    let valid = fields.next().is_none()
        && digits(mcc, 3..=3)
        && digits(mnc, 2..=3)
        && iso.len() == 2
        && iso.bytes().all(|b| b.is_ascii_uppercase())
        && (code.is_empty() || (digits(code, 1..=MAX_CODE_DIGITS) && !code.starts_with('0')));
    if !valid {
        return None;
    }
    Some((mcc.parse().ok()?, mnc.parse().ok()?, iso, code))
}

fn build(table: &'static str) -> Geo {
    let mut networks: HashMap<(u16, u16), Option<&'static str>> = HashMap::new();
    let mut mcc_rows: HashMap<u16, HashMap<&'static str, usize>> = HashMap::new();
    let mut code_rows: HashMap<&'static str, HashMap<&'static str, usize>> = HashMap::new();
    // A malformed row is skipped (a test keeps the embedded table free of them).
    for (mcc, mnc, iso, code) in table.lines().skip(1).filter_map(parse_row) {
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
    }
}

/// The country with the most rows for each key; ties to the alphabetically first.
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

/// ISO 3166-1 alpha-2 (upper case) of the network (mcc, mnc); with mnc None or an (mcc,mnc) pair that is unknown
/// or ambiguous, the country with the most rows for that MCC. None if the MCC is unknown.
///
/// The MNC matches by integer value ("01" and "001" are both 1); an integer naming
/// networks in several countries of the MCC counts as ambiguous.
pub fn country_of_network(mcc: u16, mnc: Option<u16>) -> Option<&'static str> {
    let g = geo();
    mnc.and_then(|mnc| g.networks.get(&(mcc, mnc)).copied().flatten())
        .or_else(|| g.mcc_country.get(&mcc).copied())
}

/// True when the MCC appears in the table (only such MCCs may become metric label values).
///
/// MCC 901 (international and satellite networks) has no country and is not in the table.
pub fn is_known_mcc(mcc: u16) -> bool {
    geo().mcc_country.contains_key(&mcc)
}

/// Country of a phone number in international form by the longest calling-code prefix
/// ("+91...", "0091...", "91..." all work; non-digits like spaces, '-' are ignored). None when no prefix matches.
///
/// Separators (space, `-`, `.`, `/`, brackets) are ignored; any other character (letters,
/// a `+` not in front), fewer than 7 or more than 15 digits make the number garbage: `None`.
/// A national number ("020 7946 0000") matches no code, since none starts with 0.
pub fn country_of_number(number: &str) -> Option<&'static str> {
    calling_code_match(number).map(|(_, country)| country)
}

/// The calling code (digits) that [`country_of_number`] matches in `number`.
pub fn calling_code_of_number(number: &str) -> Option<&'static str> {
    calling_code_match(number).map(|(code, _)| code)
}

fn calling_code_match(number: &str) -> Option<(&'static str, &'static str)> {
    let number = number.trim();
    let (plus, rest) = match number.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    // The first digits, on the stack: the "00" prefix plus the longest code.
    let mut head = [0u8; MAX_CODE_DIGITS + 2];
    let mut count = 0;
    for b in rest.bytes() {
        match b {
            b'0'..=b'9' => {
                if let Some(slot) = head.get_mut(count) {
                    *slot = b;
                }
                count += 1;
            }
            b' ' | b'\t' | b'-' | b'.' | b'/' | b'(' | b')' => {}
            _ => return None,
        }
    }
    let head = &head[..count.min(head.len())];
    // "00" is the international prefix only without a "+".
    let (head, count) = match head {
        [b'0', b'0', tail @ ..] if !plus => (tail, count - 2),
        _ => (head, count),
    };
    if !(MIN_NUMBER_DIGITS..=MAX_NUMBER_DIGITS).contains(&count) {
        return None;
    }
    let head = std::str::from_utf8(head).ok()?;
    let g = geo();
    (1..=head.len().min(MAX_CODE_DIGITS))
        .rev()
        .find_map(|n| g.calling_codes.get_key_value(head.get(..n)?))
        .map(|(code, country)| (*code, *country))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_table_parses_completely() {
        let mut lines = TABLE.lines();
        assert_eq!(lines.next(), Some("mcc,mnc,iso,calling_code"));
        let rows: Vec<&str> = lines.collect();
        let skipped: Vec<&&str> = rows.iter().filter(|l| parse_row(l).is_none()).collect();
        assert_eq!(skipped, Vec::<&&str>::new(), "malformed rows");
        assert!((2000..3000).contains(&rows.len()), "{} rows", rows.len());
        let g = geo();
        assert!(
            (200..260).contains(&g.mcc_country.len()),
            "{}",
            g.mcc_country.len()
        );
        assert!(g.networks.len() > 2000, "{}", g.networks.len());
        assert!(g.calling_codes.len() > 200, "{}", g.calling_codes.len());
    }

    #[test]
    fn malformed_rows_are_skipped_not_fatal() {
        for bad in [
            "",
            "40x,10,IN,91",
            "404,1,IN,91",
            "404,10,in,91",
            "404,10,IND,91",
            "404,10,IN,091",
            "404,10,IN,91234",
            "404,10,IN,91,x",
            "404,10",
            "4040,10,IN,91",
        ] {
            assert_eq!(parse_row(bad), None, "{bad:?}");
        }
        assert_eq!(parse_row("404,010,IN,91"), Some((404, 10, "IN", "91")));
        assert_eq!(parse_row("330,11,PR,"), Some((330, 11, "PR", "")));
        let g = build("mcc,mnc,iso,calling_code\n404,10,IN,91\n40x,10,IN,91\n\n404,11,in,91\n");
        assert_eq!(g.networks.len(), 1);
        assert_eq!(g.mcc_country.get(&404), Some(&"IN"));
    }

    #[test]
    fn known_networks() {
        assert_eq!(country_of_network(404, Some(10)), Some("IN"));
        assert_eq!(country_of_network(405, None), Some("IN"));
        assert_eq!(country_of_network(460, Some(0)), Some("CN"));
        assert_eq!(country_of_network(234, Some(15)), Some("GB"));
        assert_eq!(country_of_network(310, Some(260)), Some("US"));
        assert_eq!(country_of_network(250, None), Some("RU"));
        // Unknown MNC of a single-country MCC: that country.
        assert_eq!(country_of_network(404, Some(65535)), Some("IN"));
    }

    #[test]
    fn guam_under_us_mccs() {
        assert_eq!(country_of_network(310, Some(32)), Some("GU")); // "032"
        assert_eq!(country_of_network(310, Some(370)), Some("GU"));
        assert_eq!(country_of_network(311, Some(250)), Some("GU"));
        assert_eq!(country_of_network(310, None), Some("US"));
        assert_eq!(
            country_of_network(310, Some(999)),
            Some("US"),
            "unknown MNC"
        );
        assert_eq!(country_of_network(311, None), Some("US"));
        assert_eq!(country_of_network(311, Some(480)), Some("US"));
    }

    #[test]
    fn shared_mccs_resolve_to_the_majority_or_the_specific_network() {
        // No MNC, and an unknown MNC (998): the majority.
        for (mcc, majority) in [
            (340, "GF"),
            (362, "AN"),
            (376, "TC"),
            (425, "IL"),
            (647, "RE"),
        ] {
            assert!(is_known_mcc(mcc));
            assert_eq!(country_of_network(mcc, None), Some(majority), "{mcc}");
            assert_eq!(country_of_network(mcc, Some(998)), Some(majority), "{mcc}");
        }
        for (mcc, mnc, country) in [
            (340, 1, "GF"),
            (340, 8, "GP"),
            (340, 10, "GP"),
            (340, 12, "MQ"),
            // AN: the source keeps the withdrawn Netherlands Antilles code.
            (362, 51, "AN"),
            (362, 69, "CW"),
            (362, 95, "CW"),
            // 999 is "Fix Line" of both CW and BQ: ambiguous, the majority.
            (362, 999, "AN"),
            (376, 350, "TC"),
            (376, 352, "TC"),
            // "050" (TC) and "50" (VI) are both 50: ambiguous, the majority.
            (376, 50, "TC"),
            (425, 1, "IL"),
            (425, 5, "PS"),
            (425, 6, "PS"),
            (647, 0, "RE"),
            (647, 1, "YT"),
            // 10 is SFR in both Réunion and Mayotte: ambiguous, the majority.
            (647, 10, "RE"),
        ] {
            assert_eq!(
                country_of_network(mcc, Some(mnc)),
                Some(country),
                "{mcc}/{mnc}"
            );
        }
    }

    #[test]
    fn unknown_mccs() {
        assert_eq!(country_of_network(999, Some(1)), None);
        assert_eq!(country_of_network(0, None), None);
        assert_eq!(country_of_network(u16::MAX, Some(u16::MAX)), None);
        assert_eq!(
            country_of_network(901, Some(14)),
            None,
            "satellite: no country"
        );
        assert!(!is_known_mcc(999));
        assert!(!is_known_mcc(901));
        assert!(!is_known_mcc(0));
        assert!(is_known_mcc(404));
        assert!(is_known_mcc(310));
        assert!(is_known_mcc(311));
    }

    #[test]
    fn longest_calling_code_prefix() {
        assert_eq!(country_of_number("16715551234"), Some("GU"));
        assert_eq!(country_of_number("+1 (671) 555-1234"), Some("GU"));
        assert_eq!(country_of_number("18765551234"), Some("JM"));
        assert_eq!(country_of_number("12125551234"), Some("US"));
        assert_eq!(country_of_number("918563214120"), Some("IN"));
        assert_eq!(country_of_number("91856321412"), Some("IN"));
        assert_eq!(country_of_number("+91 85632 14120"), Some("IN"));
        assert_eq!(country_of_number("009185632 14120"), Some("IN"));
        assert_eq!(country_of_number("+44 20 7946 0000"), Some("GB"));
        assert_eq!(country_of_number("0044 20 7946 0000"), Some("GB"));
        assert_eq!(country_of_number("00442079460000"), Some("GB"));
        assert_eq!(country_of_number("+86 (10) 1234-5678"), Some("CN"));
        assert_eq!(country_of_number(" +33.6.12.34.56.78 "), Some("FR"));
    }

    #[test]
    fn shared_calling_codes_resolve_to_the_majority() {
        // "1": US (most networks) over CA; Puerto Rico has no code in the source.
        assert_eq!(country_of_number("14165551234"), Some("US"));
        assert_eq!(country_of_number("17875551234"), Some("US"));
        // Russia is listed as "79" (its mobiles); the rest of "7" is KZ (4) over GE (3).
        assert_eq!(country_of_number("79161234567"), Some("RU"));
        assert_eq!(country_of_number("77011234567"), Some("KZ"));
        assert_eq!(country_of_number("262262123456"), Some("RE"));
        assert_eq!(country_of_number("5999123456"), Some("AN"));
    }

    #[test]
    fn numbers_without_a_country() {
        // No code is a prefix of 211 (South Sudan has no code in the source).
        assert_eq!(country_of_number("211912345678"), None);
        // National format: codes never start with 0.
        assert_eq!(country_of_number("020 7946 0000"), None);
        assert_eq!(country_of_number("08563214120"), None);
    }

    #[test]
    fn garbage_numbers() {
        for garbage in [
            "",
            " ",
            "+",
            "00",
            "abc",
            "91x",
            "9185632141x",
            "+91 8563 abc 120",
            "++918563214120",
            "91+8563214120",
            "123",
            "+44 20",
            "0044 123",
            "1234567890123456",
            "+44 20 7946 0000 0000 0000 0000",
            "٩١٨٥٦٣٢١٤١٢٠",
            "918563214120\0",
            "+00918563214120",
        ] {
            assert_eq!(country_of_number(garbage), None, "{garbage:?}");
        }
    }
}

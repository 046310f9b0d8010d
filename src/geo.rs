//! Country and operator resolution: (MCC, MNC) → ISO 3166-1 alpha-2 and operator
//! (network) name, and phone number → country by the longest calling-code prefix.
//!
//! The table (`data/mcc-mnc.csv`: `mcc,mnc,iso,calling_code,operator`, one row per
//! distinct network) is derived by `scripts/derive-mcc-table.py` from
//! musalbas/mcc-mnc-table (commit 45b06a1, MIT, notice in `data/LICENSE-mcc-mnc`),
//! embedded in the binary and indexed once on first use.
//!
//! Shared keys resolve by majority: an MCC spanning several countries (310 US/Guam,
//! 340, 362, 376, 425, 647) and a calling code shared by several (`1` US/CA, `7`,
//! `262`, `599`) both go to the country with the most networks (rows) under that key,
//! ties to the alphabetically first ISO code, so the answer never depends on hash order.
//!
//! Operators are looked up by (MCC, MNC as an integer), like countries. Where one
//! integer is several rows ("050" and "50" of 334 or 376, "00" and "000" of 740,
//! 10 of 647 in RE and YT) the first row of the file names the operator and the MNC's
//! digits: deterministic, and the generator prints each such case.

// foldhash (hashbrown's default) instead of SipHash: the poll path looks networks up
// several times per record, and the keys are the table's, not an attacker's.
use hashbrown::HashMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("../data/mcc-mnc.csv");
/// The table's header, which `parse_row` expects (a test keeps the file in step).
#[cfg(test)]
const HEADER: &str = "mcc,mnc,iso,calling_code,operator";

/// E.164: at most 15 digits after the international prefix. The shortest real
/// international numbers (Niue, Saint Helena: 3-digit code + 4 digits) have 7.
const MIN_NUMBER_DIGITS: usize = 7;
const MAX_NUMBER_DIGITS: usize = 15;
/// Calling codes longer than this are not indexed (the table's longest is 4, "1671").
const MAX_CODE_DIGITS: usize = 4;
/// Longest operator label, in chars: long enough for every operator's distinctive
/// words, short enough for legends and tables.
pub const MAX_OPERATOR_LABEL_CHARS: usize = 32;
/// The `operator` label of an attempt or order whose operator the table cannot name.
pub const UNKNOWN_OPERATOR: &str = "unknown";

/// A mobile network's operator as the table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    /// Display name, as in the table ("Vodafone Idea").
    pub name: &'static str,
    /// Metric label value: `operator_label(name)` ("vodafone_idea").
    pub label: &'static str,
}

/// A network row of the table, found by (MCC, MNC as an integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The MNC's digits as the table writes them ("01", "045"): the `mnc` label.
    pub mnc: &'static str,
    /// `None` when the table has no operator name for the network.
    pub operator: Option<Operator>,
}

struct Geo {
    /// (mcc, mnc as integer) → country, `None` when that integer names networks in
    /// several countries (the provider sends MNCs as integers, so "050" and "50" meet).
    networks: HashMap<(u16, u16), Option<&'static str>>,
    /// (mcc, mnc as integer) → the first row's MNC digits and operator.
    operators: HashMap<(u16, u16), Network>,
    /// MCC → majority country.
    mcc_country: HashMap<u16, &'static str>,
    /// Calling code (digits) → majority country.
    calling_codes: HashMap<&'static str, &'static str>,
}

fn geo() -> &'static Geo {
    static GEO: OnceLock<Geo> = OnceLock::new();
    GEO.get_or_init(|| build(TABLE))
}

/// One table row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    mcc: u16,
    mnc: u16,
    /// The MNC's digits as written.
    mnc_digits: &'static str,
    iso: &'static str,
    calling_code: &'static str,
    /// Empty when the source names no operator.
    operator: &'static str,
}

/// One table row, or `None` if it is malformed.
fn parse_row(line: &'static str) -> Option<Row> {
    let mut fields = line.split(',');
    let (mcc, mnc, iso, code, operator) = (
        fields.next()?,
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
        && (code.is_empty() || (digits(code, 1..=MAX_CODE_DIGITS) && !code.starts_with('0')))
        && operator.trim() == operator
        && !operator.contains('"');
    if !valid {
        return None;
    }
    Some(Row {
        mcc: mcc.parse().ok()?,
        mnc: mnc.parse().ok()?,
        mnc_digits: mnc,
        iso,
        calling_code: code,
        operator,
    })
}

/// The metric label value of an operator name: lower case, every run of characters
/// that are not alphanumeric (Unicode) becomes one `_`, no `_` at either end, at most
/// `MAX_OPERATOR_LABEL_CHARS` chars, `unknown` when nothing is left.
///
/// "Vodafone Idea" → `vodafone_idea`, "T-Mobile US" → `t_mobile_us`, "Movistar/Telefonica"
/// → `movistar_telefonica`. Labels stay readable and stable across table updates that
/// only change spacing or punctuation; distinct names may share a label, which then
/// adds their series together (the test of the table counts how many do).
pub fn operator_label(name: &str) -> String {
    let mut label = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if gap && !label.is_empty() {
                label.push('_');
            }
            gap = false;
            label.push(c);
        } else {
            gap = true;
        }
    }
    // Truncation may end on a run that had been followed by more: trim again after it.
    let label: String = label.chars().take(MAX_OPERATOR_LABEL_CHARS).collect();
    let label = label.trim_end_matches('_');
    if label.is_empty() {
        UNKNOWN_OPERATOR.to_string()
    } else {
        label.to_string()
    }
}

fn build(table: &'static str) -> Geo {
    let mut networks: HashMap<(u16, u16), Option<&'static str>> = HashMap::new();
    let mut operators: HashMap<(u16, u16), Network> = HashMap::new();
    let mut mcc_rows: HashMap<u16, HashMap<&'static str, usize>> = HashMap::new();
    let mut code_rows: HashMap<&'static str, HashMap<&'static str, usize>> = HashMap::new();
    // Labels are computed once per distinct name and live as long as the process (the
    // table is static), so samples can carry them as `&'static str` without allocating.
    let mut labels: HashMap<&'static str, &'static str> = HashMap::new();
    // A malformed row is skipped (a test keeps the embedded table free of them).
    for row in table.lines().skip(1).filter_map(parse_row) {
        let key = (row.mcc, row.mnc);
        networks
            .entry(key)
            .and_modify(|known| {
                if *known != Some(row.iso) {
                    *known = None;
                }
            })
            .or_insert(Some(row.iso));
        // First row wins (the file is sorted, so this never depends on hash order).
        operators.entry(key).or_insert_with(|| Network {
            mnc: row.mnc_digits,
            operator: (!row.operator.is_empty()).then(|| Operator {
                name: row.operator,
                label: labels
                    .entry(row.operator)
                    .or_insert_with(|| Box::leak(operator_label(row.operator).into_boxed_str())),
            }),
        });
        *mcc_rows
            .entry(row.mcc)
            .or_default()
            .entry(row.iso)
            .or_default() += 1;
        if !row.calling_code.is_empty() {
            *code_rows
                .entry(row.calling_code)
                .or_default()
                .entry(row.iso)
                .or_default() += 1;
        }
    }
    Geo {
        networks,
        operators,
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

/// The table's row for the network (mcc, mnc), matching the MNC by integer value
/// ("01" and "001" are both 1; where both are rows, the first in the file). `None`
/// when the table has no such network.
pub fn network(mcc: u16, mnc: u16) -> Option<Network> {
    geo().operators.get(&(mcc, mnc)).copied()
}

/// The operator of the network (mcc, mnc), as [`network`] finds it. `None` when the
/// network is not in the table or the table names no operator for it.
pub fn operator(mcc: u16, mnc: u16) -> Option<Operator> {
    network(mcc, mnc).and_then(|n| n.operator)
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
        assert_eq!(lines.next(), Some(HEADER));
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
            "40x,10,IN,91,",
            "404,1,IN,91,",
            "404,10,in,91,",
            "404,10,IND,91,",
            "404,10,IN,091,",
            "404,10,IN,91234,",
            "404,10,IN,91,x,y",
            "404,10,IN,91",
            "404,10,IN,91, Vodafone",
            "404,10,IN,91,\"Vodafone\"",
            "404,10",
            "4040,10,IN,91,",
        ] {
            assert_eq!(parse_row(bad), None, "{bad:?}");
        }
        let row = parse_row("404,010,IN,91,Vodafone Idea").unwrap();
        assert_eq!(
            (
                row.mcc,
                row.mnc,
                row.mnc_digits,
                row.iso,
                row.calling_code,
                row.operator
            ),
            (404, 10, "010", "IN", "91", "Vodafone Idea")
        );
        let row = parse_row("330,11,PR,,").unwrap();
        assert_eq!((row.calling_code, row.operator), ("", ""));
        let g = build(
            "mcc,mnc,iso,calling_code,operator\n404,10,IN,91,A\n40x,10,IN,91,B\n\n404,11,in,91,C\n",
        );
        assert_eq!(g.networks.len(), 1);
        assert_eq!(g.operators.len(), 1);
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

    #[test]
    fn operator_labels_are_normalised() {
        for (name, label) in [
            ("Vodafone Idea", "vodafone_idea"),
            ("T-Mobile US", "t_mobile_us"),
            ("Movistar/Telefonica", "movistar_telefonica"),
            ("AT&T/IUSACell", "at_t_iusacell"),
            ("+4U Mobile", "4u_mobile"),
            ("H3G Ltd.", "h3g_ltd"),
            ("  Airtel  ", "airtel"),
            (
                "interactive digital media / IDM",
                "interactive_digital_media_idm",
            ),
            ("Bundesamt für Ausrüstung", "bundesamt_für_ausrüstung"),
            ("Jio 4G", "jio_4g"),
            ("", "unknown"),
            ("---", "unknown"),
            ("/", "unknown"),
        ] {
            assert_eq!(operator_label(name), label, "{name:?}");
        }
        // 32 chars at most, cut on a char boundary, never ending in '_'.
        let long = operator_label("Bundesamt für Ausrüstung Informationstechnik und Nutzung");
        assert_eq!(long, "bundesamt_für_ausrüstung_informa");
        assert_eq!(long.chars().count(), MAX_OPERATOR_LABEL_CHARS);
        assert_eq!(
            operator_label("Telecommunications (Bermuda & West Indies) Ltd"),
            "telecommunications_bermuda_west"
        );
        assert_eq!(operator_label(&"ü".repeat(40)), "ü".repeat(32));
        assert_eq!(
            operator_label("abcdefghijklmnopqrstuvwxyz01234 5"),
            "abcdefghijklmnopqrstuvwxyz01234"
        );
    }

    #[test]
    fn operators_of_known_networks() {
        let op = |mcc, mnc| operator(mcc, mnc).map(|o| (o.name, o.label));
        // The source's names, however dated (India's are per circle).
        assert_eq!(
            op(404, 10),
            Some((
                "Bharti Airtel Limited (Delhi)",
                "bharti_airtel_limited_delhi"
            ))
        );
        assert_eq!(
            op(404, 24),
            Some(("Idea Cellular Ltd.", "idea_cellular_ltd"))
        );
        assert_eq!(op(234, 15), Some(("Vodafone", "vodafone")));
        assert_eq!(op(310, 260), Some(("T-Mobile", "t_mobile")));
        assert_eq!(op(460, 0), Some(("China Mobile GSM", "china_mobile_gsm")));
        // "01" and "1" are the same network.
        assert_eq!(network(202, 1).map(|n| n.mnc), Some("01"));
        assert_eq!(op(202, 1), Some(("Cosmote", "cosmote")));
        // Three digits as written, with the leading zero.
        assert_eq!(network(310, 32).map(|n| n.mnc), Some("032"));
    }

    #[test]
    fn one_integer_of_several_rows_takes_the_first_row() {
        // 740/00 MOVISTAR/OteCel and 740/000 "Failed Call(s)": both 0.
        let n = network(740, 0).unwrap();
        assert_eq!(n.mnc, "00");
        assert_eq!(n.operator.map(|o| o.label), Some("movistar_otecel"));
        // 376/050 (TC) and 376/50 (VI): the country is ambiguous (majority TC), the
        // operator the first row's.
        let n = network(376, 50).unwrap();
        assert_eq!(
            (n.mnc, n.operator.map(|o| o.name)),
            ("050", Some("Digicel TCI Ltd"))
        );
        // Synthetic: the first row in the file wins, whatever the name.
        let g = build("h\n404,010,IN,91,Zeta\n404,10,IN,91,Alpha\n404,11,IN,91,\n");
        let n = g.operators[&(404, 10)];
        assert_eq!((n.mnc, n.operator.map(|o| o.label)), ("010", Some("zeta")));
        assert_eq!(
            g.operators[&(404, 11)].operator,
            None,
            "no name: no operator"
        );
    }

    #[test]
    fn unknown_operators() {
        // MCC known, MNC not in the table.
        assert_eq!(network(404, 997), None);
        assert_eq!(operator(404, 997), None);
        assert_eq!(operator(999, 1), None);
        assert_eq!(operator(901, 14), None, "satellite: dropped from the table");
        // In the table, but the source names no operator: the MNC is known.
        let n = network(238, 5).unwrap();
        assert_eq!((n.mnc, n.operator), ("05", None));
        assert_eq!(operator(238, 5), None);
    }

    /// The bound the README quotes ("operator cardinality"): the numbers below are the
    /// table's; when the table changes, this test says what to write there.
    #[test]
    fn operator_labels_are_bounded_by_the_table() {
        use std::collections::HashSet;
        let g = geo();
        let names: HashSet<&str> = g
            .operators
            .values()
            .filter_map(|n| n.operator.map(|o| o.name))
            .collect();
        let mut labels: HashSet<&str> = g
            .operators
            .values()
            .filter_map(|n| n.operator.map(|o| o.label))
            .collect();
        labels.insert(UNKNOWN_OPERATOR);
        for l in &labels {
            assert!(
                !l.is_empty()
                    && l.chars().count() <= MAX_OPERATOR_LABEL_CHARS
                    && !l.starts_with('_')
                    && !l.ends_with('_'),
                "{l:?}"
            );
        }
        // Names differing only in case or punctuation share a label ("AirTel",
        // "Airtel"): never more labels than names.
        assert!(labels.len() <= names.len() + 1);
        // Worst case of otp_operator_attempts_total's (country, mcc, mnc, operator):
        // each network of the table is one tuple; a known MCC with an MNC the table
        // lacks is (majority country, mcc, unknown, unknown); no known MCC leaves the
        // receiver's country (or unknown) with unknown mcc/mnc/operator.
        let receiver_countries: HashSet<&str> = g.calling_codes.values().copied().collect();
        let place_tuples = g.operators.len() + g.mcc_country.len() + receiver_countries.len() + 1;
        // Per country, the operator label values its series can take (plus unknown).
        let mut per_country: HashMap<&str, HashSet<&str>> = HashMap::new();
        for ((mcc, mnc), n) in &g.operators {
            if let (Some(country), Some(o)) = (country_of_network(*mcc, Some(*mnc)), n.operator) {
                per_country.entry(country).or_default().insert(o.label);
            }
        }
        let widest = per_country
            .iter()
            .map(|(country, l)| (l.len(), *country))
            .max()
            .unwrap_or_default();
        // Worst case of the (country, operator) of otp_operator_delivery_latency_seconds
        // (and, per app, otp_operator_cost_usd_total): the place tuples above without mcc/mnc.
        let mut country_operator: HashSet<(&str, &str)> = HashSet::new();
        for ((mcc, mnc), n) in &g.operators {
            let country = country_of_network(*mcc, Some(*mnc)).unwrap_or("unknown");
            country_operator.insert((country, n.operator.map_or(UNKNOWN_OPERATOR, |o| o.label)));
        }
        for country in g.mcc_country.values().chain(receiver_countries.iter()) {
            country_operator.insert((country, UNKNOWN_OPERATOR));
        }
        country_operator.insert(("unknown", UNKNOWN_OPERATOR));
        assert_eq!(
            country_operator.len(),
            1701,
            "(country, operator) tuples: update the README's operator cardinality paragraph"
        );
        let measured = (
            names.len(),
            labels.len(),
            g.operators.len(),
            place_tuples,
            place_tuples * 3 * 3, // channels x results
            widest,
        );
        assert_eq!(
            measured,
            (1113, 1092, 2118, 2566, 23094, (87, "US")),
            "(names, labels, networks, place tuples, attempt series, widest country): \
             update the README's operator cardinality paragraph"
        );
    }
}

//! Times in and out of the API: the forms a time parameter takes, RFC 3339 out.

use chrono::{DateTime, SecondsFormat};

/// A time parameter: RFC 3339, a duration back from now (`15m`, `2h`, `7d`, `90s`),
/// or Unix milliseconds (what Grafana's `${__from}` gives).
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .map_err(|_| "Unix milliseconds out of range".to_string());
    }
    if let Some(unit) = text.chars().last().filter(char::is_ascii_alphabetic) {
        let digits = &text[..text.len() - unit.len_utf8()];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let per: i64 = match unit {
                's' => 1_000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                'w' => 7 * 86_400_000,
                _ => return Err(TIME_FORMS.to_string()),
            };
            let n: i64 = digits.parse().map_err(|_| TIME_FORMS.to_string())?;
            return n
                .checked_mul(per)
                .map(|back| now_ms.saturating_sub(back))
                .ok_or_else(|| TIME_FORMS.to_string());
        }
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| TIME_FORMS.to_string())
}

const TIME_FORMS: &str =
    "a time as RFC 3339 (2026-11-30T16:45:00Z), back from now (15m, 2h, 7d) or Unix milliseconds";

/// RFC 3339 in UTC with milliseconds, as every time in the API.
pub fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Milliseconds as the API's seconds.
pub(super) fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn times_are_rfc3339_relative_or_unix_ms() {
        assert_eq!(parse_time("15m", NOW), Ok(NOW - 900_000));
        assert_eq!(parse_time("2h", NOW), Ok(NOW - 7_200_000));
        assert_eq!(parse_time("7d", NOW), Ok(NOW - 7 * 86_400_000));
        assert_eq!(parse_time("1700000000123", NOW), Ok(1_700_000_000_123));
        assert_eq!(
            parse_time("2026-11-30T16:45:01.123Z", NOW),
            Ok(1_796_057_101_123)
        );
        assert_eq!(
            parse_time("2026-11-30T17:45:01.123+01:00", NOW),
            Ok(1_796_057_101_123)
        );
        for bad in [
            "",
            "15x",
            "m",
            "-5m",
            "yesterday",
            "2026-11-30",
            "99999999999999999999",
        ] {
            assert!(parse_time(bad, NOW).is_err(), "{bad:?}");
        }
        assert_eq!(rfc3339(1_796_057_101_123), "2026-11-30T16:45:01.123Z");
    }
}

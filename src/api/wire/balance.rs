//! The balance endpoint's answer (`GET /sms/getBalance`): the envelope's `status` and
//! `reason` as every answer has them, and three amounts as decimal strings. Read as
//! leniently as records: numbers or strings, and an amount that is missing, blank or
//! not a number is said as such (the poller logs it and keeps its last good value)
//! instead of failing the answer.

use serde::de::MapAccess;

use super::{int, read_shape, text, DecodeError, Key, Scalar, Shape, Skip};

/// The three amounts of an account, as the provider names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceKind {
    /// The money paid in.
    Balance,
    /// Money the provider gave.
    Gift,
    /// The credit line.
    Credit,
}

impl BalanceKind {
    pub const ALL: [BalanceKind; 3] =
        [BalanceKind::Balance, BalanceKind::Gift, BalanceKind::Credit];

    /// The wire field and the `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            BalanceKind::Balance => "balance",
            BalanceKind::Gift => "gift",
            BalanceKind::Credit => "credit",
        }
    }
}

/// One amount as sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Amount {
    /// Absent or `null`.
    #[default]
    Missing,
    /// An empty or blank string.
    Blank,
    /// A finite amount in USD. Negative is kept: an overdrawn account is a fact, not
    /// garbage.
    Usd(f64),
    /// Sent but not an amount: what it was, in a few words (a text is quoted, cut to
    /// [`MAX_SHOWN_CHARS`]).
    Unusable(String),
}

/// Most characters of an unusable text repeated in a log line.
pub const MAX_SHOWN_CHARS: usize = 24;

/// A decoded balance answer.
#[derive(Debug, Clone, PartialEq)]
pub struct BalanceReply {
    /// The status as an integer, whether it came as `"0"` or `0`.
    pub status: i64,
    pub reason: Option<String>,
    /// By [`BalanceKind`], in the order of [`BalanceKind::ALL`].
    pub amounts: [Amount; 3],
}

impl BalanceReply {
    pub fn amount(&self, kind: BalanceKind) -> &Amount {
        &self.amounts[kind as usize]
    }
}

/// Decodes a balance answer's body.
pub fn decode_balance(body: &[u8]) -> Result<BalanceReply, DecodeError> {
    let Body(envelope) =
        serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let envelope = envelope.ok_or(DecodeError::NotObject)?;
    Ok(BalanceReply {
        status: envelope.status.ok_or(DecodeError::NoStatus)?,
        reason: envelope.reason,
        amounts: envelope.amounts,
    })
}

struct Body(Option<Envelope>);

#[derive(Default)]
struct Envelope {
    status: Option<i64>,
    reason: Option<String>,
    amounts: [Amount; 3],
}

impl<'de> serde::Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        read_shape(deserializer, EnvelopeShape).map(Body)
    }
}

struct EnvelopeShape;

impl<'de> Shape<'de> for EnvelopeShape {
    type Value = Option<Envelope>;

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope::default();
        while let Some(key) = map.next_key::<Key>()? {
            let kind = BalanceKind::ALL
                .into_iter()
                .find(|k| k.as_str() == key.as_str());
            match (key.as_str(), kind) {
                ("status", _) => envelope.status = int(&map.next_value()?),
                ("reason", _) => envelope.reason = text(&map.next_value()?),
                (_, Some(kind)) => envelope.amounts[kind as usize] = amount(&map.next_value()?),
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(Some(envelope))
    }
}

fn amount(v: &Scalar) -> Amount {
    match v {
        Scalar::Null => Amount::Missing,
        Scalar::Text(s) if s.trim().is_empty() => Amount::Blank,
        Scalar::Text(s) => match s.trim().parse::<f64>() {
            Ok(usd) if usd.is_finite() => Amount::Usd(usd),
            _ => Amount::Unusable(quoted(s)),
        },
        Scalar::Number(n) => match n.as_f64() {
            Some(usd) if usd.is_finite() => Amount::Usd(usd),
            _ => Amount::Unusable(format!("the number {n}")),
        },
        Scalar::Bool(b) => Amount::Unusable(format!("the boolean {b}")),
        Scalar::Nested => Amount::Unusable("an object or a list".into()),
    }
}

/// A text as a log shows it: quoted, on one line, cut to [`MAX_SHOWN_CHARS`].
fn quoted(s: &str) -> String {
    let cut: String = s.chars().take(MAX_SHOWN_CHARS).collect();
    let more = if s.chars().count() > MAX_SHOWN_CHARS {
        "…"
    } else {
        ""
    };
    format!("the text {cut:?}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str) -> BalanceReply {
        decode_balance(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    #[test]
    fn the_documented_answer_reads_three_amounts() {
        let r = decode(
            r#"{"status":"0","reason":"success","balance":"12.3400","gift":"1.5","credit":"100.0000"}"#,
        );
        assert_eq!(r.status, 0);
        assert_eq!(r.reason.as_deref(), Some("success"));
        assert_eq!(r.amount(BalanceKind::Balance), &Amount::Usd(12.34));
        assert_eq!(r.amount(BalanceKind::Gift), &Amount::Usd(1.5));
        assert_eq!(r.amount(BalanceKind::Credit), &Amount::Usd(100.0));
    }

    #[test]
    fn amounts_and_status_as_numbers_or_strings() {
        for body in [
            r#"{"status":0,"balance":12.34,"gift":0,"credit":"0"}"#,
            r#"{"status":"0","balance":" 12.34 ","gift":"0.0000","credit":0.0}"#,
            r#"{"status":" 0 ","balance":"1.234e1","gift":"-0","credit":"0"}"#,
        ] {
            let r = decode(body);
            assert_eq!(r.status, 0, "{body}");
            assert_eq!(
                r.amount(BalanceKind::Balance),
                &Amount::Usd(12.34),
                "{body}"
            );
            assert!(
                matches!(r.amount(BalanceKind::Gift), Amount::Usd(g) if *g == 0.0),
                "{body}"
            );
        }
    }

    #[test]
    fn an_overdrawn_balance_is_kept_negative() {
        let r = decode(r#"{"status":"0","balance":"-3.20","gift":"0","credit":"5"}"#);
        assert_eq!(r.amount(BalanceKind::Balance), &Amount::Usd(-3.2));
    }

    #[test]
    fn missing_blank_and_unusable_amounts_are_told_apart() {
        let r = decode(r#"{"status":"0","balance":"","gift":null}"#);
        assert_eq!(r.amount(BalanceKind::Balance), &Amount::Blank);
        assert_eq!(r.amount(BalanceKind::Gift), &Amount::Missing);
        assert_eq!(r.amount(BalanceKind::Credit), &Amount::Missing);
        let r = decode(r#"{"status":"0","balance":"   ","gift":true,"credit":{"usd":1}}"#);
        assert_eq!(r.amount(BalanceKind::Balance), &Amount::Blank);
        assert_eq!(
            r.amount(BalanceKind::Gift),
            &Amount::Unusable("the boolean true".into())
        );
        assert_eq!(
            r.amount(BalanceKind::Credit),
            &Amount::Unusable("an object or a list".into())
        );
        for (sent, said) in [
            (r#""12,34""#, r#"the text "12,34""#),
            (r#""NaN""#, r#"the text "NaN""#),
            (r#""inf""#, r#"the text "inf""#),
            (r#""1e999""#, r#"the text "1e999""#),
            (r#"[1]"#, "an object or a list"),
        ] {
            let r = decode(&format!(r#"{{"status":"0","balance":{sent}}}"#));
            assert_eq!(
                r.amount(BalanceKind::Balance),
                &Amount::Unusable(said.into()),
                "{sent}"
            );
        }
        // A long text is cut, so that a provider page does not fill a log line.
        let long = "x".repeat(200);
        let r = decode(&format!(r#"{{"status":"0","balance":"{long}"}}"#));
        let Amount::Unusable(said) = r.amount(BalanceKind::Balance) else {
            panic!("{r:?}")
        };
        assert!(said.len() < 50 && said.ends_with('…'), "{said}");
    }

    #[test]
    fn failure_statuses_carry_their_reason_and_no_amounts() {
        for (body, status) in [
            (r#"{"status":"-1","reason":"auth error"}"#, -1),
            (r#"{"status":"-2","reason":"ip"}"#, -2),
            (r#"{"status":"-13","reason":"user locked"}"#, -13),
            (r#"{"status":-16,"reason":"timestamp expired"}"#, -16),
            (r#"{"status":"-18","reason":"system error"}"#, -18),
        ] {
            let r = decode(body);
            assert_eq!(r.status, status, "{body}");
            assert!(r.reason.is_some(), "{body}");
            assert!(r.amounts.iter().all(|a| *a == Amount::Missing), "{body}");
        }
    }

    #[test]
    fn a_body_without_a_usable_status_is_an_error() {
        assert_eq!(
            decode_balance(br#"{"balance":"1"}"#),
            Err(DecodeError::NoStatus)
        );
        assert_eq!(
            decode_balance(br#"{"status":"ok","balance":"1"}"#),
            Err(DecodeError::NoStatus)
        );
        assert_eq!(decode_balance(b"[1,2]"), Err(DecodeError::NotObject));
        assert!(matches!(
            decode_balance(b"<html>502</html>"),
            Err(DecodeError::NotJson(_))
        ));
        assert!(matches!(
            decode_balance(br#"{"status":"0","balance":"1""#),
            Err(DecodeError::NotJson(_))
        ));
    }

    #[test]
    fn unknown_fields_are_skipped_and_the_last_duplicate_wins() {
        let r = decode(
            r#"{"status":"0","currency":"USD","extra":{"a":[1,2]},"balance":"1","balance":"2"}"#,
        );
        assert_eq!(r.amount(BalanceKind::Balance), &Amount::Usd(2.0));
    }
}

//! The provider account the simulator bills: a balance, a gift and a credit line, which
//! `GET /sms/getBalance` reports and sends spend.
//!
//! Billing rules (the simulator's reading of the provider's balance and send pages):
//! - Every send is charged the whole price of its order at once, when it is sent. The
//!   simulator draws an order's whole life at its send, so the price of every attempt
//!   (SMS `pay`, call `cost`; SNA costs nothing) is known then. The provider bills each
//!   attempt as it is made, so a real balance falls in steps over an order's minutes;
//!   at the intervals a balance is watched at, the difference does not show. The price
//!   is what the record's `pay`/`cost` fields add up to once the order is final (and the
//!   truth's `costUsd`): SMS attempts, and calls that ended.
//! - A charge takes from the balance first, then the gift, then the credit line.
//! - A send is refused with status `-10` (balance too low) when the three together are
//!   zero or less than the order's price. Nothing is charged then, and the order gets no
//!   record: queries for its id answer as for an id never sent.
//!
//! Amounts are exact: 1e-4 USD units, the provider's four decimals.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Units of 1e-4 USD in one dollar.
const UNITS_PER_USD: u64 = 10_000;
/// The largest amount accepted (a trillion dollars): far above any test's need, and
/// the three pots together still fit in a `u64` with room to spare.
const MAX_UNITS: u64 = 1_000_000_000_000 * UNITS_PER_USD;

/// An amount of US dollars with the provider's four decimals, never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Usd(u64);

impl Usd {
    pub const ZERO: Usd = Usd(0);

    /// `units` of 1e-4 USD (the unit of records' `pay`/`cost`), capped at the maximum.
    pub const fn from_units(units: u64) -> Usd {
        Usd(if units < MAX_UNITS { units } else { MAX_UNITS })
    }

    /// Whole dollars, capped at the maximum.
    pub const fn from_dollars(dollars: u64) -> Usd {
        Usd::from_units(dollars.saturating_mul(UNITS_PER_USD))
    }

    /// In 1e-4 USD.
    pub fn units(self) -> u64 {
        self.0
    }

    /// For display and estimates only; sums stay in units.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / UNITS_PER_USD as f64
    }

    fn saturating_add(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }
}

/// Always four decimals, as the provider writes amounts: `12.3400`.
impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:04}",
            self.0 / UNITS_PER_USD,
            self.0 % UNITS_PER_USD
        )
    }
}

/// Why a text is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsdError {
    #[error("{0:?} is not an amount of dollars (use e.g. 25, 12.5 or 0.0300)")]
    NotANumber(String),
    #[error("{0:?} is negative; an account's pots start at 0 or more")]
    Negative(String),
    #[error("{0:?} has more than 4 decimals (the provider counts in 0.0001 USD)")]
    TooPrecise(String),
    #[error("{0:?} is more than the largest amount accepted, 1000000000000")]
    TooLarge(String),
}

/// Decimal text: digits with at most four decimals (`25`, `12.5`, `0.0300`), an
/// optional leading `$` and surrounding spaces allowed.
impl FromStr for Usd {
    type Err = UsdError;

    fn from_str(text: &str) -> Result<Usd, UsdError> {
        let t = text.trim();
        let t = t.strip_prefix('$').unwrap_or(t).trim();
        if t.starts_with('-') {
            return Err(UsdError::Negative(text.to_string()));
        }
        let t = t.strip_prefix('+').unwrap_or(t);
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
            return Err(UsdError::NotANumber(text.to_string()));
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > 4 {
            return Err(UsdError::TooPrecise(text.to_string()));
        }
        let too_large = || UsdError::TooLarge(text.to_string());
        // Leading zeros do not count against the size.
        let whole = whole.trim_start_matches('0');
        let whole: u64 = if whole.is_empty() {
            0
        } else if whole.len() > 13 {
            return Err(too_large());
        } else {
            whole.parse().map_err(|_| too_large())?
        };
        let frac: u64 = format!("{frac:0<4}").parse().unwrap_or(0);
        let units = whole
            .checked_mul(UNITS_PER_USD)
            .and_then(|u| u.checked_add(frac))
            .filter(|u| *u <= MAX_UNITS)
            .ok_or_else(too_large)?;
        Ok(Usd(units))
    }
}

/// Serialized as the provider writes amounts: a decimal string with four decimals.
impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A decimal string, or a number (read through its shortest decimal text).
impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Usd;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an amount of dollars such as \"12.3400\" or 25")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Usd, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Usd, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Usd, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Usd, E> {
                if !v.is_finite() {
                    return Err(E::custom(format!("{v} is not an amount of dollars")));
                }
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

/// For clap's `value_parser`.
pub fn parse_usd(text: &str) -> Result<Usd, UsdError> {
    text.parse()
}

/// A send the account cannot pay for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("balance too low: {available} available, the order costs {price}")]
pub struct BalanceTooLow {
    pub available: Usd,
    pub price: Usd,
}

impl BalanceTooLow {
    /// The provider's status for it.
    pub const STATUS: &'static str = "-10";
    /// The provider's reason text.
    pub const REASON: &'static str = "balance too low";
}

/// The account's pots and what has happened to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    balance: Usd,
    gift: Usd,
    credit: Usd,
    spent: Usd,
    charged_sends: u64,
    refused_sends: u64,
    first_refusal_unix_ms: Option<i64>,
}

/// `GET /sim/account`: the pots now, and the sends they paid for or refused since the
/// start (a top-up does not reset the counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountSnapshot {
    pub balance: Usd,
    pub gift: Usd,
    pub credit: Usd,
    /// What sends have cost since the start.
    pub spent: Usd,
    pub charged_sends: u64,
    /// Sends refused with `-10`.
    pub refused_sends: u64,
    /// When the first send was refused with `-10`: Unix ms, system clock (not shifted
    /// by `--clock-offset`, like the outages' start instants).
    pub first_refusal_unix_ms: Option<i64>,
}

/// `PUT /sim/account`: sets the pots named (a top-up, or emptying one); the others
/// stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountUpdate {
    pub balance: Option<Usd>,
    pub gift: Option<Usd>,
    pub credit: Option<Usd>,
}

impl Account {
    pub fn new(balance: Usd, gift: Usd, credit: Usd) -> Account {
        Account {
            balance,
            gift,
            credit,
            spent: Usd::ZERO,
            charged_sends: 0,
            refused_sends: 0,
            first_refusal_unix_ms: None,
        }
    }

    /// Balance, gift and credit together.
    pub fn available(&self) -> Usd {
        self.balance
            .saturating_add(self.gift)
            .saturating_add(self.credit)
    }

    /// Pays for a send of `price` (balance first, then gift, then credit), or refuses
    /// it when the pots together are zero or less than `price`; `now_unix_ms` dates
    /// the first refusal.
    pub fn charge(&mut self, price: Usd, now_unix_ms: i64) -> Result<(), BalanceTooLow> {
        let available = self.available();
        if available == Usd::ZERO || available < price {
            self.refused_sends += 1;
            self.first_refusal_unix_ms.get_or_insert(now_unix_ms);
            return Err(BalanceTooLow { available, price });
        }
        let mut due = price.0;
        for pot in [&mut self.balance, &mut self.gift, &mut self.credit] {
            let take = due.min(pot.0);
            pot.0 -= take;
            due -= take;
        }
        self.spent = self.spent.saturating_add(price);
        self.charged_sends += 1;
        Ok(())
    }

    pub fn update(&mut self, update: &AccountUpdate) {
        if let Some(balance) = update.balance {
            self.balance = balance;
        }
        if let Some(gift) = update.gift {
            self.gift = gift;
        }
        if let Some(credit) = update.credit {
            self.credit = credit;
        }
    }

    pub fn snapshot(&self) -> AccountSnapshot {
        AccountSnapshot {
            balance: self.balance,
            gift: self.gift,
            credit: self.credit,
            spent: self.spent,
            charged_sends: self.charged_sends,
            refused_sends: self.refused_sends,
            first_refusal_unix_ms: self.first_refusal_unix_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(text: &str) -> Usd {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn amounts_parse_exactly_and_print_with_four_decimals() {
        assert_eq!(usd("12.34").units(), 123_400);
        assert_eq!(usd("12.34").to_string(), "12.3400");
        assert_eq!(usd(" $0.0035 ").units(), 35);
        assert_eq!(
            usd("0.10000").units(),
            1_000,
            "trailing zeros are not decimals"
        );
        assert_eq!(usd("1000000").to_string(), "1000000.0000");
        assert_eq!(usd(".5").units(), 5_000);
        assert_eq!(usd("7.").units(), 70_000);
        assert_eq!(usd("+3").units(), 30_000);
        assert_eq!(usd("000000000000000001").units(), 10_000);
        assert_eq!(usd("1000000000000").units(), MAX_UNITS);
        assert_eq!(Usd::ZERO.to_string(), "0.0000");
        assert_eq!(Usd::from_units(35).to_string(), "0.0035");
        assert_eq!(Usd::from_dollars(u64::MAX).units(), MAX_UNITS);

        let err = |text: &str| text.parse::<Usd>().expect_err(text);
        assert!(matches!(err("-1"), UsdError::Negative(_)));
        assert!(matches!(err("0.00001"), UsdError::TooPrecise(_)));
        assert!(matches!(err("1000000000000.0001"), UsdError::TooLarge(_)));
        assert!(matches!(
            err("99999999999999999999999"),
            UsdError::TooLarge(_)
        ));
        for bad in ["", ".", "abc", "1e3", "1,5", "1.2.3", "NaN", "$"] {
            assert!(matches!(err(bad), UsdError::NotANumber(_)), "{bad}");
        }
        assert!(err("x").to_string().contains("\"x\""));
    }

    #[test]
    fn amounts_read_strings_and_numbers() {
        let read = |json: &str| serde_json::from_str::<Usd>(json);
        assert_eq!(read("\"0.0300\"").expect("string").units(), 300);
        assert_eq!(read("25").expect("integer").units(), 250_000);
        assert_eq!(read("0.1").expect("float").units(), 1_000);
        assert!(read("-2").is_err());
        assert!(read("0.123456").is_err());
        assert!(read("true").is_err());
        assert_eq!(
            serde_json::to_string(&usd("1.5")).expect("serialize"),
            "\"1.5000\""
        );
    }

    #[test]
    fn charges_take_balance_then_gift_then_credit() {
        let mut a = Account::new(usd("1"), usd("0.5"), usd("2"));
        a.charge(usd("0.7"), 1).expect("paid");
        assert_eq!(
            (a.balance, a.gift, a.credit),
            (usd("0.3"), usd("0.5"), usd("2"))
        );
        a.charge(usd("0.6"), 2).expect("paid from balance and gift");
        assert_eq!(
            (a.balance, a.gift, a.credit),
            (Usd::ZERO, usd("0.2"), usd("2"))
        );
        a.charge(usd("1.2"), 3).expect("paid from gift and credit");
        assert_eq!(
            (a.balance, a.gift, a.credit),
            (Usd::ZERO, Usd::ZERO, usd("1"))
        );
        let s = a.snapshot();
        assert_eq!(
            (s.spent, s.charged_sends, s.refused_sends),
            (usd("2.5"), 3, 0)
        );
        assert_eq!(s.first_refusal_unix_ms, None);
    }

    #[test]
    fn a_send_the_pots_cannot_cover_is_refused_and_nothing_is_charged() {
        let mut a = Account::new(usd("0.02"), Usd::ZERO, usd("0.01"));
        let refusal = a.charge(usd("0.0301"), 100).expect_err("too dear");
        assert_eq!(
            refusal,
            BalanceTooLow {
                available: usd("0.03"),
                price: usd("0.0301")
            }
        );
        assert_eq!(a.available(), usd("0.03"), "nothing charged");
        a.charge(usd("0.03"), 200).expect("exactly covered");
        assert_eq!(a.available(), Usd::ZERO);
        // An empty account refuses even an order that turns out to cost nothing.
        assert!(a.charge(Usd::ZERO, 300).is_err());
        let s = a.snapshot();
        assert_eq!((s.charged_sends, s.refused_sends), (1, 2));
        assert_eq!(
            s.first_refusal_unix_ms,
            Some(100),
            "the first refusal's time"
        );

        a.update(&AccountUpdate {
            balance: Some(usd("5")),
            ..AccountUpdate::default()
        });
        assert_eq!((a.balance, a.credit), (usd("5"), Usd::ZERO));
        a.charge(Usd::ZERO, 400)
            .expect("free order on a funded account");
        assert_eq!(a.snapshot().refused_sends, 2, "counts survive a top-up");
    }
}

//! The record endpoint's wire model, decoded leniently.
//!
//! Real payloads mix types (`"status": "0"` next to `"matched": 0`, MCCs as strings,
//! `null` anywhere, arrays missing). Decoding walks a `serde_json::Value` with small
//! converters instead of strict derives, so one odd field never loses a whole record.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use serde_json::{Map, Value};

/// Why a response body could not be used at all.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("response is not JSON: {0}")]
    NotJson(String),
    #[error("response is not a JSON object")]
    NotObject,
    #[error("response has no usable `status`")]
    NoStatus,
}

/// The envelope of every answer: `{"status": "0", "reason": "...", "data": {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The status as an integer, whether it came as `"0"` or `0`.
    pub status: i64,
    pub reason: Option<String>,
    /// `None` when `data` is missing, `null`, or not an object.
    pub data: Option<Record>,
}

/// One order's record (`data`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub order_id: Option<String>,
    pub flow_id: Option<i64>,
    pub verification: Option<Verification>,
    pub sms: Vec<SmsAttempt>,
    pub call: Vec<CallAttempt>,
    pub sna: Vec<SnaAttempt>,
    /// Amounts (`pay`, `cost`) that were sent but are no amount (negative, not a
    /// number, infinite): read as absent, and counted here so that they are not
    /// dropped silently.
    pub unusable: InvalidValues,
}

/// How many values of each wire field were dropped as unbelievable, by the field's
/// wire name (a fixed set, so a bounded label). A few fields at most: a list beats a map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvalidValues(Vec<(&'static str, u64)>);

impl InvalidValues {
    pub fn add(&mut self, field: &'static str) {
        match self.0.iter_mut().find(|(f, _)| *f == field) {
            Some((_, count)) => *count = count.saturating_add(1),
            None => self.0.push((field, 1)),
        }
    }

    pub fn merge(&mut self, other: &InvalidValues) {
        for &(field, n) in &other.0 {
            match self.0.iter_mut().find(|(f, _)| *f == field) {
                Some((_, count)) => *count = count.saturating_add(n),
                None => self.0.push((field, n)),
            }
        }
    }

    /// `(field, count)` pairs, each field once.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().copied()
    }

    pub fn count(&self, field: &str) -> u64 {
        self.iter().find(|(f, _)| *f == field).map_or(0, |(_, n)| n)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `verifications.matched`: where the verification stands. A newtype over the
/// provider's integer so that undocumented values are kept (and ignored) rather than
/// rejected; the documented ones have names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Matched(pub i64);

impl Matched {
    pub const NOT_VERIFIED_YET: Matched = Matched(-1);
    pub const VERIFIED: Matched = Matched(0);
    pub const SENDING: Matched = Matched(1);
    pub const FAILED: Matched = Matched(2);
    /// "No such verificationId": the provider's other way of saying "no record".
    pub const NO_SUCH_ID: Matched = Matched(3);
    /// The code was verified earlier and used again: still a verified order.
    pub const CODE_ALREADY_USED: Matched = Matched(4);

    /// The order is verified (also when its code was already used).
    pub fn is_verified(self) -> bool {
        self == Matched::VERIFIED || self == Matched::CODE_ALREADY_USED
    }
}

/// Declares wire structs from lines `"jsonKey" => field: Type`: each field is written
/// once, as `pub field: Option<Type>`, and `from_object` reads it with its type's
/// [`Lenient`] converter. Unknown keys are ignored; a missing, `null` or unusable value
/// is `None`, so one odd field never loses the record.
macro_rules! lenient_structs {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* $key:literal => $field:ident: $ty:ty, )*
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: Option<$ty>, )*
        }

        impl $name {
            fn from_object(o: &Map<String, Value>) -> Self {
                $name {
                    $( $field: o.get($key).and_then(<$ty as Lenient>::lenient), )*
                }
            }
        }
    )*};
}

lenient_structs! {
    pub struct Verification {
        "matched" => matched: Matched,
        "verifiedDate" => verified_date: String,
        "oriReceiver" => ori_receiver: String,
        "channel" => channel: String,
    }
    pub struct SmsAttempt {
        "submitTm" => submit_tm: String,
        "sendTm" => send_tm: String,
        "doneTm" => done_tm: String,
        "mcc" => mcc: i64,
        "mnc" => mnc: i64,
        "chargeCnt" => charge_cnt: i64,
        "pay" => pay: f64,
        /// -1 sending, 0 delivered, 1 failed.
        "status" => status: i64,
        "reason" => reason: String,
    }
    pub struct CallAttempt {
        /// 0 success, anything else failure, absent while the call is under way.
        "terminationCode" => termination_code: i64,
        "terminationReason" => termination_reason: String,
        "submitTime" => submit_time: String,
        "answerTime" => answer_time: String,
        "hangupTime" => hangup_time: String,
        "cost" => cost: f64,
    }
    pub struct SnaAttempt {
        "postVerificationTime" => post_verification_time: String,
        "verificationBackTime" => verification_back_time: String,
        "mcc" => mcc: i64,
        "mnc" => mnc: i64,
        /// -1 not verified, 0 success, 1 failure.
        "status" => status: i64,
        "reason" => reason: String,
    }
}

impl Record {
    /// True when the provider answered "success" but knows nothing of the order: no
    /// verification state (`verifications` missing, `null`, `{}` or without `matched`)
    /// and no attempt on any channel.
    pub fn is_empty(&self) -> bool {
        self.verification.as_ref().and_then(|v| v.matched).is_none()
            && self.sms.is_empty()
            && self.call.is_empty()
            && self.sna.is_empty()
    }
}

/// Decodes a response body.
pub fn decode_reply(body: &[u8]) -> Result<Reply, DecodeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let object = value.as_object().ok_or(DecodeError::NotObject)?;
    let status = object
        .get("status")
        .and_then(int)
        .ok_or(DecodeError::NoStatus)?;
    Ok(Reply {
        status,
        reason: object.get("reason").and_then(text),
        data: object.get("data").and_then(Value::as_object).map(record),
    })
}

fn record(o: &Map<String, Value>) -> Record {
    let mut unusable = InvalidValues::default();
    let sms = objects(o.get("sms"))
        .map(|o| {
            let sms = SmsAttempt::from_object(o);
            note_unusable(o, "pay", sms.pay.is_some(), &mut unusable);
            sms
        })
        .collect();
    let call = objects(o.get("call"))
        .map(|o| {
            let call = CallAttempt::from_object(o);
            note_unusable(o, "cost", call.cost.is_some(), &mut unusable);
            call
        })
        .collect();
    Record {
        order_id: o.get("orderId").and_then(text),
        flow_id: o.get("flowId").and_then(int),
        verification: o
            .get("verifications")
            .and_then(first_object)
            .map(Verification::from_object),
        sms,
        call,
        sna: objects(o.get("sna")).map(SnaAttempt::from_object).collect(),
        unusable,
    }
}

/// Counts `key` when it was sent (not absent, `null` or blank) but could not be read.
fn note_unusable(o: &Map<String, Value>, key: &'static str, read: bool, into: &mut InvalidValues) {
    let sent = match o.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    };
    if sent && !read {
        into.add(key);
    }
}

/// A field type and how it is read from whatever JSON the provider sent for it.
trait Lenient: Sized {
    fn lenient(v: &Value) -> Option<Self>;
}

impl Lenient for String {
    fn lenient(v: &Value) -> Option<Self> {
        text(v)
    }
}

impl Lenient for i64 {
    fn lenient(v: &Value) -> Option<Self> {
        int(v)
    }
}

/// The only decimals on this wire are amounts of money (`pay`, `cost`).
impl Lenient for f64 {
    fn lenient(v: &Value) -> Option<Self> {
        money(v)
    }
}

impl Lenient for Matched {
    fn lenient(v: &Value) -> Option<Self> {
        int(v).map(Matched)
    }
}

/// An integer sent as a number or as a string (`0`, `"0"`, `" -18 "`, `404.0`).
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            })
        }
        _ => None,
    }
}

/// A string sent as a string or as a number; blank strings count as absent.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A non-negative finite amount sent as a decimal string or a number.
fn money(v: &Value) -> Option<f64> {
    let amount = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }?;
    (amount.is_finite() && amount >= 0.0).then_some(amount)
}

/// Objects of an array; a lone object counts as a one-element array, anything else as empty.
fn objects(v: Option<&Value>) -> impl Iterator<Item = &Map<String, Value>> {
    let items: &[Value] = match v {
        Some(Value::Array(items)) => items,
        Some(single @ Value::Object(_)) => std::slice::from_ref(single),
        _ => &[],
    };
    items.iter().filter_map(Value::as_object)
}

/// `verifications` is documented as one object; tolerate an array of them, preferring
/// the entry that was verified ([`Matched::is_verified`]), since that one decides the outcome.
fn first_object(v: &Value) -> Option<&Map<String, Value>> {
    match v {
        Value::Object(o) => Some(o),
        Value::Array(items) => {
            let verified = |o: &&Map<String, Value>| {
                o.get("matched")
                    .and_then(int)
                    .is_some_and(|m| Matched(m).is_verified())
            };
            items
                .iter()
                .filter_map(Value::as_object)
                .find(verified)
                .or_else(|| items.iter().find_map(Value::as_object))
        }
        _ => None,
    }
}

/// Parses a provider time into Unix milliseconds: RFC 3339 with an offset, or
/// `yyyy-MM-dd HH:mm:ss` (optionally with `T` and fractions) read in `zone`.
pub fn parse_time_ms(text: &str, zone: &FixedOffset) -> Option<i64> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_millis());
    }
    // ISO 8601 offsets without a colon (`+0800`), which Java's formatters emit.
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(dt) = DateTime::parse_from_str(t, format) {
            return Some(dt.timestamp_millis());
        }
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S%.f",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, format) {
            return zone
                .from_local_datetime(&naive)
                .single()
                .map(|dt| dt.timestamp_millis());
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The provider's example response, verbatim.
    pub const PROVIDER_SAMPLE: &str = r#"{
    "status": "0",
    "reason": "success",
    "data": {
        "orderId": "1234566",
        "flowId": 1,
        "verifications":
        {
            "matched": 0,
            "verifiedDate": "2022-07-12T13:39:47+08:00",
            "oriReceiver": "91856321412",
            "channel": "call",
            "orderId": "1234566"
        },
        "sms": [
            {
                "submitTm": "2022-07-12T13:39:45+08:00",
                "sendTm": "2022-07-12T13:39:45+08:00",
                "doneTm": "2022-07-12T13:39:49+08:00",
                "mcc": 460,
                "mnc": 10,
                "sender": "",
                "chargeCnt": 1,
                "pay": "0.000002",
                "status": 0,
                "reason": "successR"
            }
        ],
        "call": [
            {
                "terminationCode": 100005,
                "terminationReason": "Temporarily Unavailable",
                "submitTime": "2022-07-12T13:59:55+08:00",
                "callTime": "2022-07-12T13:59:56+08:00",
                "ringingTime": "2022-07-12T13:59:56+08:00",
                "answerTime": "2022-07-12T13:59:56+08:00",
                "hangupTime": "2022-07-12T13:59:56+08:00",
                "callDuration": 0,
                "chargedDuration": 0,
                "displayNum": null,
                "billPeriodstring": "20+20",
                "code": "661",
                "rate": "0.138",
                "cost": "0"
            }
        ]
    }
}"#;

    fn cst() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    #[test]
    fn decodes_the_provider_sample_verbatim() {
        let reply = decode_reply(PROVIDER_SAMPLE.as_bytes()).unwrap();
        assert_eq!(reply.status, 0);
        assert_eq!(reply.reason.as_deref(), Some("success"));
        let record = reply.data.unwrap();
        assert_eq!(record.order_id.as_deref(), Some("1234566"));
        assert_eq!(record.flow_id, Some(1));
        let v = record.verification.unwrap();
        assert_eq!(v.matched, Some(Matched::VERIFIED));
        assert_eq!(v.channel.as_deref(), Some("call"));
        assert_eq!(v.ori_receiver.as_deref(), Some("91856321412"));
        assert_eq!(record.sms.len(), 1);
        let sms = &record.sms[0];
        assert_eq!(
            (sms.mcc, sms.mnc, sms.status, sms.charge_cnt),
            (Some(460), Some(10), Some(0), Some(1))
        );
        assert_eq!(sms.pay, Some(0.000002));
        assert_eq!(record.call.len(), 1);
        assert_eq!(record.call[0].termination_code, Some(100005));
        assert_eq!(record.call[0].cost, Some(0.0));
        assert!(record.sna.is_empty());
    }

    #[test]
    fn numbers_as_strings_and_strings_as_numbers() {
        let body = r#"{"status": -18, "data": {"orderId": 77, "verifications": {"matched": "2"},
            "sms": [{"status": "1", "mcc": "404", "mnc": " 10 ", "chargeCnt": "2", "pay": 0.5}],
            "call": [{"terminationCode": "0", "cost": "0.0123"}],
            "sna": [{"status": 0.0, "mcc": 460.0}]}}"#;
        let reply = decode_reply(body.as_bytes()).unwrap();
        assert_eq!(reply.status, -18);
        let r = reply.data.unwrap();
        assert_eq!(r.order_id.as_deref(), Some("77"));
        assert_eq!(r.verification.unwrap().matched, Some(Matched::FAILED));
        assert_eq!(
            (r.sms[0].status, r.sms[0].mcc, r.sms[0].mnc),
            (Some(1), Some(404), Some(10))
        );
        assert_eq!(r.sms[0].charge_cnt, Some(2));
        assert_eq!(r.sms[0].pay, Some(0.5));
        assert_eq!(r.call[0].termination_code, Some(0));
        assert_eq!(r.call[0].cost, Some(0.0123));
        assert_eq!((r.sna[0].status, r.sna[0].mcc), (Some(0), Some(460)));
    }

    #[test]
    fn nulls_missing_arrays_and_unknown_fields() {
        let body = r#"{"status":"0","reason":null,"extra":{"x":1},"data":{"verifications":null,
            "sms":null,"call":{"terminationCode":null,"submitTime":null},"unknown":[1,2]}}"#;
        let r = decode_reply(body.as_bytes()).unwrap().data.unwrap();
        assert!(r.verification.is_none());
        assert!(r.sms.is_empty());
        assert_eq!(r.call.len(), 1, "a lone object counts as one attempt");
        assert_eq!(r.call[0].termination_code, None);
        assert!(r.sna.is_empty());
    }

    #[test]
    fn hostile_values_do_not_lose_the_record() {
        let body = r#"{"status":"0","data":{"verifications":[{"matched":"x"}],
            "sms":[1, "two", {"status": true, "mcc": "abc", "pay": "-1", "submitTm": 5}],
            "sna":"nope"}}"#;
        let r = decode_reply(body.as_bytes()).unwrap().data.unwrap();
        assert_eq!(r.verification.unwrap().matched, None);
        assert_eq!(r.sms.len(), 1);
        assert_eq!(
            (r.sms[0].status, r.sms[0].mcc, r.sms[0].pay),
            (None, None, None)
        );
        assert_eq!(r.sms[0].submit_tm.as_deref(), Some("5"));
        assert!(r.sna.is_empty());
    }

    #[test]
    fn amounts_sent_but_unusable_are_counted() {
        let body = r#"{"status":"0","data":{
            "sms":[{"pay":"-1"},{"pay":"NaN"},{"pay":"inf"},{"pay":"x"},{"pay":true},
                {"pay":null},{"pay":" "},{},{"pay":"0.5"},{"pay":1e308}],
            "call":[{"cost":-0.5},{"cost":"0"},{"cost":[1]}]}}"#;
        let r = decode_reply(body.as_bytes()).unwrap().data.unwrap();
        assert_eq!((r.sms.len(), r.call.len()), (10, 3));
        assert_eq!(r.unusable.count("pay"), 5, "{:?}", r.unusable);
        assert_eq!(r.unusable.count("cost"), 2, "{:?}", r.unusable);
        // Finite and non-negative: kept here, judged against the ceiling in `observe`.
        assert_eq!(r.sms[9].pay, Some(1e308));
    }

    /// Every field of every attempt type is read from its own key, with its type's
    /// converter: a wrong key or converter in the `lenient_structs!` table fails here.
    #[test]
    fn every_field_is_read_from_its_key() {
        let body = r#"{"status":"0","data":{
            "verifications":{"matched":"4","verifiedDate":"2022-07-12 13:39:47",
                "oriReceiver":91856321412,"channel":" sms ","unknown":1},
            "sms":[{"submitTm":"t1","sendTm":"t2","doneTm":"t3","mcc":"404","mnc":20,
                "chargeCnt":"3","pay":"0.25","status":-1,"reason":"ok","sender":""}],
            "call":[{"terminationCode":"100005","terminationReason":"busy","submitTime":"c1",
                "answerTime":"c2","hangupTime":"c3","cost":0.138}],
            "sna":[{"postVerificationTime":"s1","verificationBackTime":"s2","mcc":460,
                "mnc":"0","status":"1","reason":"no"},
                {"postVerificationTime":"  ","verificationBackTime":null,"reason":""}]}}"#;
        let r = decode_reply(body.as_bytes()).unwrap().data.unwrap();
        let text = |s: &str| Some(s.to_string());
        assert_eq!(
            r.verification,
            Some(Verification {
                matched: Some(Matched::CODE_ALREADY_USED),
                verified_date: text("2022-07-12 13:39:47"),
                ori_receiver: text("91856321412"),
                channel: text("sms"),
            })
        );
        assert_eq!(
            r.sms,
            vec![SmsAttempt {
                submit_tm: text("t1"),
                send_tm: text("t2"),
                done_tm: text("t3"),
                mcc: Some(404),
                mnc: Some(20),
                charge_cnt: Some(3),
                pay: Some(0.25),
                status: Some(-1),
                reason: text("ok"),
            }]
        );
        assert_eq!(
            r.call,
            vec![CallAttempt {
                termination_code: Some(100005),
                termination_reason: text("busy"),
                submit_time: text("c1"),
                answer_time: text("c2"),
                hangup_time: text("c3"),
                cost: Some(0.138),
            }]
        );
        assert_eq!(
            r.sna,
            vec![
                SnaAttempt {
                    post_verification_time: text("s1"),
                    verification_back_time: text("s2"),
                    mcc: Some(460),
                    mnc: Some(0),
                    status: Some(1),
                    reason: text("no"),
                },
                SnaAttempt::default(),
            ],
            "blank strings and nulls are absent"
        );
    }

    #[test]
    fn envelope_errors() {
        assert!(matches!(
            decode_reply(b"<html>502</html>"),
            Err(DecodeError::NotJson(_))
        ));
        assert!(matches!(
            decode_reply(br#"{"status":"0","data":"#),
            Err(DecodeError::NotJson(_))
        ));
        assert_eq!(decode_reply(b"[1]"), Err(DecodeError::NotObject));
        assert_eq!(
            decode_reply(br#"{"reason":"x"}"#),
            Err(DecodeError::NoStatus)
        );
        assert_eq!(
            decode_reply(br#"{"status":"ok"}"#),
            Err(DecodeError::NoStatus)
        );
        let empty = decode_reply(br#"{"status":"0","data":null}"#).unwrap();
        assert!(empty.data.is_none());
        let no_record = decode_reply(br#"{"status":"0","data":{}}"#).unwrap();
        assert!(no_record.data.unwrap().is_empty());
    }

    #[test]
    fn records_without_state_or_attempts_are_no_record() {
        for data in [
            r#"{"verifications":{}}"#,
            r#"{"verifications":{"matched":null,"channel":"sms"},"sms":[],"call":null}"#,
            r#"{"orderId":"42","verifications":[]}"#,
            r#"{"verifications":[{"oriReceiver":"123"}],"sna":[]}"#,
        ] {
            let body = format!(r#"{{"status":"0","data":{data}}}"#);
            let r = decode_reply(body.as_bytes()).unwrap().data.unwrap();
            assert!(r.is_empty(), "{data} should mean no record");
        }
        for data in [
            r#"{"verifications":{"matched":-1}}"#,
            r#"{"verifications":{"matched":3}}"#,
            r#"{"call":[{"submitTime":"2022-07-12 13:39:45"}]}"#,
        ] {
            let body = format!(r#"{{"status":"0","data":{data}}}"#);
            let r = decode_reply(body.as_bytes()).unwrap().data.unwrap();
            assert!(!r.is_empty(), "{data} is a record");
        }
    }

    fn verification_of(body: &str) -> Verification {
        let record = decode_reply(body.as_bytes()).unwrap().data.unwrap();
        record.verification.unwrap()
    }

    #[test]
    fn verification_arrays_prefer_the_verified_entry() {
        let body = r#"{"status":"0","data":{"verifications":[
            {"matched":2,"channel":"sms"},{"matched":"0","channel":"call"},{"matched":-1}]}}"#;
        let v = verification_of(body);
        assert_eq!(
            (v.matched, v.channel.as_deref()),
            (Some(Matched::VERIFIED), Some("call"))
        );
        let body = r#"{"status":"0","data":{"verifications":[7,{"matched":2},{"matched":-1}]}}"#;
        let v = verification_of(body);
        assert_eq!(
            v.matched,
            Some(Matched::FAILED),
            "without a verified entry the first object counts"
        );
    }

    #[test]
    fn times_with_offset_and_without() {
        let with_offset = parse_time_ms("2022-07-12T13:39:45+08:00", &cst()).unwrap();
        let naive = parse_time_ms("2022-07-12 13:39:45", &cst()).unwrap();
        assert_eq!(with_offset, naive);
        assert_eq!(with_offset, 1_657_604_385_000);
        let utc = FixedOffset::east_opt(0).unwrap();
        assert_eq!(
            parse_time_ms("2022-07-12 05:39:45", &utc),
            Some(with_offset)
        );
        assert_eq!(
            parse_time_ms("2022-07-12T05:39:45Z", &cst()),
            Some(with_offset)
        );
        assert_eq!(
            parse_time_ms("2022-07-12 13:39:45.250", &cst()),
            Some(with_offset + 250)
        );
        assert_eq!(
            parse_time_ms("2022-07-12T13:39:45+0800", &cst()),
            Some(with_offset)
        );
        assert_eq!(
            parse_time_ms("2022-07-12 05:39:45+0000", &cst()),
            Some(with_offset)
        );
        assert_eq!(
            parse_time_ms("2022-07-12T13:39:45.5+0800", &utc),
            Some(with_offset + 500)
        );
        assert_eq!(parse_time_ms("yesterday", &cst()), None);
        assert_eq!(parse_time_ms("", &cst()), None);
    }
}

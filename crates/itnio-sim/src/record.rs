//! Renders an order's record as the provider would answer it at a given moment.
//!
//! Fields appear when their event has happened: an SMS has no `doneTm` before its DLR,
//! a call no `terminationCode` before its hang-up. With quirks on, each order also
//! varies the way real payloads do (numbers as strings, times without an offset,
//! `displayNum: null`, unknown fields), drawn once per order so that repeated queries
//! of one order agree.

use chrono::{DateTime, FixedOffset, Offset, Utc};
use serde_json::{json, Map, Value};

use super::profile::Channel;
use super::quirks::Quirks;
use super::seed::derive_seed;
use super::timeline::{Attempt, AttemptResult, Order, VerifyKind};

/// The provider's zone: every time it renders is in +08:00.
fn provider_zone() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

/// Formats Unix milliseconds as the provider does: RFC 3339 with `+08:00`, or
/// (`local`) `yyyy-MM-dd HH:mm:ss` in +08:00 without the offset. The provider gives
/// whole seconds; `millis` adds `.SSS`, which a compressed time scale needs so that
/// events a few scaled milliseconds apart keep their order.
pub fn format_time(unix_ms: i64, local: bool, millis: bool) -> String {
    let Some(utc) = DateTime::<Utc>::from_timestamp_millis(unix_ms) else {
        return String::new();
    };
    let t = utc.with_timezone(&provider_zone());
    let format = match (local, millis) {
        (false, false) => "%Y-%m-%dT%H:%M:%S%:z",
        (false, true) => "%Y-%m-%dT%H:%M:%S%.3f%:z",
        (true, false) => "%Y-%m-%d %H:%M:%S",
        (true, true) => "%Y-%m-%d %H:%M:%S%.3f",
    };
    t.format(format).to_string()
}

/// An amount in 1e-4 USD as the provider's decimal string (`"0.0035"` → `"0.0035"`,
/// 300 → `"0.03"`, 0 → `"0"`).
pub fn money(units: u32) -> String {
    let whole = units / 10_000;
    let frac = units % 10_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:04}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// The `data` of an order that was never sent: `null`, or with quirks on for some ids
/// the provider's other way of saying it, `matched` 3 ("no such verificationId").
pub fn render_unknown(order_id: &str, seed: u64, quirks: bool) -> Value {
    if quirks && derive_seed(seed, "unknown", order_id).is_multiple_of(3) {
        json!({ "orderId": order_id, "verifications": { "matched": 3 } })
    } else {
        Value::Null
    }
}

/// Renders the `data` of `order` as of simulator time `now_ms`; `scale` turns the
/// timeline's unscaled offsets into wall-clock time. Below scale 1 times carry
/// milliseconds (see [`format_time`]).
pub fn render(order: &Order, now_ms: i64, scale: f64) -> Value {
    Renderer {
        order,
        now_ms,
        scale,
    }
    .data()
}

struct Renderer<'a> {
    order: &'a Order,
    now_ms: i64,
    scale: f64,
}

impl Renderer<'_> {
    fn quirk(&self, q: Quirks) -> bool {
        self.order.timeline.quirks.has(q)
    }

    /// Wall-clock time of an offset.
    fn at(&self, offset: u32) -> i64 {
        self.order.sent_at_ms + (f64::from(offset) * self.scale).round() as i64
    }

    fn seen(&self, offset: u32) -> bool {
        self.at(offset) <= self.now_ms
    }

    fn seen_opt(&self, offset: Option<u32>) -> Option<u32> {
        offset.filter(|o| self.seen(*o))
    }

    fn time(&self, offset: u32) -> Value {
        Value::String(format_time(
            self.at(offset),
            self.quirk(Quirks::LOCAL_TIMES),
            self.scale < 1.0,
        ))
    }

    fn num(&self, n: i64) -> Value {
        if self.quirk(Quirks::STRING_NUMBERS) {
            Value::String(n.to_string())
        } else {
            Value::from(n)
        }
    }

    /// `matched`: 1 while sending, -1 once something was delivered (or everything
    /// ended), 0/2 from the verification on.
    fn matched(&self) -> i64 {
        let t = &self.order.timeline;
        if let Some(v) = t.verification.filter(|v| self.seen(v.at)) {
            return match v.kind {
                VerifyKind::Matched => 0,
                VerifyKind::WrongCode => 2,
            };
        }
        let delivered = t
            .attempts
            .iter()
            .any(|a| a.result == AttemptResult::Delivered && self.seen_opt(a.done).is_some());
        let all_ended =
            !t.attempts.is_empty() && t.attempts.iter().all(|a| self.seen_opt(a.done).is_some());
        if delivered || all_ended {
            -1
        } else {
            1
        }
    }

    fn data(&self) -> Value {
        let order = self.order;
        let t = &order.timeline;
        let visible: Vec<&Attempt> = t.attempts.iter().filter(|a| self.seen(a.submit)).collect();
        let verified = t.verification.filter(|v| self.seen(v.at));
        let channel = verified
            .map(|v| v.channel)
            .or_else(|| visible.last().map(|a| a.channel))
            .unwrap_or(t.start);

        let mut verifications = Map::new();
        verifications.insert("matched".into(), Value::from(self.matched()));
        if let Some(v) = verified {
            verifications.insert("verifiedDate".into(), self.time(v.at));
        }
        verifications.insert("oriReceiver".into(), Value::from(order.receiver.as_str()));
        verifications.insert("channel".into(), Value::from(channel.as_str()));
        verifications.insert("orderId".into(), Value::from(order.order_id.as_str()));

        let mut data = Map::new();
        data.insert("orderId".into(), Value::from(order.order_id.as_str()));
        data.insert("flowId".into(), self.num(i64::from(t.start.flow_id())));
        data.insert("verifications".into(), Value::Object(verifications));
        for (key, channel) in [
            ("sms", Channel::Sms),
            ("call", Channel::Call),
            ("sna", Channel::Sna),
        ] {
            let items: Vec<Value> = visible
                .iter()
                .filter(|a| a.channel == channel)
                .map(|a| match channel {
                    Channel::Sms => self.sms(a),
                    Channel::Call => self.call(a),
                    Channel::Sna => self.sna(a),
                })
                .collect();
            if !items.is_empty() {
                data.insert(key.into(), Value::Array(items));
            }
        }
        if self.quirk(Quirks::EXTRA_FIELDS) {
            data.insert("sceneType".into(), Value::from("OTP"));
            data.insert("countryCode".into(), Value::from(t.profile.calling_code));
        }
        Value::Object(data)
    }

    fn sms(&self, a: &Attempt) -> Value {
        let t = &self.order.timeline;
        let done = self.seen_opt(a.done);
        let mut m = Map::new();
        m.insert("submitTm".into(), self.time(a.submit));
        if self.seen(a.send) {
            m.insert("sendTm".into(), self.time(a.send));
        }
        if let Some(done) = done {
            let hide = a.result == AttemptResult::Delivered && self.quirk(Quirks::NO_DONE_TIME);
            let value = if hide {
                Value::from("")
            } else {
                self.time(done)
            };
            m.insert("doneTm".into(), value);
        }
        m.insert("mcc".into(), self.num(i64::from(t.network.mcc)));
        m.insert("mnc".into(), self.num(i64::from(t.network.mnc)));
        m.insert("sender".into(), Value::from(t.profile.sender));
        m.insert("chargeCnt".into(), self.num(i64::from(a.segments)));
        m.insert("pay".into(), Value::from(money(a.amount)));
        let (status, reason) = match (done, a.result) {
            (Some(_), AttemptResult::Delivered) => (0, a.reason),
            (Some(_), AttemptResult::Failed) => (1, a.reason),
            _ => (-1, ""),
        };
        m.insert("status".into(), self.num(status));
        m.insert("reason".into(), Value::from(reason));
        if self.quirk(Quirks::EXTRA_FIELDS) {
            m.insert(
                "msgId".into(),
                Value::from(format!(
                    "{:016x}",
                    derive_seed(0, "msg", &self.order.order_id)
                )),
            );
        }
        Value::Object(m)
    }

    fn call(&self, a: &Attempt) -> Value {
        let t = &self.order.timeline;
        let mut m = Map::new();
        let hangup = self.seen_opt(a.done);
        if hangup.is_some() {
            m.insert(
                "terminationCode".into(),
                self.num(i64::from(a.termination_code)),
            );
            m.insert("terminationReason".into(), Value::from(a.reason));
        }
        m.insert("submitTime".into(), self.time(a.submit));
        if self.seen(a.send) {
            m.insert("callTime".into(), self.time(a.send));
        }
        if let Some(ringing) = self.seen_opt(a.ringing) {
            m.insert("ringingTime".into(), self.time(ringing));
        }
        if let Some(answer) = self.seen_opt(a.answer) {
            m.insert("answerTime".into(), self.time(answer));
        }
        if let Some(hangup) = hangup {
            m.insert("hangupTime".into(), self.time(hangup));
            m.insert("callDuration".into(), self.num(i64::from(a.duration_s)));
            m.insert("chargedDuration".into(), self.num(i64::from(a.charged_s)));
        }
        let display = if self.quirk(Quirks::NULL_DISPLAY) {
            Value::Null
        } else {
            Value::from("8613800138000")
        };
        m.insert("displayNum".into(), display);
        let (first, next) = t.profile.bill_period;
        m.insert(
            "billPeriodstring".into(),
            Value::from(format!("{first}+{next}")),
        );
        m.insert("code".into(), Value::from(t.profile.supplier_code));
        m.insert("rate".into(), Value::from(money(t.profile.voice_rate)));
        if hangup.is_some() {
            m.insert("cost".into(), Value::from(money(a.amount)));
        }
        if self.quirk(Quirks::EXTRA_FIELDS) {
            m.insert(
                "callId".into(),
                Value::from(format!("c-{}", self.order.order_id)),
            );
        }
        Value::Object(m)
    }

    fn sna(&self, a: &Attempt) -> Value {
        let t = &self.order.timeline;
        let mut m = Map::new();
        m.insert("postVerificationTime".into(), self.time(a.submit));
        let back = self.seen_opt(a.done);
        if let Some(back) = back {
            m.insert("verificationBackTime".into(), self.time(back));
        }
        m.insert("mcc".into(), self.num(i64::from(t.network.mcc)));
        m.insert("mnc".into(), self.num(i64::from(t.network.mnc)));
        let (status, reason) = match (back, a.result) {
            (Some(_), AttemptResult::Delivered) => (0, a.reason),
            (Some(_), AttemptResult::Failed) => (1, a.reason),
            _ => (-1, ""),
        };
        m.insert("status".into(), self.num(status));
        m.insert("reason".into(), Value::from(reason));
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::profile_for_country;
    use crate::timeline::tests::generator;
    use crate::timeline::{Order, Timeline};

    /// 2022-07-12T13:39:45+08:00, the provider sample's first time.
    const SENT: i64 = 1_657_604_385_000;
    const VALIDITY: u32 = 300_000;

    fn order(id: &str, timeline: Timeline) -> Order {
        Order {
            order_id: id.into(),
            app_id: "app".into(),
            receiver: "919856321412".into(),
            sent_at_ms: SENT,
            timeline,
        }
    }

    /// The first order of `country`/`start` whose timeline satisfies `want`.
    fn find(
        country: &str,
        start: Channel,
        quirks: bool,
        want: impl Fn(&Timeline) -> bool,
    ) -> Order {
        let g = generator(11, VALIDITY, quirks);
        let p = profile_for_country(country).expect("simulated country");
        (0..20_000)
            .map(|i| format!("r-{i}"))
            .find_map(|id| {
                let t = g.generate(&id, p, start);
                want(&t).then(|| order(&id, t))
            })
            .expect("such an order exists")
    }

    fn at(o: &Order, offset: u32) -> Value {
        render(o, SENT + i64::from(offset), 1.0)
    }

    fn matched(v: &Value) -> i64 {
        v["verifications"]["matched"].as_i64().expect("matched")
    }

    #[test]
    fn sms_fields_appear_with_their_events() {
        let o = find("IN", Channel::Sms, false, |t| {
            t.attempts.len() == 1
                && t.verification
                    .is_some_and(|v| v.kind == VerifyKind::Matched)
                && t.attempts[0]
                    .done
                    .is_some_and(|d| t.verification.is_some_and(|v| d < v.at))
        });
        let a = &o.timeline.attempts[0];
        let (done, verified) = (
            a.done.expect("done"),
            o.timeline.verification.expect("v").at,
        );

        let before = at(&o, a.submit - 1);
        assert!(before.get("sms").is_none(), "{before}");
        assert_eq!(matched(&before), 1);
        assert_eq!(before["verifications"]["channel"], "sms");
        assert_eq!(before["flowId"], 1);
        assert_eq!(before["orderId"], o.order_id.as_str());
        assert_eq!(before["verifications"]["oriReceiver"], "919856321412");

        let sending = at(&o, done - 1);
        let sms = &sending["sms"][0];
        assert_eq!(sms["status"], -1);
        assert!(sms.get("doneTm").is_none());
        assert_eq!(
            sms["submitTm"],
            format_time(SENT + i64::from(a.submit), false, false)
        );
        assert_eq!(sms["mcc"], o.timeline.network.mcc);
        assert_eq!(sms["chargeCnt"], a.segments);
        assert_eq!(sms["pay"], money(a.amount));
        assert_eq!(matched(&sending), 1);

        let delivered = at(&o, done);
        assert_eq!(delivered["sms"][0]["status"], 0);
        assert_eq!(
            delivered["sms"][0]["doneTm"],
            format_time(SENT + i64::from(done), false, false)
        );
        assert_eq!(matched(&delivered), -1);
        assert!(delivered["verifications"].get("verifiedDate").is_none());

        let after = at(&o, verified);
        assert_eq!(matched(&after), 0);
        assert_eq!(after["verifications"]["channel"], "sms");
        assert_eq!(
            after["verifications"]["verifiedDate"],
            format_time(SENT + i64::from(verified), false, false)
        );
        assert!(after.get("call").is_none() && after.get("sna").is_none());
    }

    #[test]
    fn late_dlr_shows_verified_while_sms_is_pending() {
        let o = find("IN", Channel::Sms, false, |t| {
            t.verification.is_some_and(|v| {
                v.channel == Channel::Sms
                    && v.kind == VerifyKind::Matched
                    && t.attempts[0].done.is_some_and(|d| d > v.at)
            })
        });
        let v = o.timeline.verification.expect("verified");
        let done = o.timeline.attempts[0].done.expect("done");
        let r = at(&o, v.at);
        assert_eq!(matched(&r), 0);
        assert_eq!(r["sms"][0]["status"], -1);
        assert!(done - v.at <= (f64::from(VALIDITY) * 0.3) as u32);
        assert_eq!(at(&o, done)["sms"][0]["status"], 0);
    }

    #[test]
    fn call_termination_appears_at_hangup() {
        let o = find("NG", Channel::Call, false, |t| {
            t.attempts[0].channel == Channel::Call && t.attempts[0].result == AttemptResult::Failed
        });
        let a = &o.timeline.attempts[0];
        let hangup = a.done.expect("hangup");
        let ringing = at(&o, hangup - 1);
        let call = &ringing["call"][0];
        assert!(call.get("terminationCode").is_none(), "{call}");
        assert!(call.get("cost").is_none());
        assert!(call.get("ringingTime").is_some());
        assert_eq!(ringing["flowId"], 2);
        let ended = at(&o, hangup);
        let call = &ended["call"][0];
        assert_eq!(call["terminationCode"], a.termination_code);
        assert_ne!(call["terminationCode"], 0);
        assert_eq!(call["cost"], "0");
        assert_eq!(call["billPeriodstring"], "20+20");
        assert!(call.get("answerTime").is_none());
    }

    #[test]
    fn wrong_code_and_stuck_orders() {
        let o = find("NG", Channel::Sms, false, |t| {
            t.verification
                .is_some_and(|v| v.kind == VerifyKind::WrongCode)
        });
        let v = o.timeline.verification.expect("verification");
        assert_ne!(matched(&at(&o, v.at - 1)), 2);
        let r = at(&o, v.at);
        assert_eq!(matched(&r), 2);
        assert!(r["verifications"].get("verifiedDate").is_some());
        assert_eq!(matched(&at(&o, VALIDITY * 10)), 2);

        let stuck = find("NG", Channel::Sna, false, |t| t.is_stuck());
        let late = at(&stuck, VALIDITY * 10);
        assert_eq!(matched(&late), 1);
        assert_eq!(late["sna"][0]["status"], -1);
        assert!(late["sna"][0].get("verificationBackTime").is_none());

        let unverified = find("BR", Channel::Sms, false, |t| {
            t.verification.is_none()
                && t.attempts
                    .iter()
                    .any(|a| a.result == AttemptResult::Delivered)
        });
        assert_eq!(matched(&at(&unverified, VALIDITY * 2)), -1);
    }

    #[test]
    fn quirks_vary_the_shape_not_the_facts() {
        let o = find("IN", Channel::Sms, true, |t| {
            t.quirks.has(Quirks::STRING_NUMBERS) && t.quirks.has(Quirks::LOCAL_TIMES)
        });
        let r = at(&o, VALIDITY * 2);
        let sms = &r["sms"][0];
        assert_eq!(sms["mcc"], o.timeline.network.mcc.to_string());
        assert!(sms["status"].is_string());
        assert_eq!(r["flowId"], "1");
        let submit = sms["submitTm"].as_str().expect("text");
        assert_eq!(submit.len(), "2022-07-12 13:39:45".len(), "{submit}");
        assert!(!submit.contains('T') && !submit.contains('+'));

        let call = find("IN", Channel::Call, true, |t| {
            t.quirks.has(Quirks::NULL_DISPLAY)
        });
        assert!(at(&call, VALIDITY * 2)["call"][0]["displayNum"].is_null());
        let plain = find("IN", Channel::Call, false, |_| true);
        assert!(at(&plain, VALIDITY * 2)["call"][0]["displayNum"].is_string());

        let extra = find("IN", Channel::Sms, true, |t| {
            t.quirks.has(Quirks::EXTRA_FIELDS)
        });
        assert_eq!(at(&extra, VALIDITY * 2)["sceneType"], "OTP");
        let hidden = find("IN", Channel::Sms, true, |t| {
            t.quirks.has(Quirks::NO_DONE_TIME) && t.attempts[0].result == AttemptResult::Delivered
        });
        assert_eq!(at(&hidden, VALIDITY * 2)["sms"][0]["doneTm"], "");
    }

    #[test]
    fn scaled_times_carry_milliseconds() {
        let o = find("US", Channel::Sms, false, |t| t.attempts[0].done.is_some());
        let a = &o.timeline.attempts[0];
        let scale = 0.02;
        let done = a.done.expect("done");
        let done_at = SENT + (f64::from(done) * scale).round() as i64;
        let before = render(&o, done_at - 1, scale);
        assert!(before["sms"][0].get("doneTm").is_none());
        let after = render(&o, done_at, scale);
        assert_eq!(after["sms"][0]["doneTm"], format_time(done_at, false, true));
        assert!(after["sms"][0]["submitTm"]
            .as_str()
            .is_some_and(|t| t.contains('.')));
    }

    #[test]
    fn formats() {
        assert_eq!(format_time(SENT, false, false), "2022-07-12T13:39:45+08:00");
        assert_eq!(
            format_time(SENT + 7, false, true),
            "2022-07-12T13:39:45.007+08:00"
        );
        assert_eq!(format_time(SENT, true, false), "2022-07-12 13:39:45");
        assert_eq!(format_time(SENT, true, true), "2022-07-12 13:39:45.000");
        assert_eq!(money(0), "0");
        assert_eq!(money(30), "0.003");
        assert_eq!(money(1_380), "0.138");
        assert_eq!(money(35), "0.0035");
        assert_eq!(money(12_500), "1.25");
        assert_eq!(money(20_000), "2");
    }

    #[test]
    fn unknown_orders_have_no_record() {
        assert!(render_unknown("nope", 1, false).is_null());
        let shapes: Vec<Value> = (0..30)
            .map(|i| render_unknown(&format!("u{i}"), 1, true))
            .collect();
        assert!(shapes.iter().any(Value::is_null));
        let matched3 = shapes
            .iter()
            .find(|v| !v.is_null())
            .expect("some matched 3");
        assert_eq!(matched3["verifications"]["matched"], 3);
        assert!(matched3["orderId"]
            .as_str()
            .is_some_and(|id| id.starts_with('u')));
    }
}

//! The record endpoint's wire model, decoded leniently (the balance endpoint's is in
//! `wire::balance`, read with the same machinery).
//!
//! Real payloads mix types (`"status": "0"` next to `"matched": 0`, MCCs as strings,
//! `null` anywhere, arrays missing). Each field is read with a small converter instead
//! of strict derives, so one odd field never loses a whole record. Decoding streams the
//! body through serde visitors written here (no `serde_json::Value` tree: this runs on
//! every poll), borrowing strings from the body where it can.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Number;

mod balance;
pub use balance::{decode_balance, Amount, BalanceKind, BalanceReply, MAX_SHOWN_CHARS};

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
/// once, as `pub field: Option<Type>`, and read from a JSON object by [`WireObject`]
/// with its type's [`Lenient`] converter. Unknown keys are ignored; a missing, `null` or
/// unusable value is `None`, so one odd field never loses the record. A key sent twice
/// counts once, with its last value (as a JSON map keeps it).
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

        impl WireObject for $name {
            fn read_fields<'de, A: MapAccess<'de>>(
                mut map: A,
                unusable: &mut InvalidValues,
            ) -> Result<Self, A::Error> {
                $( let mut $field = FieldSlot::<$ty>::default(); )*
                while let Some(key) = map.next_key::<Key>()? {
                    match key.as_str() {
                        $( $key => $field.read(&map.next_value()?), )*
                        _ => {
                            map.next_value::<Skip>()?;
                        }
                    }
                }
                $( $field.count_unusable($key, unusable); )*
                Ok($name { $( $field: $field.value, )* })
            }
        }

        /// The old decoder, kept as the test oracle (see `oracle`).
        #[cfg(test)]
        impl $name {
            fn from_object(o: &serde_json::Map<String, serde_json::Value>) -> Self {
                $name {
                    $( $field: o.get($key).and_then(|v| <$ty as Lenient>::lenient(&oracle::scalar(v))), )*
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
    let Body(envelope) =
        serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let envelope = envelope.ok_or(DecodeError::NotObject)?;
    Ok(Reply {
        status: envelope.status.ok_or(DecodeError::NoStatus)?,
        reason: envelope.reason,
        data: envelope.data,
    })
}

// The decoding machinery. Every value is read with `deserialize_any`, as
// `serde_json::Value` reads it: the same input is refused at the same place with the
// same error (syntax, UTF-8, number range, nesting depth), and a value of an
// unexpected shape is read whole and dropped instead of failing the body. Values are
// dropped through [`Skip`], not serde's `IgnoredAny`: serde_json skips those without
// checking UTF-8 or number ranges, and counts their nesting differently, so bodies
// that reading into a `Value` refuses would pass.

/// The whole body: `None` when it is JSON but not an object.
struct Body(Option<Envelope>);

/// The envelope's fields as read; `status` is checked by [`decode_reply`].
struct Envelope {
    status: Option<i64>,
    reason: Option<String>,
    data: Option<Record>,
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        read_shape(deserializer, EnvelopeShape).map(Body)
    }
}

struct EnvelopeShape;

impl<'de> Shape<'de> for EnvelopeShape {
    type Value = Option<Envelope>;

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope {
            status: None,
            reason: None,
            data: None,
        };
        while let Some(key) = map.next_key::<Key>()? {
            match key.as_str() {
                "status" => envelope.status = int(&map.next_value()?),
                "reason" => envelope.reason = text(&map.next_value()?),
                "data" => envelope.data = map.next_value_seed(ReadShape(RecordShape))?,
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(Some(envelope))
    }
}

/// `data`: a record when it is an object, `None` otherwise.
struct RecordShape;

impl<'de> Shape<'de> for RecordShape {
    type Value = Option<Record>;

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut record = Record::default();
        // Amounts are counted per list, so that a list sent twice counts once (the last).
        let mut sms = Attempts::default();
        let mut call = Attempts::default();
        let mut sna = Attempts::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key.as_str() {
                "orderId" => record.order_id = text(&map.next_value()?),
                "flowId" => record.flow_id = int(&map.next_value()?),
                "verifications" => {
                    record.verification = map.next_value_seed(ReadShape(VerificationsShape))?;
                }
                "sms" => sms = map.next_value_seed(ReadShape(AttemptsShape::new()))?,
                "call" => call = map.next_value_seed(ReadShape(AttemptsShape::new()))?,
                "sna" => sna = map.next_value_seed(ReadShape(AttemptsShape::new()))?,
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        // By channel, whatever the order of the keys: `pay` before `cost`.
        for unusable in [&sms.unusable, &call.unusable, &sna.unusable] {
            record.unusable.merge(unusable);
        }
        record.sms = sms.items;
        record.call = call.items;
        record.sna = sna.items;
        Ok(Some(record))
    }
}

/// One channel's attempts, and the amounts among them that were sent but unusable.
#[derive(Default)]
struct Attempts<T> {
    items: Vec<T>,
    unusable: InvalidValues,
}

/// Objects of an array; a lone object counts as a one-element array, anything else as empty.
struct AttemptsShape<T>(PhantomData<T>);

impl<T> AttemptsShape<T> {
    fn new() -> Self {
        AttemptsShape(PhantomData)
    }
}

impl<'de, T: WireObject> Shape<'de> for AttemptsShape<T> {
    type Value = Attempts<T>;

    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let mut unusable = InvalidValues::default();
        let item = T::read_fields(map, &mut unusable)?;
        Ok(Attempts {
            items: vec![item],
            unusable,
        })
    }

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut attempts = Attempts::default();
        while let Some(item) =
            seq.next_element_seed(ReadShape(ObjectShape::<T>::new(&mut attempts.unusable)))?
        {
            attempts.items.extend(item);
        }
        Ok(attempts)
    }
}

/// An array's item: read when it is an object, `None` otherwise.
struct ObjectShape<'u, T> {
    unusable: &'u mut InvalidValues,
    item: PhantomData<T>,
}

impl<'u, T> ObjectShape<'u, T> {
    fn new(unusable: &'u mut InvalidValues) -> Self {
        ObjectShape {
            unusable,
            item: PhantomData,
        }
    }
}

impl<'de, T: WireObject> Shape<'de> for ObjectShape<'_, T> {
    type Value = Option<T>;

    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::read_fields(map, self.unusable).map(Some)
    }
}

/// `verifications` is documented as one object; tolerate an array of them, preferring
/// the entry that was verified ([`Matched::is_verified`]), since that one decides the
/// outcome, else the first object.
struct VerificationsShape;

impl<'de> Shape<'de> for VerificationsShape {
    type Value = Option<Verification>;

    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        // A verification has no amounts: nothing to count.
        Verification::read_fields(map, &mut InvalidValues::default()).map(Some)
    }

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut no_amounts = InvalidValues::default();
        let mut first = None;
        while let Some(item) =
            seq.next_element_seed(ReadShape(ObjectShape::<Verification>::new(&mut no_amounts)))?
        {
            let Some(verification) = item else { continue };
            if verification.matched.is_some_and(Matched::is_verified) {
                // The rest cannot change the choice, but must still be valid JSON.
                while seq.next_element::<Skip>()?.is_some() {}
                return Ok(Some(verification));
            }
            first.get_or_insert(verification);
        }
        Ok(first)
    }
}

/// A wire struct read key by key from a JSON object.
trait WireObject: Default {
    /// Reads the object's fields; amounts sent but unusable are counted in `unusable`.
    fn read_fields<'de, A: MapAccess<'de>>(
        map: A,
        unusable: &mut InvalidValues,
    ) -> Result<Self, A::Error>;
}

/// A field's value while its object is read: the last one sent wins.
struct FieldSlot<T> {
    value: Option<T>,
    /// Sent (not absent, `null` or blank) but no value of the field's type.
    unusable: bool,
}

impl<T> Default for FieldSlot<T> {
    fn default() -> Self {
        FieldSlot {
            value: None,
            unusable: false,
        }
    }
}

impl<T: Lenient> FieldSlot<T> {
    fn read(&mut self, sent: &Scalar) {
        self.value = T::lenient(sent);
        self.unusable = sent.is_sent() && self.value.is_none();
    }

    /// Counts the field under `key` when it was sent but unusable and its type is one
    /// whose drops are counted (amounts).
    fn count_unusable(&self, key: &'static str, into: &mut InvalidValues) {
        if T::COUNTS_UNUSABLE && self.unusable {
            into.add(key);
        }
    }
}

/// A field type and how it is read from whatever JSON the provider sent for it.
trait Lenient: Sized {
    /// Whether a value sent but unusable is counted in [`Record::unusable`].
    const COUNTS_UNUSABLE: bool = false;

    fn lenient(v: &Scalar) -> Option<Self>;
}

impl Lenient for String {
    fn lenient(v: &Scalar) -> Option<Self> {
        text(v)
    }
}

impl Lenient for i64 {
    fn lenient(v: &Scalar) -> Option<Self> {
        int(v)
    }
}

/// The only decimals on this wire are amounts of money (`pay`, `cost`).
impl Lenient for f64 {
    const COUNTS_UNUSABLE: bool = true;

    fn lenient(v: &Scalar) -> Option<Self> {
        money(v)
    }
}

impl Lenient for Matched {
    fn lenient(v: &Scalar) -> Option<Self> {
        int(v).map(Matched)
    }
}

/// An integer sent as a number or as a string (`0`, `"0"`, `" -18 "`, `404.0`).
fn int(v: &Scalar) -> Option<i64> {
    match v {
        Scalar::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        Scalar::Text(s) => {
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
fn text(v: &Scalar) -> Option<String> {
    match v {
        Scalar::Text(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Scalar::Number(n) => Some(n.to_string()),
        Scalar::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A non-negative finite amount sent as a decimal string or a number.
fn money(v: &Scalar) -> Option<f64> {
    let amount = match v {
        Scalar::Number(n) => n.as_f64(),
        Scalar::Text(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }?;
    (amount.is_finite() && amount >= 0.0).then_some(amount)
}

/// A value where a scalar is expected. Strings are borrowed from the body unless
/// they had escapes; an object or array is read (and checked) but not kept.
enum Scalar<'de> {
    Null,
    Bool(bool),
    Number(Number),
    Text(Cow<'de, str>),
    Nested,
}

impl Scalar<'_> {
    /// Sent at all: not `null` and not a blank string.
    fn is_sent(&self) -> bool {
        match self {
            Scalar::Null => false,
            Scalar::Text(s) => !s.trim().is_empty(),
            Scalar::Bool(_) | Scalar::Number(_) | Scalar::Nested => true,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

// Numbers are built as `Value` builds them (from the same `visit_*` calls), so `int`,
// `text` and `money` see the numbers the old decoder saw.
impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Number::from_f64(v).map_or(Scalar::Null, Scalar::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        drain_seq(seq).map(|()| Scalar::Nested)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        drain_map(map).map(|()| Scalar::Nested)
    }
}

/// An object key, borrowed from the body unless it had escapes (`"p\u0061y"` is `pay`).
/// serde's own `Cow<str>` always copies.
struct Key<'de>(Cow<'de, str>);

impl Key<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

/// Any JSON value, read in full (so checked as `Value` checks it) and dropped.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        read_shape(deserializer, SkipShape).map(|()| Skip)
    }
}

struct SkipShape;

impl Shape<'_> for SkipShape {
    type Value = ();
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_key::<Skip>()?.is_some() {
        map.next_value::<Skip>()?;
    }
    Ok(())
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<Skip>()?.is_some() {}
    Ok(())
}

/// What to make of a JSON value by its shape: `object` and `array` read the shapes a
/// field wants; every other value (and by default objects and arrays too) is read,
/// checked and dropped, giving the default (`None`, nothing). No shape is an error: an
/// odd value never fails the body.
trait Shape<'de>: Sized {
    type Value: Default;

    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        drain_map(map).map(|()| Self::Value::default())
    }

    fn array<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        drain_seq(seq).map(|()| Self::Value::default())
    }
}

fn read_shape<'de, D: Deserializer<'de>, S: Shape<'de>>(
    deserializer: D,
    shape: S,
) -> Result<S::Value, D::Error> {
    deserializer.deserialize_any(ShapeVisitor(shape))
}

/// A [`Shape`] as a seed for `next_value_seed` / `next_element_seed`.
struct ReadShape<S>(S);

impl<'de, S: Shape<'de>> DeserializeSeed<'de> for ReadShape<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        read_shape(deserializer, self.0)
    }
}

struct ShapeVisitor<S>(S);

// serde_json's `deserialize_any` calls only these `visit_*` methods (without its
// `arbitrary_precision` feature); the others would be errors, which no input reaches.
impl<'de, S: Shape<'de>> Visitor<'de> for ShapeVisitor<S> {
    type Value = S::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Self::Value::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Self::Value::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Self::Value::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Self::Value::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Self::Value::default())
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Self::Value::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.array(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.object(map)
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

/// The decoder this module had before it streamed: the body read into a
/// `serde_json::Value`, then walked. Kept verbatim as the oracle of the property tests
/// below (`same_as_oracle`), which hold the streaming decoder to its results.
#[cfg(test)]
mod oracle {
    use std::borrow::Cow;

    use serde_json::{Map, Value};

    use super::{
        CallAttempt, DecodeError, InvalidValues, Matched, Record, Reply, Scalar, SmsAttempt,
        SnaAttempt, Verification,
    };

    /// Decodes a response body.
    pub(super) fn decode_reply(body: &[u8]) -> Result<Reply, DecodeError> {
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
    fn note_unusable(
        o: &Map<String, Value>,
        key: &'static str,
        read: bool,
        into: &mut InvalidValues,
    ) {
        let sent = match o.get(key) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
        };
        if sent && !read {
            into.add(key);
        }
    }

    /// A tree value as the production converters (`int`, `text`, `money`, the
    /// `Lenient` impls) read it: the oracle checks how a document is walked; the
    /// converters have their own unit tests.
    pub(super) fn scalar(v: &Value) -> Scalar<'_> {
        match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => Scalar::Number(n.clone()),
            Value::String(s) => Scalar::Text(Cow::Borrowed(s)),
            Value::Array(_) | Value::Object(_) => Scalar::Nested,
        }
    }

    fn int(v: &Value) -> Option<i64> {
        super::int(&scalar(v))
    }

    fn text(v: &Value) -> Option<String> {
        super::text(&scalar(v))
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
}

/// The streaming decoder against the oracle: the same `Ok` value or the same error
/// (`NotJson` with the same message) for every body.
#[cfg(test)]
mod same_as_oracle {
    use proptest::prelude::*;
    use proptest::sample::{select, Index};
    use serde_json::{Number, Value};

    use super::{decode_reply, oracle, DecodeError};

    fn cases(default: u32) -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default);
        ProptestConfig {
            cases,
            // Failures are reported with their shrunk input; no files in the source tree.
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    fn assert_same(body: &[u8]) -> Result<(), TestCaseError> {
        prop_assert_eq!(
            decode_reply(body),
            oracle::decode_reply(body),
            "body: {}",
            String::from_utf8_lossy(body)
        );
        Ok(())
    }

    /// `s` as a JSON string literal (control characters and quotes escaped).
    fn quoted(s: &str) -> String {
        Value::from(s).to_string()
    }

    /// A key as written: plain, or with its first character as a `\u` escape (the
    /// same key once decoded).
    fn key_text(key: &str, escaped: bool) -> String {
        let mut chars = key.chars();
        match chars.next() {
            Some(first) if escaped && (first as u32) < 0x10000 => {
                format!("\"\\u{:04x}{}\"", first as u32, chars.as_str())
            }
            _ => quoted(key),
        }
    }

    fn any_text(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter)
    }

    /// Entries as written, in order: duplicate keys stay duplicates.
    fn object_text(entries: Vec<(String, String)>) -> String {
        let entries: Vec<String> = entries
            .into_iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        format!("{{{}}}", entries.join(","))
    }

    fn array_text(items: Vec<String>) -> String {
        format!("[{}]", items.join(", "))
    }

    /// What a scalar field may hold, as JSON text: numbers of every kind, numbers as
    /// strings (padded, signed, not finite, huge), blank strings, `null`, booleans,
    /// objects and arrays, strings with escapes, any text.
    fn scalar_value() -> BoxedStrategy<String> {
        let numbers = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            (-5i64..5).prop_map(|n| n.to_string()),
            // Debug also writes `NaN` and `inf`: not JSON, so the body is refused.
            any::<f64>().prop_map(|f| format!("{f:?}")),
            (0.0f64..10.0).prop_map(|f| f.to_string()),
            select(vec![
                "0",
                "-0",
                "0.0",
                "-0.0",
                "404.0",
                "1e3",
                "1E2",
                "9e15",
                "-9e15",
                "8999999999999999",
                "9007199254740993",
                "18446744073709551616",
                "-9223372036854775809",
                "1e308",
                "1e400",
                "-1e400",
                "1.5e-320",
                "0.000002",
                "1.0e0",
            ])
            .prop_map(String::from),
        ];
        let numeric_strings = (
            prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                any::<f64>().prop_map(|f| f.to_string()),
                select(vec![
                    "0",
                    "-18",
                    "404.0",
                    "1e3",
                    "NaN",
                    "nan",
                    "inf",
                    "-inf",
                    "infinity",
                    "-1",
                    "-0",
                    "0.000002",
                    "1e309",
                    "9e15",
                    "8999999999999999.0",
                    "0.5",
                    "+1",
                    "1_000",
                    "0x10",
                    "1e",
                    ".5",
                    "5.",
                    "-0.5",
                ])
                .prop_map(String::from),
            ],
            select(vec!["", " ", "\t", "\n ", "\u{a0}"]),
        )
            .prop_map(|(n, pad)| quoted(&format!("{pad}{n}{pad}")));
        let odd = select(vec![
            "null",
            "true",
            "false",
            r#""""#,
            r#""   ""#,
            r#""\t\n""#,
            r#""\u0020""#,
            "{}",
            "[]",
            r#"{"x":1}"#,
            r#"[1,"2",null]"#,
            r#"{"pay":"1","matched":0}"#,
            "[[[[]]]]",
            r#"[{"matched":0}]"#,
        ])
        .prop_map(String::from);
        let escaped = select(vec![
            r#""\u0031\u0032""#,
            r#"" \t7\n""#,
            r#""a\"b""#,
            r#""\\""#,
            r#""\/x""#,
            r#""\ud83d\ude00""#,
            r#""\u00e9t\u00e9""#,
            r#""sms\u0000""#,
            r#""\u002d1""#,
            r#""0\u002e5""#,
        ])
        .prop_map(String::from);
        prop_oneof![
            3 => numbers,
            3 => numeric_strings,
            2 => odd,
            1 => escaped,
            1 => any_text(8).prop_map(|s| quoted(&s)),
        ]
        .boxed()
    }

    /// An object of `keys` (each possibly escaped) and unknown keys, any of them
    /// missing or repeated, values from `value`.
    fn wire_object(
        keys: &'static [&'static str],
        value: BoxedStrategy<String>,
    ) -> BoxedStrategy<String> {
        let known = (select(keys), any::<bool>()).prop_map(|(k, escaped)| key_text(k, escaped));
        let unknown = select(vec!["sender", "x", "", "STATUS", "pay ", "Matched"]).prop_map(quoted);
        let key = prop_oneof![4 => known, 1 => unknown];
        prop::collection::vec((key, value), 0..8)
            .prop_map(object_text)
            .boxed()
    }

    /// A channel's attempts: a lone object, an array mixing objects with anything, or a scalar.
    fn attempt_list(item: BoxedStrategy<String>) -> BoxedStrategy<String> {
        let mixed = prop_oneof![3 => item.clone(), 1 => scalar_value()];
        prop_oneof![
            2 => item,
            4 => prop::collection::vec(mixed, 0..4).prop_map(array_text),
            1 => scalar_value(),
        ]
        .boxed()
    }

    fn verification() -> BoxedStrategy<String> {
        let matched = select(vec![
            "0", "4", r#""0""#, r#"" 4 ""#, "2", "-1", r#""x""#, "null", "4.0", "3", "1",
        ])
        .prop_map(String::from);
        let value = prop_oneof![2 => matched, 1 => scalar_value()].boxed();
        wire_object(
            &[
                "matched",
                "matched",
                "verifiedDate",
                "oriReceiver",
                "channel",
            ],
            value,
        )
    }

    fn record() -> BoxedStrategy<String> {
        let sms = wire_object(
            &[
                "submitTm",
                "sendTm",
                "doneTm",
                "mcc",
                "mnc",
                "chargeCnt",
                "pay",
                "pay",
                "status",
                "reason",
            ],
            scalar_value(),
        );
        let call = wire_object(
            &[
                "terminationCode",
                "terminationReason",
                "submitTime",
                "answerTime",
                "hangupTime",
                "cost",
                "cost",
            ],
            scalar_value(),
        );
        let sna = wire_object(
            &[
                "postVerificationTime",
                "verificationBackTime",
                "mcc",
                "mnc",
                "status",
                "reason",
            ],
            scalar_value(),
        );
        let verifications = prop_oneof![
            2 => verification(),
            2 => prop::collection::vec(prop_oneof![3 => verification(), 1 => scalar_value()], 0..4)
                .prop_map(array_text),
            1 => scalar_value(),
        ];
        let entry = |key: &'static str, value: BoxedStrategy<String>| {
            (any::<bool>(), value).prop_map(move |(escaped, v)| (key_text(key, escaped), v))
        };
        let entries = prop_oneof![
            entry("orderId", scalar_value()),
            entry("flowId", scalar_value()),
            entry("verifications", verifications.boxed()),
            entry("sms", attempt_list(sms)),
            entry("call", attempt_list(call)),
            entry("sna", attempt_list(sna)),
            (
                select(vec!["sender", "data", "status"]).prop_map(quoted),
                scalar_value()
            ),
        ];
        prop::collection::vec(entries, 0..8)
            .prop_map(object_text)
            .boxed()
    }

    /// A whole answer: mostly an envelope with a status, sometimes anything else.
    fn answer() -> BoxedStrategy<String> {
        let data_key = || any::<bool>().prop_map(|escaped| key_text("data", escaped));
        // More keys, any of them repeated: a later one overrides the one that is placed.
        let entry = prop_oneof![
            (Just(quoted("status")), status_value()),
            (Just(quoted("reason")), scalar_value()),
            (data_key(), prop_oneof![record(), scalar_value()]),
            (
                select(vec!["extra", "sms", "Status"]).prop_map(quoted),
                scalar_value()
            ),
        ];
        let envelope = (
            prop::collection::vec(entry, 0..4),
            prop::option::weighted(0.9, (Just(quoted("status")), status_value())),
            prop::option::weighted(0.9, (data_key(), record())),
            any::<[Index; 2]>(),
        )
            .prop_map(|(mut entries, status, data, at)| {
                for (entry, at) in [status, data].into_iter().zip(at) {
                    if let Some(entry) = entry {
                        entries.insert(at.index(entries.len() + 1), entry);
                    }
                }
                object_text(entries)
            });
        prop_oneof![
            14 => envelope,
            1 => prop::collection::vec(record(), 0..2).prop_map(array_text),
            1 => scalar_value(),
        ]
        .boxed()
    }

    fn status_value() -> BoxedStrategy<String> {
        prop_oneof![
            3 => select(vec!["0", r#""0""#, "-18", r#"" 1 ""#, "0.0"]).prop_map(String::from),
            1 => scalar_value(),
        ]
        .boxed()
    }

    /// Any JSON value, keys mostly the wire's own so that it reaches the decoder's fields.
    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
            any_text(6).prop_map(Value::from),
            select(vec!["0", " 1 ", "", "-1", "0.5", "NaN"]).prop_map(Value::from),
        ];
        let key = prop_oneof![
            4 => select(vec![
                "status", "reason", "data", "orderId", "flowId", "verifications", "sms", "call",
                "sna", "matched", "pay", "cost", "mcc", "status", "terminationCode",
            ])
            .prop_map(String::from),
            1 => any_text(4),
        ];
        leaf.prop_recursive(5, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(cases(2000))]

        #[test]
        fn record_shaped_answers(body in answer()) {
            assert_same(body.as_bytes())?;
        }

        /// Broken bodies: the same error, message included (position and cause).
        #[test]
        fn truncated_or_corrupted_answers(
            body in answer(),
            at in any::<Index>(),
            byte in prop_oneof![
                select(vec![b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'1', b'-', b' ']),
                any::<u8>(),
            ],
            truncate in any::<bool>(),
        ) {
            let mut body = body.into_bytes();
            let at = at.index(body.len() + 1);
            if truncate {
                body.truncate(at);
            } else if at < body.len() {
                body[at] = byte;
            } else {
                body.push(byte);
            }
            assert_same(&body)?;
        }

        #[test]
        fn any_json_value(value in any_value(), status in prop::option::of(status_value())) {
            let mut body = value.to_string();
            // Give most objects a status so that their other keys are read too.
            if let (Some(status), Some(rest)) = (status, body.strip_prefix('{')) {
                let comma = if rest == "}" { "" } else { "," };
                body = format!(r#"{{"status":{status}{comma}{rest}"#);
            }
            assert_same(body.as_bytes())?;
        }

        #[test]
        fn any_bytes(
            prefix in select(vec!["", "{", r#"{"status":0,"data":"#, r#"{"status":0,"data":{"sms":["#]),
            bytes in prop::collection::vec(any::<u8>(), 0..48),
        ) {
            let mut body = prefix.as_bytes().to_vec();
            body.extend(bytes);
            assert_same(&body)?;
        }
    }

    /// serde_json's nesting limit (128) is reached at the same depth, wherever it is.
    #[test]
    fn nesting_limit_is_serde_jsons() {
        let (mut read, mut refused) = (0, 0);
        for depth in 124..=129 {
            let arrays = "[".repeat(depth) + &"]".repeat(depth);
            let objects = r#"{"a":"#.repeat(depth) + "1" + &"}".repeat(depth);
            for nested in [&arrays, &objects] {
                for body in [
                    nested.clone(),
                    format!(r#"{{"status":0,"x":{nested}}}"#),
                    format!(r#"{{"status":0,"reason":{nested}}}"#),
                    format!(r#"{{"status":0,"data":{{"orderId":{nested}}}}}"#),
                    format!(r#"{{"status":0,"data":{{"sms":[{{"pay":{nested}}}]}}}}"#),
                    format!(r#"{{"status":0,"data":{{"verifications":[{nested}]}}}}"#),
                    format!(r#"{{"status":0,"data":{{"call":{nested}}}}}"#),
                ] {
                    let ours = decode_reply(body.as_bytes());
                    assert_eq!(ours, oracle::decode_reply(body.as_bytes()), "{body}");
                    match ours {
                        Err(DecodeError::NotJson(_)) => refused += 1,
                        _ => read += 1,
                    }
                }
            }
        }
        assert!(read > 0 && refused > 0, "the limit is within these depths");
    }

    /// Values the decoder drops are still checked as `Value` checks them: serde's
    /// `IgnoredAny` would let these through.
    #[test]
    fn dropped_values_are_still_checked() {
        for body in [
            &b"{\"status\":0,\"x\":\"\xff\"}"[..],
            b"{\"status\":0,\"x\":1e400}",
            b"{\"status\":0,\"x\":\"\\ud800\"}",
            b"{\"status\":0,\"x\":{\"\xff\":1}}",
            b"{\"status\":0,\"data\":{\"sms\":[1e400]}}",
            b"{\"status\":0,\"data\":{\"verifications\":[{\"matched\":0},\"\xff\"]}}",
            b"{\"status\":0,\"data\":{\"orderId\":[-1e999]}}",
        ] {
            let ours = decode_reply(body);
            assert!(matches!(ours, Err(DecodeError::NotJson(_))), "{ours:?}");
            assert_eq!(ours, oracle::decode_reply(body));
        }
    }

    /// A key sent twice counts once, with its last value, also for the unusable count.
    #[test]
    fn duplicate_keys_last_wins() {
        let body = br#"{"status":"x","status":"0","data":{"sms":[{"pay":"-1","pay":"0.5"},
            {"pay":"1","p\u0061y":"bad"}],"call":{"cost":"x"},"call":[{"cost":1}],
            "verifications":{"matched":0},"verifications":[{"matched":2}]}}"#;
        let reply = decode_reply(body).unwrap();
        assert_eq!(Ok(reply.clone()), oracle::decode_reply(body));
        let record = reply.data.unwrap();
        assert_eq!(record.sms[0].pay, Some(0.5));
        assert_eq!(record.sms[1].pay, None);
        assert_eq!(
            (record.unusable.count("pay"), record.unusable.count("cost")),
            (1, 0)
        );
        assert_eq!(
            record.verification.unwrap().matched,
            Some(super::Matched::FAILED)
        );
    }
}

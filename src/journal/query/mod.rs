//! Questions to the journal, without I/O: the query parameters of `/api/v1/orders`,
//! `/api/v1/breakdown` and the pages (parsed and checked, every mistake named), the
//! filter lists and breakdowns apply to index rows, the breakdown's arithmetic, and the
//! JSON views of an order with its timeline in plain English.

mod breakdown;
mod list;
mod params;
mod timeline;

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat};
use serde::Serialize;
use serde_json::{json, Value};

use super::model::{Answer, AttemptDetail, Change, Entry, EventKind, IndexRow, State};
use crate::outcome::{Channel, Outcome};

pub use breakdown::*;
pub use list::*;
pub use params::*;
pub use timeline::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{new_entry, Event};
    use crate::outcome::AttemptResult;

    const NOW: i64 = 1_800_000_000_000;

    fn params(q: &str) -> Vec<(String, String)> {
        split_query(Some(q))
    }

    fn list_error(q: &str) -> String {
        parse_list(&params(q), NOW, &[]).unwrap_err().to_string()
    }

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

    #[test]
    fn bad_parameters_are_named_with_their_value() {
        assert!(list_error("contry=IN").contains("unknown parameter `contry`"));
        let e = list_error("since=yesterday");
        assert!(e.contains("`since`") && e.contains("\"yesterday\""), "{e}");
        let e = list_error("limit=1001");
        assert!(e.contains("`limit`") && e.contains("1001"), "{e}");
        assert!(list_error("limit=0").contains("`limit`"));
        assert!(list_error("mcc=abc").contains("`mcc`"));
        assert!(list_error("channel=fax").contains("`channel`"));
        assert!(list_error("state=done").contains("`state`"));
        assert!(list_error("outcome=pending").contains("use state=pending"));
        assert!(list_error("outcome=verified,nope").contains("`outcome`"));
        assert!(list_error("cursor=%%%").contains("`cursor`"));
        assert!(list_error("since=1h&until=2h").contains("`until`"));
        assert!(list_error("country=IN&country=DE").contains("twice"));
        let e = parse_breakdown(&params("by=planet"), NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`by`") && e.contains("planet"), "{e}");
        assert!(parse_breakdown(&params(""), NOW).is_err());
    }

    #[test]
    fn filters_are_normalised_and_defaulted() {
        let q = parse_list(
            &params("country=in&operator=Vodafone+Idea&channel=SMS&outcome=failed,expired&state=final&since=15m&app_id=&sort=x"),
            NOW,
            &["sort"],
        )
        .unwrap();
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert_eq!(q.filter.country.as_deref(), Some("IN"));
        assert_eq!(q.filter.operator.as_deref(), Some("vodafone_idea"));
        assert_eq!(q.filter.channel.as_deref(), Some("sms"));
        assert_eq!(q.filter.outcomes, [Outcome::Failed, Outcome::Expired]);
        assert_eq!(q.filter.state, Some(State::Final));
        assert_eq!(q.filter.since_ms, Some(NOW - 900_000));
        assert_eq!(q.filter.app_id, None, "an empty field is no filter");
        let b = parse_breakdown(&params("by=operator"), NOW).unwrap();
        assert_eq!(b.filter.since_ms, Some(NOW - DEFAULT_BREAKDOWN_MS));
        let c = Cursor {
            issued_ms: NOW,
            order_id: "a:b<c>".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
    }

    #[test]
    fn the_timeline_reads_as_plain_english() {
        let mut e = new_entry("o1", "app", NOW);
        e.attempts.push(AttemptDetail {
            channel: Channel::Sms,
            seq: 0,
            mcc: Some(404),
            mnc: Some(45),
            operator: Some("Airtel".into()),
            result: AttemptResult::Failed,
            provider_status: Some(1),
            provider_reason: Some("UNDELIV".into()),
            submit_ms: Some(NOW),
            done_ms: None,
            answer_ms: None,
            latency_ms: None,
            cost_usd: 0.0,
            segments: 1,
        });
        let sms = |from: Option<AttemptResult>, to: AttemptResult| match from {
            None => Change::AttemptAppeared {
                channel: Channel::Sms,
                seq: 0,
                result: to,
            },
            Some(from) => Change::AttemptChanged {
                channel: Channel::Sms,
                seq: 0,
                from,
                to,
            },
        };
        let at = |ms: i64, what: EventKind| Event {
            at_ms: NOW + ms,
            what,
        };
        e.timeline.extend([
            at(
                1000,
                EventKind::Answered {
                    answer: Answer::Record,
                    changes: vec![sms(None, AttemptResult::Pending)],
                },
            ),
            at(
                7000,
                EventKind::Quiet {
                    queries: 6,
                    errors: 2,
                },
            ),
            at(
                8000,
                EventKind::Answered {
                    answer: Answer::Record,
                    changes: vec![
                        sms(Some(AttemptResult::Pending), AttemptResult::Failed),
                        Change::Matched {
                            from: None,
                            to: Some(-1),
                        },
                    ],
                },
            ),
            at(
                9000,
                EventKind::QueryFailed {
                    detail: "timeout".into(),
                },
            ),
            at(
                9500,
                EventKind::Answered {
                    answer: Answer::NoRecord,
                    changes: vec![],
                },
            ),
            at(
                10_000,
                EventKind::Decided {
                    outcome: Outcome::Undelivered,
                    rule: "no attempt was delivered".into(),
                },
            ),
            at(
                11_000,
                EventKind::Finalized {
                    outcome: Outcome::Undelivered,
                    reason: "every attempt has a final result".into(),
                },
            ),
        ]);
        let lines = timeline_lines(&e);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "order issued (app app)",
                "SMS attempt 1 appeared: pending (MCC 404, MNC 45, Airtel)",
                "6 queries, nothing changed (2 failed)",
                "SMS attempt 1: pending → failed (status 1: UNDELIV); verification: none → not verified yet (-1)",
                "query failed: timeout",
                "the provider has no record of the order (yet)",
                "decided undelivered: no attempt was delivered",
                "finalized as undelivered: every attempt has a final result",
            ]
        );
        let json = detail_json(&e);
        assert_eq!(json["timeline"][2]["event"], "quiet");
        assert_eq!(json["timeline"][2]["queries"], 6);
        assert_eq!(json["timeline"][3]["changes"][0]["to"], "failed");
        assert_eq!(json["timeline"][0]["at"], "2027-01-15T08:00:00.000Z");
        assert_eq!(json["attempts"][0]["provider_reason"], "UNDELIV");
    }
}

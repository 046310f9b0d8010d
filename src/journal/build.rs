//! Pure rules of the journal: what changed between two answers, what an order's
//! latest record shows, why its outcome is what it is, and how an entry takes a batch's
//! update. No I/O: the scheduler calls these, the store writes the result.

use chrono::FixedOffset;

use super::model::{
    clip_reason, Answer, AttemptDetail, Change, Entry, Event, EventKind, IndexRow, State,
    MAX_TIMELINE,
};
use crate::api::wire::{parse_time_ms, Matched, Record};
use crate::outcome::{
    self, after, Attempt, AttemptResult, Channel, Limits, Observation, Outcome, Tracking, UNKNOWN,
};

/// The operator (network) name of an (MCC, MNC) pair, if the table knows it.
pub type OperatorNames<'a> = &'a dyn Fn(u16, u16) -> Option<&'static str>;

/// What the latest record shows of an order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub country: Option<String>,
    pub channel: Option<String>,
    pub mcc: Option<u16>,
    pub mnc: Option<u16>,
    pub operator: Option<String>,
    pub receiver: Option<String>,
    pub attempts: Vec<AttemptDetail>,
    pub fallbacks: Vec<(Channel, Channel)>,
    pub verified_ms: Option<i64>,
    pub verification_latency_ms: Option<i64>,
    /// The provider's verification state (`matched`).
    pub matched: Option<i64>,
}

/// What one batch brings to one order's entry. The scheduler sends one when
/// something may have changed; [`merge`] works out what did against the stored entry
/// (which survives restarts, unlike the scheduler's memory of the last record).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Update {
    pub app_id: String,
    pub issued_ms: i64,
    /// Queries between the previous update and this one's own query that changed
    /// nothing, and how many of them failed.
    pub quiet_queries: u32,
    pub quiet_errors: u32,
    /// The first failed query of a run: when and what.
    pub failure: Option<(i64, String)>,
    /// This update's answer: when and what.
    pub answer: Option<(i64, Answer)>,
    /// What the answer's record shows (with `answer` = [`Answer::Record`]).
    pub snapshot: Option<Snapshot>,
    pub decided: Option<(i64, Outcome, String)>,
    pub finalized: Option<(i64, Outcome, String)>,
    /// Queries sent for the order so far.
    pub queries: u32,
}

/// What changed in the record from what the entry shows to `latest`: attempts that
/// appeared or changed result, and the verification state.
pub fn changes(entry: &Entry, latest: &Snapshot) -> Vec<Change> {
    let mut changes = Vec::new();
    for a in &latest.attempts {
        let before = entry
            .attempts
            .iter()
            .find(|b| b.channel == a.channel && b.seq == a.seq);
        match before {
            None => changes.push(Change::AttemptAppeared {
                channel: a.channel,
                seq: a.seq,
                result: a.result,
            }),
            Some(b) if b.result != a.result => changes.push(Change::AttemptChanged {
                channel: a.channel,
                seq: a.seq,
                from: b.result,
                to: a.result,
            }),
            Some(_) => {}
        }
    }
    // "Not verified yet" and "sending" are where every order starts: not news.
    let starting = entry.matched.is_none()
        && matches!(
            latest.matched.map(Matched),
            Some(Matched::NOT_VERIFIED_YET | Matched::SENDING)
        );
    if entry.matched != latest.matched && !starting {
        changes.push(Change::Matched {
            from: entry.matched,
            to: latest.matched,
        });
    }
    changes
}

/// The journal's view of an order's latest record: the observation (believable values)
/// plus the provider's raw codes and report times, which only the journal shows.
pub fn snapshot(
    record: &Record,
    obs: &Observation,
    zone: &FixedOffset,
    operators: OperatorNames<'_>,
) -> Snapshot {
    let attempts: Vec<AttemptDetail> = obs
        .attempts
        .iter()
        .map(|a| attempt_detail(record, a, zone, operators))
        .collect();
    let network = attempts.iter().find(|a| a.mcc.is_some() && a.mnc.is_some());
    // The order's labels as its metrics will have them, without their samples.
    let (country, channel) = (outcome::country_of(obs), outcome::order_channel(obs));
    let verification_latency_ms = match (obs.attempts.first(), obs.verified_ms) {
        (Some(first), Some(verified)) => first
            .submit_ms
            .filter(|submit| verified >= *submit)
            .map(|submit| verified - submit),
        _ => None,
    };
    let receiver = record
        .verification
        .as_ref()
        .and_then(|v| v.ori_receiver.as_deref())
        .and_then(|n| super::mask_receiver(n, crate::geo::calling_code_of_number(n)));
    Snapshot {
        country: Some(country).filter(|c| *c != UNKNOWN).map(str::to_string),
        channel: Some(channel).filter(|c| *c != "none").map(str::to_string),
        mcc: network.and_then(|a| a.mcc),
        mnc: network.and_then(|a| a.mnc),
        operator: network.and_then(|a| a.operator.clone()),
        receiver,
        attempts,
        fallbacks: outcome::fallbacks(obs),
        verified_ms: obs.verified_ms,
        verification_latency_ms,
        matched: obs.matched.map(|m| m.0),
    }
}

/// One attempt as the journal shows it: the observation's believable values, the
/// provider's raw code, reason and report times from the record.
fn attempt_detail(
    record: &Record,
    a: &Attempt,
    zone: &FixedOffset,
    operators: OperatorNames<'_>,
) -> AttemptDetail {
    let time = |t: &Option<String>| t.as_deref().and_then(|t| parse_time_ms(t, zone));
    let i = usize::from(a.seq);
    let nothing = (None, None, None, None);
    let (status, reason, done_ms, answer_ms) = match a.channel {
        Channel::Sms => record.sms.get(i).map_or(nothing, |s| {
            (s.status, s.reason.as_deref(), time(&s.done_tm), None)
        }),
        Channel::Call => record.call.get(i).map_or(nothing, |c| {
            let reason = c.termination_reason.as_deref();
            (
                c.termination_code,
                reason,
                time(&c.hangup_time),
                time(&c.answer_time),
            )
        }),
        Channel::Sna => record.sna.get(i).map_or(nothing, |s| {
            let done = time(&s.verification_back_time);
            (s.status, s.reason.as_deref(), done, None)
        }),
    };
    let operator = match (a.mcc, a.mnc) {
        (Some(mcc), Some(mnc)) => operators(mcc, mnc).map(str::to_string),
        _ => None,
    };
    AttemptDetail {
        channel: a.channel,
        seq: a.seq,
        mcc: a.mcc,
        mnc: a.mnc,
        operator,
        result: a.result,
        provider_status: status,
        provider_reason: reason.and_then(clip_reason),
        submit_ms: a.submit_ms,
        done_ms,
        answer_ms,
        latency_ms: a.latency_ms,
        cost_usd: a.cost_usd,
        segments: a.segments,
    }
}

fn human(d: std::time::Duration) -> String {
    humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
}

/// Why `outcome` is the order's outcome, in one sentence for the person on call.
pub fn decision_rule(outcome: Outcome, last: Option<&Observation>, limits: &Limits) -> String {
    let window = human(limits.verification_window);
    match outcome {
        Outcome::Verified => match last.and_then(|o| o.matched) {
            Some(Matched::CODE_ALREADY_USED) => {
                "the provider reports the code as already used (matched CODE_ALREADY_USED): verified".to_string()
            }
            _ => "the provider reports the code verified (matched VERIFIED)".to_string(),
        },
        Outcome::Failed => format!(
            "the verification window ({window}) closed with the verification failed (matched FAILED: a wrong code was entered)"
        ),
        Outcome::Unverified => format!(
            "the verification window ({window}) closed: an attempt was delivered but the code was never verified"
        ),
        Outcome::Undelivered => format!(
            "the verification window ({window}) closed: no attempt was delivered, at least one failed"
        ),
        Outcome::NotFound => format!(
            "the provider had no record of the order for tracking.not_found_grace ({})",
            human(limits.not_found_grace)
        ),
        Outcome::Expired => format!(
            "no outcome within tracking.max_age ({}) of the issue time",
            human(limits.max_age)
        ),
    }
}

/// Why the order was finalized at `now_ms` (and not earlier or later).
pub fn finalize_reason(
    outcome: Outcome,
    tracking: &Tracking,
    limits: &Limits,
    now_ms: i64,
) -> String {
    let settled = tracking.last.as_ref().is_some_and(|o| !o.any_pending());
    match (outcome, tracking.decided_ms) {
        (Outcome::NotFound, None) => "the not-found grace ended without a record".to_string(),
        (_, Some(_)) if settled => "every attempt has a final result".to_string(),
        (_, Some(decided)) if now_ms >= after(decided, limits.settle_timeout) => format!(
            "tracking.settle_timeout ({}) passed since the decision with attempts still pending",
            human(limits.settle_timeout)
        ),
        _ => format!("tracking.max_age ({}) reached", human(limits.max_age)),
    }
}

/// A fresh entry for an order, with its "issued" line.
pub fn new_entry(order_id: &str, app_id: &str, issued_ms: i64) -> Entry {
    Entry {
        order_id: order_id.to_string(),
        app_id: app_id.to_string(),
        issued_ms,
        state: State::Pending,
        outcome: None,
        rule: None,
        decided_ms: None,
        finalized_ms: None,
        finalize_reason: None,
        country: None,
        channel: None,
        mcc: None,
        mnc: None,
        operator: None,
        queries: 0,
        receiver: None,
        attempts: Vec::new(),
        fallbacks: Vec::new(),
        verified_ms: None,
        verification_latency_ms: None,
        matched: None,
        timeline: vec![Event {
            at_ms: issued_ms,
            what: EventKind::Issued,
        }],
        timeline_dropped: 0,
    }
}

/// The entry after `update` (a missing entry, never written or evicted, starts anew).
pub fn merge(old: Option<Entry>, order_id: &str, update: Update) -> Entry {
    let mut entry = old.unwrap_or_else(|| new_entry(order_id, &update.app_id, update.issued_ms));
    let (lines, quiet) = query_lines(&entry, &update);
    if quiet.0 > 0 {
        // Stamped with the next line's time: when the run of quiet queries ended.
        let at_ms = [
            lines.first().map(|l| l.at_ms),
            update.answer.as_ref().map(|a| a.0),
            update.decided.as_ref().map(|d| d.0),
            update.finalized.as_ref().map(|f| f.0),
        ]
        .into_iter()
        .flatten()
        .next()
        .unwrap_or_else(|| entry.timeline.last().map_or(entry.issued_ms, |e| e.at_ms));
        push_quiet(&mut entry, at_ms, quiet.0, quiet.1);
    }
    for line in lines {
        push_event(&mut entry, line);
    }
    if let Some(s) = update.snapshot {
        take_snapshot(&mut entry, s);
    }
    if let Some((at_ms, outcome, rule)) = update.decided {
        entry.outcome = Some(outcome);
        entry.decided_ms = Some(at_ms);
        entry.rule = Some(rule.clone());
        let what = EventKind::Decided { outcome, rule };
        push_event(&mut entry, Event { at_ms, what });
    }
    if let Some((at_ms, outcome, reason)) = update.finalized {
        entry.state = State::Final;
        entry.outcome = Some(outcome);
        if entry.rule.is_none() || entry.decided_ms.is_none() {
            // Finalized without a decision first (not found, expired).
            entry.rule = Some(reason.clone());
        }
        entry.finalized_ms = Some(at_ms);
        entry.finalize_reason = Some(reason.clone());
        let what = EventKind::Finalized { outcome, reason };
        push_event(&mut entry, Event { at_ms, what });
    }
    entry.queries = entry.queries.max(update.queries);
    entry
}

/// The lines an update's query adds (its failure, its answer when it changed
/// something), and the quiet queries (count, failed) to note before them: the update's
/// own plus its answer when that changed nothing.
fn query_lines(entry: &Entry, update: &Update) -> (Vec<Event>, (u32, u32)) {
    let mut quiet = (update.quiet_queries, update.quiet_errors);
    let mut lines = Vec::new();
    if let Some((at_ms, detail)) = &update.failure {
        let what = EventKind::QueryFailed {
            detail: detail.clone(),
        };
        lines.push(Event {
            at_ms: *at_ms,
            what,
        });
    }
    let Some((at_ms, answer)) = &update.answer else {
        return (lines, quiet);
    };
    let changes = update
        .snapshot
        .as_ref()
        .map_or_else(Vec::new, |s| changes(entry, s));
    let previous = last_answer_or_failure(entry);
    let recovering = matches!(previous, Some(EventKind::QueryFailed { .. }));
    let repeated_no_record = *answer == Answer::NoRecord
        && matches!(
            previous,
            Some(EventKind::Answered {
                answer: Answer::NoRecord,
                ..
            })
        );
    let news = !changes.is_empty()
        || recovering
        || previous.is_none()
        || (*answer == Answer::NoRecord && !repeated_no_record);
    if news {
        let what = EventKind::Answered {
            answer: answer.clone(),
            changes,
        };
        lines.push(Event {
            at_ms: *at_ms,
            what,
        });
    } else {
        quiet.0 = quiet.0.saturating_add(1);
    }
    (lines, quiet)
}

/// Takes what the latest record shows (the receiver only when it names one).
fn take_snapshot(entry: &mut Entry, s: Snapshot) {
    entry.country = s.country;
    entry.channel = s.channel;
    entry.mcc = s.mcc;
    entry.mnc = s.mnc;
    entry.operator = s.operator;
    if s.receiver.is_some() {
        entry.receiver = s.receiver;
    }
    entry.attempts = s.attempts;
    entry.fallbacks = s.fallbacks;
    entry.verified_ms = s.verified_ms;
    entry.verification_latency_ms = s.verification_latency_ms;
    entry.matched = s.matched;
}

/// The latest answer or failure line of the timeline.
fn last_answer_or_failure(entry: &Entry) -> Option<&EventKind> {
    entry.timeline.iter().rev().map(|e| &e.what).find(|w| {
        matches!(
            w,
            EventKind::Answered { .. } | EventKind::QueryFailed { .. }
        )
    })
}

/// Adds quiet queries, to the last line when it is quiet too (one line per run).
fn push_quiet(entry: &mut Entry, at_ms: i64, queries: u32, errors: u32) {
    if let Some(Event {
        at_ms: last_at,
        what: EventKind::Quiet {
            queries: q,
            errors: e,
        },
    }) = entry.timeline.last_mut()
    {
        *q = q.saturating_add(queries);
        *e = e.saturating_add(errors);
        *last_at = (*last_at).max(at_ms);
        return;
    }
    push_event(
        entry,
        Event {
            at_ms,
            what: EventKind::Quiet { queries, errors },
        },
    );
}

/// Appends a line; past the cap the oldest line after the first goes.
fn push_event(entry: &mut Entry, event: Event) {
    entry.timeline.push(event);
    if entry.timeline.len() > MAX_TIMELINE {
        entry.timeline.remove(1);
        entry.timeline_dropped = entry.timeline_dropped.saturating_add(1);
    }
}

/// The time index's row of an entry of `entry_bytes` encoded bytes.
pub fn index_row<'a>(
    entry: &'a Entry,
    entry_bytes: usize,
    operator_label: Option<&'a str>,
) -> IndexRow<&'a str> {
    let count = |r: AttemptResult| {
        let n = entry.attempts.iter().filter(|a| a.result == r).count();
        u8::try_from(n).unwrap_or(u8::MAX)
    };
    IndexRow {
        app_id: &entry.app_id,
        state: entry.state,
        outcome: entry.outcome,
        country: entry.country.as_deref(),
        channel: entry.channel.as_deref(),
        mcc: entry.mcc,
        mnc: entry.mnc,
        operator_label,
        operator: entry.operator.as_deref(),
        latency_ms: entry
            .attempts
            .iter()
            .find(|a| a.result == AttemptResult::Delivered)
            .and_then(|a| a.latency_ms),
        cost_usd: entry.attempts.iter().map(|a| a.cost_usd).sum(),
        attempts_delivered: count(AttemptResult::Delivered),
        attempts_failed: count(AttemptResult::Failed),
        queries: entry.queries,
        finalized_ms: entry.finalized_ms,
        entry_bytes: u32::try_from(entry_bytes).unwrap_or(u32::MAX),
    }
}

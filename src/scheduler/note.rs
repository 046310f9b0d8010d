//! What the order journal notes of a query: a line when something changed, otherwise a
//! quiet query counted in memory and written with the next line. Pure: the scheduler's
//! core calls it with what happened; the store writes the update.

use super::queue::Entry;
use crate::journal;
use crate::outcome::{Limits, Outcome, Tracking};

/// What the journal notes of one query: its answer, a failure, and the record's view
/// when it may show something new.
#[derive(Debug, Default)]
pub(super) struct Said {
    pub(super) answer: Option<journal::Answer>,
    pub(super) failure: Option<String>,
    pub(super) snapshot: Option<journal::Snapshot>,
}

/// What happened to an order in `Core::advance`, for its journal.
pub(super) struct Noted<'a> {
    pub(super) decided_before: bool,
    /// Its persisted state changed, other than its poll interval.
    pub(super) changed: bool,
    pub(super) finalized: Option<Outcome>,
    pub(super) now_ms: i64,
    pub(super) limits: &'a Limits,
    pub(super) app_id: &'a str,
}

/// The journal update of an order after a query (or a deadline), or `None` when
/// nothing worth a line happened: then the query is counted as quiet in memory and
/// written with the next line. A line is written for what changes the order's
/// persisted state (other than the poll interval's backoff), a record that differs
/// from the last one, the first failure of a run and the first answer after it, the
/// decision and the finalization.
/// `t` is the order's tracking, unpacked from `entry` for the rules.
pub(super) fn note(
    entry: &mut Entry,
    t: &Tracking,
    said: Option<Said>,
    n: Noted<'_>,
) -> Option<journal::Update> {
    let said = said.unwrap_or_default();
    let queried = said.answer.is_some() || said.failure.is_some();
    let first_failure = said.failure.is_some() && !entry.failing();
    let recovered = said.answer.is_some() && entry.failing();
    if queried {
        entry.set_failing(said.failure.is_some());
    }
    let decided = match (t.outcome, n.decided_before) {
        (Some(outcome), false) => Some((
            t.decided_ms.unwrap_or(n.now_ms),
            outcome,
            journal::decision_rule(outcome, t.last.as_deref(), n.limits),
        )),
        // Finalized without a decision first (not found, expired).
        (None, _) => n.finalized.map(|outcome| {
            (
                n.now_ms,
                outcome,
                journal::decision_rule(outcome, t.last.as_deref(), n.limits),
            )
        }),
        _ => None,
    };
    let worth = n.changed
        || said.snapshot.is_some()
        || first_failure
        || recovered
        || decided.is_some()
        || n.finalized.is_some();
    if !worth {
        if queried {
            entry.quiet_queries = entry.quiet_queries.saturating_add(1);
            if said.failure.is_some() {
                entry.quiet_errors = entry.quiet_errors.saturating_add(1);
            }
        }
        return None;
    }
    let mut quiet_queries = u32::from(std::mem::take(&mut entry.quiet_queries));
    let mut quiet_errors = u32::from(std::mem::take(&mut entry.quiet_errors));
    // A failure that is not the first of its run is quiet too.
    if said.failure.is_some() && !first_failure {
        quiet_queries += 1;
        quiet_errors += 1;
    }
    Some(journal::Update {
        app_id: n.app_id.to_string(),
        issued_ms: t.issued_ms,
        quiet_queries,
        quiet_errors,
        failure: said
            .failure
            .filter(|_| first_failure)
            .map(|d| (n.now_ms, d)),
        answer: said.answer.map(|a| (n.now_ms, a)),
        snapshot: said.snapshot,
        decided,
        finalized: n.finalized.map(|outcome| {
            (
                n.now_ms,
                outcome,
                journal::finalize_reason(outcome, t, n.limits, n.now_ms),
            )
        }),
        queries: entry.polls,
    })
}

/// The operator name the journal shows for a network.
pub(super) fn operator_name(mcc: u16, mnc: u16) -> Option<&'static str> {
    crate::geo::operator(mcc, mnc).map(|o| o.name)
}

//! Reading the order journal: one entry by id, a page of orders, a breakdown. Each read
//! is one redb read transaction (MVCC: it never waits for the scheduler's writes, nor
//! they for it). Lists and breakdowns walk only the time index (`journal_by_issue`)
//! within the asked time range, so they never decode whole entries; a list page also
//! stops after `limit` + 1 matches or [`MAX_SCAN_PER_PAGE`] rows.

use std::collections::BTreeMap;

use super::{Store, StoreError, JOURNAL, JOURNAL_BY_ISSUE};
use crate::journal::query::{
    Breakdown, BreakdownQuery, Cursor, Group, ListQuery, Listed, OrdersPage,
};
use crate::journal::{self, DecodeError, Entry, IndexRow};

/// Most index rows one list page examines: a filter that matches little, over a long
/// range, answers with a shorter page and a cursor instead of walking millions of rows.
pub const MAX_SCAN_PER_PAGE: usize = 200_000;

/// Why an order's entry cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum JournalReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the journal entry of order {order_id:?} is damaged")]
    Damaged {
        order_id: String,
        #[source]
        source: DecodeError,
    },
}

impl From<redb::StorageError> for JournalReadError {
    fn from(e: redb::StorageError) -> Self {
        JournalReadError::Store(e.into())
    }
}

impl Store {
    /// The journal entry of `order_id`, `None` when there is none (never tracked, or
    /// evicted). An order admitted but not queried yet has no entry: its pending state
    /// stands for it (issued, pending, nothing asked yet).
    pub fn journal_get(&self, order_id: &str) -> Result<Option<Entry>, JournalReadError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(JOURNAL).map_err(StoreError::from)?;
        let Some(value) = table.get(order_id)? else {
            let pending = txn.open_table(super::PENDING).map_err(StoreError::from)?;
            let state = pending
                .get(order_id)?
                .and_then(|v| serde_json::from_slice::<super::PendingState>(v.value()).ok());
            return Ok(state.map(|s| {
                let mut entry = journal::new_entry(order_id, &s.app_id, s.issued_ms);
                entry.queries = s.polls;
                entry
            }));
        };
        journal::decode::<Entry>(value.value())
            .map(Some)
            .map_err(|source| JournalReadError::Damaged {
                order_id: order_id.to_string(),
                source,
            })
    }

    /// One page of orders matching `query`, newest issued first.
    pub fn journal_list(&self, query: &ListQuery) -> Result<OrdersPage, StoreError> {
        let filter = &query.filter;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(JOURNAL_BY_ISSUE)?;
        let lower = filter.since_ms.unwrap_or(i64::MIN);
        // Exclusive upper bound: just after `until`, or the cursor's row itself.
        let mut upper: (i64, String) = match filter.until_ms {
            Some(until) if until < i64::MAX => (until + 1, String::new()),
            _ => (i64::MAX, String::new()),
        };
        if let Some(c) = &query.cursor {
            if (c.issued_ms, c.order_id.as_str()) < (upper.0, upper.1.as_str()) {
                upper = (c.issued_ms, c.order_id.clone());
            }
        }
        let mut page = OrdersPage::default();
        if (upper.0, upper.1.as_str()) <= (lower, "") {
            return Ok(page);
        }
        let range = table.range::<(i64, &str)>((lower, "")..(upper.0, upper.1.as_str()))?;
        let mut scanned = 0usize;
        let mut last_seen: Option<Cursor> = None;
        for item in range.rev() {
            let (key, value) = item?;
            let (issued_ms, order_id) = key.value();
            scanned += 1;
            match journal::decode::<IndexRow>(value.value()) {
                Ok(row) if filter.matches(&row) => {
                    if page.orders.len() == query.limit {
                        // One more than asked: there is a next page, after the last shown.
                        page.next_cursor = page.orders.last().map(|o| Cursor {
                            issued_ms: o.issued_ms,
                            order_id: o.order_id.clone(),
                        });
                        return Ok(page);
                    }
                    page.orders.push(Listed {
                        order_id: order_id.to_string(),
                        issued_ms,
                        row,
                    });
                }
                Ok(_) => {}
                Err(_) => page.damaged += 1,
            }
            if scanned >= MAX_SCAN_PER_PAGE {
                last_seen = Some(Cursor {
                    issued_ms,
                    order_id: order_id.to_string(),
                });
                break;
            }
        }
        // The walk stopped at its bound: the next page goes on from the last row seen.
        page.next_cursor = last_seen;
        Ok(page)
    }

    /// The orders matching the query's filter within its time range, grouped and added up.
    pub fn journal_breakdown(&self, query: &BreakdownQuery) -> Result<Breakdown, StoreError> {
        let filter = &query.filter;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(JOURNAL_BY_ISSUE)?;
        let lower = filter.since_ms.unwrap_or(i64::MIN);
        let upper = filter.until_ms.map_or(i64::MAX, |u| u.saturating_add(1));
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        let mut damaged = 0;
        if lower < upper {
            for item in table.range::<(i64, &str)>((lower, "")..(upper, ""))? {
                let (_, value) = item?;
                match journal::decode::<IndexRow>(value.value()) {
                    Ok(row) if filter.matches(&row) => {
                        groups.entry(query.by.key(&row)).or_default().add(&row);
                    }
                    Ok(_) => {}
                    Err(_) => damaged += 1,
                }
            }
        }
        Ok(Breakdown::from_groups(query.by, filter, groups, damaged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::query::{parse_breakdown, parse_list, split_query, By};
    use crate::journal::{Snapshot, State, Update};
    use crate::outcome::{AttemptResult, Channel, Outcome};
    use crate::store::PendingState;

    const T0: i64 = 1_800_000_000_000;

    fn attempt(result: AttemptResult, mcc: u16, mnc: u16, op: &str) -> journal::AttemptDetail {
        journal::AttemptDetail {
            channel: Channel::Sms,
            seq: 0,
            mcc: Some(mcc),
            mnc: Some(mnc),
            operator: Some(op.to_string()),
            result,
            provider_status: Some(1),
            provider_reason: Some("UNDELIV".into()),
            submit_ms: Some(T0),
            done_ms: Some(T0 + 2000),
            answer_ms: None,
            latency_ms: (result == AttemptResult::Delivered).then_some(2000),
            cost_usd: 0.01,
            segments: 1,
        }
    }

    /// A store with `n` orders issued a second apart: every third in DE (verified),
    /// the rest in IN (undelivered, Airtel); the last two still pending.
    fn journal_of(n: i64) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ids: Vec<String> = (0..n).map(|i| format!("o{i:04}")).collect();
        let admitted: Vec<(&str, PendingState)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                (
                    id.as_str(),
                    PendingState::new("app".into(), T0 + i as i64 * 1000),
                )
            })
            .collect();
        store.admit(&admitted, T0).unwrap();
        let updates: Vec<(String, Update)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let issued_ms = T0 + i as i64 * 1000;
                let de = i % 3 == 0;
                let (country, op, mcc, mnc, outcome, result) = if de {
                    (
                        "DE",
                        "Telekom",
                        262,
                        1,
                        Outcome::Verified,
                        AttemptResult::Delivered,
                    )
                } else {
                    (
                        "IN",
                        "Airtel",
                        404,
                        45,
                        Outcome::Undelivered,
                        AttemptResult::Failed,
                    )
                };
                let last = i as i64 >= n - 2;
                let update = Update {
                    app_id: "app".into(),
                    issued_ms,
                    answer: Some((issued_ms + 1000, journal::Answer::Record)),
                    snapshot: Some(Snapshot {
                        country: Some(country.into()),
                        channel: Some("sms".into()),
                        mcc: Some(mcc),
                        mnc: Some(mnc),
                        operator: Some(op.into()),
                        attempts: vec![attempt(result, mcc, mnc, op)],
                        ..Snapshot::default()
                    }),
                    decided: (!last).then(|| (issued_ms + 5000, outcome, "a rule".to_string())),
                    finalized: (!last).then(|| (issued_ms + 6000, outcome, "settled".to_string())),
                    queries: 3,
                    ..Update::default()
                };
                (id.clone(), update)
            })
            .collect();
        let refs: Vec<(&str, &Update)> = updates.iter().map(|(i, u)| (i.as_str(), u)).collect();
        store.apply(&[], &[], &refs, T0 + 100_000).unwrap();
        (dir, store)
    }

    fn list(store: &Store, query: &str) -> OrdersPage {
        let q = parse_list(&split_query(Some(query)), T0 + 60_000, &[]).unwrap();
        store.journal_list(&q).unwrap()
    }

    fn ids(page: &OrdersPage) -> Vec<&str> {
        page.orders.iter().map(|o| o.order_id.as_str()).collect()
    }

    #[test]
    fn lists_filter_newest_first_and_pages_cover_every_order_once() {
        let (_dir, store) = journal_of(30);
        let all = list(&store, "limit=1000");
        assert_eq!(all.orders.len(), 30);
        assert_eq!(all.next_cursor, None);
        assert_eq!(all.orders[0].order_id, "o0029", "newest first");
        let india = list(&store, "country=in&operator=AIRTEL&state=final");
        assert_eq!(india.orders.len(), 18, "{:?}", ids(&india));
        assert!(india
            .orders
            .iter()
            .all(|o| o.row.country.as_deref() == Some("IN")));
        assert_eq!(list(&store, "mcc=262&mnc=1").orders.len(), 10);
        assert_eq!(
            list(&store, "outcome=verified,undelivered").orders.len(),
            28
        );
        assert_eq!(list(&store, "state=pending").orders.len(), 2);
        // Issued at T0 + 10 s … T0 + 12 s: three orders, both ends included.
        let range = list(
            &store,
            &format!("since={}&until={}", T0 + 10_000, T0 + 12_000),
        );
        assert_eq!(ids(&range), ["o0012", "o0011", "o0010"]);
        // Relative: now is T0 + 60 s, so 25s back is T0 + 35 s: nothing after o0029.
        assert_eq!(list(&store, "since=25s").orders.len(), 0);
        assert_eq!(list(&store, "since=35s").orders.len(), 5);

        let mut seen = Vec::new();
        let mut cursor = String::new();
        for _ in 0..10 {
            let page = list(&store, &format!("limit=7&cursor={cursor}"));
            seen.extend(ids(&page).into_iter().map(str::to_string));
            match page.next_cursor {
                Some(c) => cursor = c.encode(),
                None => break,
            }
        }
        let expected: Vec<String> = (0..30).rev().map(|i| format!("o{i:04}")).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn one_entry_by_id_and_none_for_an_unknown_id() {
        let (_dir, store) = journal_of(4);
        let entry = store.journal_get("o0001").unwrap().unwrap();
        assert_eq!(entry.state, State::Final);
        assert_eq!(entry.outcome, Some(Outcome::Undelivered));
        assert_eq!(entry.operator.as_deref(), Some("Airtel"));
        let pending = store.journal_get("o0003").unwrap().unwrap();
        assert_eq!(pending.state, State::Pending);
        assert!(store.journal_get("nope").unwrap().is_none());
    }

    #[test]
    fn a_damaged_index_row_is_skipped_and_counted() {
        let (_dir, store) = journal_of(5);
        let txn = store.db.begin_write().unwrap();
        {
            let mut t = txn.open_table(JOURNAL_BY_ISSUE).unwrap();
            t.insert((T0 + 2000, "o0002"), [9u8, 9, 9].as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
        let page = list(&store, "");
        assert_eq!(page.orders.len(), 4);
        assert_eq!(page.damaged, 1);
        let q = parse_breakdown(&split_query(Some("by=country&since=0")), T0).unwrap();
        assert_eq!(store.journal_breakdown(&q).unwrap().damaged, 1);
    }

    #[test]
    fn breakdowns_add_up_per_group_worst_first() {
        let (_dir, store) = journal_of(30);
        let q = parse_breakdown(&split_query(Some("by=country&since=0")), T0).unwrap();
        let b = store.journal_breakdown(&q).unwrap();
        assert_eq!(b.by, By::Country);
        let keys: Vec<&str> = b.rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["IN", "DE"], "IN converts nothing: worst first");
        assert!(
            b.rows.iter().all(|r| r.name.is_none()),
            "names are operators'"
        );
        let india = &b.rows[0];
        assert_eq!(
            (india.orders, india.final_orders, india.pending),
            (20, 18, 2)
        );
        assert_eq!(india.outcomes["undelivered"], 18);
        assert_eq!(india.conversion, Some(0.0));
        assert_eq!(india.delivery_ratio, Some(0.0));
        assert_eq!(india.cost_per_verified_usd, None);
        let de = &b.rows[1];
        assert_eq!(de.conversion, Some(1.0));
        assert_eq!(de.latency_p95_seconds, Some(2.0));
        assert!((de.cost_usd - 0.1).abs() < 1e-9);
        assert!((de.cost_per_verified_usd.unwrap() - 0.01).abs() < 1e-9);
        let q = parse_breakdown(&split_query(Some("by=operator&country=IN&since=0")), T0).unwrap();
        let b = store.journal_breakdown(&q).unwrap();
        assert_eq!(b.rows.len(), 1);
        assert_eq!(b.rows[0].key, "airtel");
        assert_eq!(b.rows[0].name.as_deref(), Some("Airtel"));
    }
}

//! The order journal's tables, written in the transactions that commit the orders'
//! progress (so an order is never finalized without its entry, nor the reverse), and
//! evicted oldest first by a background task within its retention and size bounds.
//!
//! An order's entry is created by its first query's commit, not at admission: the
//! spool's transaction stays one insert per order (intake is the hot path of a burst),
//! and an order not queried yet is read from its pending state instead
//! (`Store::journal_get`).

use std::collections::HashMap;

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::StoreError;
use crate::journal::{self, Entry, IndexRow, Update};

/// order id → encoded [`Entry`].
pub(crate) const JOURNAL: TableDefinition<&str, &[u8]> = TableDefinition::new("journal");
/// (issue time in Unix ms, order id) → encoded [`IndexRow`]: lists and breakdowns
/// walk it newest first; eviction walks it oldest first.
pub(crate) const JOURNAL_BY_ISSUE: TableDefinition<(i64, &str), &[u8]> =
    TableDefinition::new("journal_by_issue");
/// `bytes` (entries + index rows, encoded) and `entries`.
pub(crate) const JOURNAL_META: TableDefinition<&str, u64> = TableDefinition::new("journal_meta");

pub(crate) const META_BYTES: &str = "bytes";
pub(crate) const META_ENTRIES: &str = "entries";

/// Running totals of a transaction's journal writes, added to `journal_meta` once.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    bytes: i64,
    entries: i64,
}

/// The journal's tables opened in one write transaction.
pub(crate) struct Writer<'txn> {
    entries: redb::Table<'txn, &'static str, &'static [u8]>,
    by_issue: redb::Table<'txn, (i64, &'static str), &'static [u8]>,
    meta: redb::Table<'txn, &'static str, u64>,
    totals: Totals,
    /// Operator names' label forms: a transaction's thousand updates name a few.
    labels: HashMap<String, String>,
}

impl<'txn> Writer<'txn> {
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Writer {
            entries: txn.open_table(JOURNAL)?,
            by_issue: txn.open_table(JOURNAL_BY_ISSUE)?,
            meta: txn.open_table(JOURNAL_META)?,
            totals: Totals::default(),
            labels: HashMap::new(),
        })
    }

    /// Applies one update to an order's entry (read, merge, write both tables).
    pub(crate) fn update(&mut self, order_id: &str, update: Update) -> Result<(), StoreError> {
        let old = self.entries.get(order_id)?.map(|v| v.value().to_vec());
        let old_bytes = old.as_ref().map_or(0, Vec::len);
        // A damaged entry starts over rather than stopping the order's progress.
        let mut old_entry = old
            .as_deref()
            .and_then(|b| journal::decode::<Entry>(b).ok());
        if let Some(e) = old_entry
            .as_ref()
            .filter(|e| e.issued_ms != update.issued_ms)
        {
            // An earlier order with the same id (finalized more than a day ago, issued
            // again): this one's journal starts anew.
            self.remove_index(e.issued_ms, order_id)?;
            old_entry = None;
        }
        let entry = journal::merge(old_entry, order_id, update);
        self.put(order_id, &entry, old.is_some(), old_bytes)
    }

    fn put(
        &mut self,
        order_id: &str,
        entry: &Entry,
        existed: bool,
        old_bytes: usize,
    ) -> Result<(), StoreError> {
        let bytes = journal::encode(entry);
        let label = entry.operator.as_deref().map(|name| {
            if !self.labels.contains_key(name) {
                self.labels
                    .insert(name.to_string(), crate::geo::operator_label(name));
            }
            self.labels[name].as_str()
        });
        let row = journal::encode(&journal::index_row(entry, bytes.len(), label));
        let old_row = self
            .by_issue
            .insert((entry.issued_ms, order_id), row.as_slice())?
            .map_or(0, |v| v.value().len());
        self.entries.insert(order_id, bytes.as_slice())?;
        self.totals.bytes += (bytes.len() + row.len()) as i64 - (old_bytes + old_row) as i64;
        if !existed {
            self.totals.entries += 1;
        }
        Ok(())
    }

    fn remove_index(&mut self, issued_ms: i64, order_id: &str) -> Result<(), StoreError> {
        if let Some(v) = self.by_issue.remove((issued_ms, order_id))? {
            self.totals.bytes -= v.value().len() as i64;
        }
        Ok(())
    }

    /// Deletes up to `max` of the oldest entries issued before `before_ms` or, while
    /// the journal is over `max_bytes`, any oldest; returns how many went.
    pub(crate) fn evict(
        &mut self,
        before_ms: i64,
        max_bytes: u64,
        max: usize,
    ) -> Result<usize, StoreError> {
        let mut bytes = self.stored(META_BYTES)?;
        let mut victims: Vec<(i64, String, usize)> = Vec::new();
        for row in self.by_issue.iter()? {
            let (key, value) = row?;
            let (issued_ms, order_id) = key.value();
            let over = bytes > max_bytes;
            if victims.len() >= max || (issued_ms >= before_ms && !over) {
                break;
            }
            let entry_bytes =
                journal::decode::<IndexRow>(value.value()).map_or(0, |r| r.entry_bytes as usize);
            bytes = bytes.saturating_sub((entry_bytes + value.value().len()) as u64);
            victims.push((issued_ms, order_id.to_string(), value.value().len()));
        }
        for (issued_ms, order_id, _) in &victims {
            self.remove_index(*issued_ms, order_id)?;
            if let Some(old) = self.entries.remove(order_id.as_str())? {
                self.totals.bytes -= old.value().len() as i64;
                self.totals.entries -= 1;
            }
        }
        Ok(victims.len())
    }

    fn stored(&self, key: &str) -> Result<u64, StoreError> {
        let now = self.meta.get(key)?.map_or(0, |v| v.value());
        Ok(match key {
            META_BYTES => now.saturating_add_signed(self.totals.bytes),
            _ => now.saturating_add_signed(self.totals.entries),
        })
    }

    /// Adds this transaction's totals to `journal_meta`.
    pub(crate) fn finish(mut self) -> Result<(), StoreError> {
        let bytes = self.stored(META_BYTES)?;
        let entries = self.stored(META_ENTRIES)?;
        self.meta.insert(META_BYTES, bytes)?;
        self.meta.insert(META_ENTRIES, entries)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::outcome::Outcome;
    use crate::store::{PendingState, Store};

    /// The meta totals recounted from the tables: (bytes, entries).
    fn recount(store: &Store) -> (u64, u64) {
        let txn = store.db.begin_read().unwrap();
        let entries = txn.open_table(JOURNAL).unwrap();
        let index = txn.open_table(JOURNAL_BY_ISSUE).unwrap();
        let mut bytes = 0;
        let mut count = 0;
        for row in entries.iter().unwrap() {
            bytes += row.unwrap().1.value().len() as u64;
            count += 1;
        }
        for row in index.iter().unwrap() {
            bytes += row.unwrap().1.value().len() as u64;
        }
        (bytes, count)
    }

    fn ids(store: &Store) -> Vec<String> {
        let txn = store.db.begin_read().unwrap();
        let index = txn.open_table(JOURNAL_BY_ISSUE).unwrap();
        let mut ids: Vec<String> = index
            .iter()
            .unwrap()
            .map(|r| r.unwrap().0.value().1.to_string())
            .collect();
        ids.sort();
        ids
    }

    /// Admits `n` orders issued a second apart, and journals each (its first query).
    fn admit(store: &Store, n: i64) {
        let states: Vec<(String, PendingState)> = (0..n)
            .map(|i| {
                (
                    format!("o{i:03}"),
                    PendingState::new("app".into(), i * 1000),
                )
            })
            .collect();
        let refs: Vec<(&str, PendingState)> = states
            .iter()
            .map(|(id, s)| (id.as_str(), s.clone()))
            .collect();
        store.admit(&refs, n * 1000).unwrap();
        let updates: Vec<(String, Update)> = states
            .iter()
            .map(|(id, s)| {
                let update = Update {
                    app_id: s.app_id.clone(),
                    issued_ms: s.issued_ms,
                    answer: Some((s.issued_ms + 500, journal::Answer::NoRecord)),
                    queries: 1,
                    ..Update::default()
                };
                (id.clone(), update)
            })
            .collect();
        let refs: Vec<(&str, &Update)> = updates.iter().map(|(id, u)| (id.as_str(), u)).collect();
        store.apply(&[], &[], &refs, n * 1000).unwrap();
    }

    #[test]
    fn entries_are_written_with_admission_and_finalization_and_their_size_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        admit(&store, 10);
        assert_eq!(store.journal_size().unwrap(), recount(&store));
        assert_eq!(recount(&store).1, 10);
        let update = Update {
            app_id: "app".into(),
            issued_ms: 3000,
            finalized: Some((9000, Outcome::NotFound, "grace ended".into())),
            queries: 4,
            ..Update::default()
        };
        store
            .apply(&[], &["o003"], &[("o003", &update)], 9000)
            .unwrap();
        assert_eq!(store.journal_size().unwrap(), recount(&store));
        let txn = store.db.begin_read().unwrap();
        let table = txn.open_table(JOURNAL).unwrap();
        let entry: Entry = journal::decode(table.get("o003").unwrap().unwrap().value()).unwrap();
        assert_eq!(
            (entry.state, entry.outcome, entry.queries),
            (journal::State::Final, Some(Outcome::NotFound), 4)
        );
        let index = txn.open_table(JOURNAL_BY_ISSUE).unwrap();
        let row: IndexRow =
            journal::decode(index.get((3000, "o003")).unwrap().unwrap().value()).unwrap();
        assert_eq!(row.finalized_ms, Some(9000));
    }

    #[test]
    fn eviction_keeps_the_retention_and_the_size_bound_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        admit(&store, 100);
        // Retention: orders issued before 40 s go, 3 at a time.
        assert_eq!(store.evict_journal(40_000, u64::MAX, 3).unwrap(), 3);
        while store.evict_journal(40_000, u64::MAX, 3).unwrap() > 0 {}
        let left = ids(&store);
        assert_eq!(left.len(), 60);
        assert_eq!(left.first().map(String::as_str), Some("o040"));
        assert_eq!(store.journal_size().unwrap(), recount(&store));
        // Size: beyond the bound the oldest go until it holds.
        let (bytes, entries) = store.journal_size().unwrap();
        let per_entry = bytes / entries;
        let bound = per_entry * 25;
        while store.evict_journal(0, bound, 7).unwrap() > 0 {}
        let (bytes, _) = store.journal_size().unwrap();
        assert!(bytes <= bound, "{bytes} > {bound}");
        let left = ids(&store);
        assert!((24..=25).contains(&left.len()), "{}", left.len());
        assert_eq!(left.last().map(String::as_str), Some("o099"));
        assert_eq!(store.journal_size().unwrap(), recount(&store));
    }

    #[test]
    fn an_order_not_queried_yet_is_read_from_its_pending_state_and_a_reissued_id_starts_anew() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let state = PendingState::new("app".into(), 5_000);
        store.admit(&[("fresh", state)], 5_000).unwrap();
        // Admission writes no entry (one insert per spool line)...
        assert_eq!(recount(&store), (0, 0));
        // ... and the order still reads as issued and pending.
        let entry = store.journal_get("fresh").unwrap().unwrap();
        assert_eq!(
            (entry.state, entry.issued_ms, entry.timeline.len()),
            (journal::State::Pending, 5_000, 1)
        );
        assert!(store.journal_get("never").unwrap().is_none());
        // The same id issued again later (its earlier order long final): a new entry,
        // not the old one's timeline, and one index row.
        let first = Update {
            app_id: "app".into(),
            issued_ms: 1_000,
            finalized: Some((2_000, Outcome::Verified, "done".into())),
            ..Update::default()
        };
        store.apply(&[], &[], &[("again", &first)], 2_000).unwrap();
        let second = Update {
            app_id: "app".into(),
            issued_ms: 90_000_000,
            answer: Some((90_000_500, journal::Answer::NoRecord)),
            ..Update::default()
        };
        store
            .apply(&[], &[], &[("again", &second)], 90_000_500)
            .unwrap();
        let entry = store.journal_get("again").unwrap().unwrap();
        assert_eq!(
            (entry.state, entry.issued_ms, entry.outcome),
            (journal::State::Pending, 90_000_000, None)
        );
        assert_eq!(ids(&store), vec!["again".to_string()]);
        assert_eq!(store.journal_size().unwrap(), recount(&store));
    }

    #[test]
    fn updates_of_one_order_in_one_commit_apply_in_the_order_they_came() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let answered = |at_ms: i64, queries: u32| Update {
            app_id: "app".into(),
            issued_ms: 1_000,
            answer: Some((at_ms, journal::Answer::NoRecord)),
            queries,
            ..Update::default()
        };
        let (b1, a1, b2) = (answered(2_000, 1), answered(2_500, 1), answered(3_000, 2));
        // Interleaved with another order's.
        store
            .apply(&[], &[], &[("b", &b1), ("a", &a1), ("b", &b2)], 3_000)
            .unwrap();
        let b = store.journal_get("b").unwrap().unwrap();
        let times: Vec<i64> = b.timeline.iter().map(|e| e.at_ms).collect();
        assert!(times.is_sorted(), "{times:?}");
        assert_eq!(b.queries, 2, "the later update last");
        assert_eq!(store.journal_get("a").unwrap().unwrap().queries, 1);
    }

    #[test]
    fn a_disabled_journal_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.disable_journal();
        admit(&store, 5);
        let update = Update {
            app_id: "app".into(),
            ..Update::default()
        };
        store
            .apply(&[], &["o001"], &[("o001", &update)], 9000)
            .unwrap();
        assert_eq!(recount(&store), (0, 0));
        assert_eq!(store.journal_size().unwrap(), (0, 0));
    }
}

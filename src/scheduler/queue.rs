//! The pending orders and the time-ordered queue of their next polls.
//!
//! Rescheduling an order does not search the heap: it pushes a new entry with a new
//! ticket, and the old entry goes stale (its ticket no longer matches the order's). Stale
//! entries, entries of finalized orders and entries of orders in flight are dropped
//! when they reach the top.
//!
//! Priorities: one heap per [`PollPurpose`], each keyed by the real due time. Among the
//! orders that are due, the one with the earliest `due - head start` goes first, so
//! that when the request budget is short decisive polls go out before expected ones,
//! and expected ones before routine ones; the head start is bounded, so a routine poll
//! waits at most [`DECISIVE_HEAD_START_MS`] longer than a decisive one due at the same
//! time (none is starved). No order is served before it is really due.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use crate::outcome::{PollPurpose, Tracking};

/// How much earlier than its due time a decisive poll counts when the due orders
/// compete for the request budget.
pub(super) const DECISIVE_HEAD_START_MS: i64 = 30_000;
/// The same for polls planned around an expected fact (first sighting, expected DLR).
pub(super) const EXPECTED_HEAD_START_MS: i64 = 15_000;

fn head_start_ms(purpose: PollPurpose) -> i64 {
    match purpose {
        PollPurpose::Decisive => DECISIVE_HEAD_START_MS,
        PollPurpose::Expected => EXPECTED_HEAD_START_MS,
        PollPurpose::Routine => 0,
    }
}

/// Index of a purpose's heap (in [`PollPurpose::ALL`] order).
fn rank(purpose: PollPurpose) -> usize {
    match purpose {
        PollPurpose::Decisive => 0,
        PollPurpose::Expected => 1,
        PollPurpose::Routine => 2,
    }
}

type Heap = BinaryHeap<Reverse<(i64, u64, Arc<str>)>>;

/// An order taken off the queue to be polled: when and why its poll was planned.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DuePoll {
    pub order_id: Arc<str>,
    pub due_ms: i64,
    pub purpose: PollPurpose,
}

/// One pending order in memory.
#[derive(Debug)]
pub(super) struct Entry {
    /// Index into the scheduler's app list.
    pub app: u16,
    pub tracking: Tracking,
    /// Queries sent for this order, answered or not (`otp_exporter_polls_per_order`).
    pub polls: u32,
    /// Ticket of the order's live queue entry; stale heap entries carry older tickets.
    ticket: u64,
    in_flight: bool,
    /// Queries since the journal's last line that changed nothing (written with the
    /// next line), and how many of them failed.
    pub quiet_queries: u16,
    pub quiet_errors: u16,
    /// The last query failed (the journal notes the first failure of a run).
    pub failing: bool,
}

impl Entry {
    pub fn new(app: u16, tracking: Tracking, polls: u32) -> Self {
        Entry {
            app,
            tracking,
            polls,
            ticket: 0,
            in_flight: false,
            quiet_queries: 0,
            quiet_errors: 0,
            failing: false,
        }
    }
}

/// The pending orders by id, and when each is due.
#[derive(Debug)]
pub(super) struct DueQueue {
    orders: HashMap<Arc<str>, Entry>,
    /// Per purpose (in [`PollPurpose::ALL`] order): (due Unix ms, ticket, order id),
    /// earliest first.
    heaps: [Heap; 3],
    next_ticket: u64,
}

impl DueQueue {
    pub fn new() -> Self {
        DueQueue {
            orders: HashMap::new(),
            heaps: Default::default(),
            next_ticket: 1,
        }
    }

    pub fn len(&self) -> usize {
        self.orders.len()
    }

    pub fn contains(&self, order_id: &str) -> bool {
        self.orders.contains_key(order_id)
    }

    pub fn get(&self, order_id: &str) -> Option<&Entry> {
        self.orders.get(order_id)
    }

    pub fn get_mut(&mut self, order_id: &str) -> Option<&mut Entry> {
        self.orders.get_mut(order_id)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.orders.values()
    }

    /// Adds an order due at `due_ms`, for the purpose its tracking planned (a new
    /// order's first poll is `Expected`); false if it is already pending.
    pub fn insert(&mut self, order_id: Arc<str>, entry: Entry, due_ms: i64) -> bool {
        if self.orders.contains_key(&order_id) {
            return false;
        }
        let purpose = entry.tracking.next_purpose;
        self.orders.insert(order_id.clone(), entry);
        self.schedule(&order_id, due_ms, purpose);
        true
    }

    /// Takes an order out (finalized); its queue entries go stale.
    pub fn remove(&mut self, order_id: &str) -> Option<Entry> {
        self.orders.remove(order_id)
    }

    /// (Re)schedules a pending order at `due_ms` for `purpose`; it is no longer in
    /// flight.
    pub fn schedule(&mut self, order_id: &Arc<str>, due_ms: i64, purpose: PollPurpose) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if let Some(entry) = self.orders.get_mut(order_id) {
            entry.ticket = ticket;
            entry.in_flight = false;
            self.heaps[rank(purpose)].push(Reverse((due_ms, ticket, order_id.clone())));
        }
    }

    /// Marks an order in flight: its queue entry is not live until it is rescheduled.
    pub fn set_in_flight(&mut self, order_id: &str, in_flight: bool) {
        if let Some(entry) = self.orders.get_mut(order_id) {
            entry.in_flight = in_flight;
        }
    }

    /// Due time of `purpose`'s next live queue entry, dropping stale ones.
    fn peek_live(&mut self, purpose: PollPurpose) -> Option<i64> {
        let heap = &mut self.heaps[rank(purpose)];
        while let Some(Reverse((due, ticket, id))) = heap.peek() {
            match self.orders.get(id) {
                Some(entry) if entry.ticket == *ticket && !entry.in_flight => return Some(*due),
                _ => {
                    heap.pop();
                }
            }
        }
        None
    }

    /// Due time of the next live queue entry, whatever its purpose.
    pub fn peek_due(&mut self) -> Option<i64> {
        PollPurpose::ALL
            .into_iter()
            .filter_map(|p| self.peek_live(p))
            .min()
    }

    /// The order to poll at `now_ms`, taken off the queue: among the orders due at or
    /// before `now_ms`, the earliest by `due - head start` (on a tie, the one due
    /// earlier: the head start is a bound, not a little more).
    pub fn take_due(&mut self, now_ms: i64) -> Option<DuePoll> {
        let mut best: Option<((i64, i64), PollPurpose)> = None;
        for purpose in PollPurpose::ALL {
            let Some(due) = self.peek_live(purpose).filter(|due| *due <= now_ms) else {
                continue;
            };
            let key = (due.saturating_sub(head_start_ms(purpose)), due);
            if best.is_none_or(|(best_key, _)| key < best_key) {
                best = Some((key, purpose));
            }
        }
        let (_, purpose) = best?;
        let Reverse((due_ms, _, order_id)) = self.heaps[rank(purpose)].pop()?;
        Some(DuePoll {
            order_id,
            due_ms,
            purpose,
        })
    }

    /// The id of the next order [`DueQueue::take_due`] serves at `now_ms`.
    pub fn pop_due(&mut self, now_ms: i64) -> Option<Arc<str>> {
        self.take_due(now_ms).map(|poll| poll.order_id)
    }

    /// Queue entries, live or stale (for tests of the bookkeeping).
    #[cfg(test)]
    pub fn heap_len(&self) -> usize {
        self.heaps.iter().map(BinaryHeap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PollPurpose::{Decisive, Expected, Routine};

    const S: i64 = 1000;

    fn queue_of(orders: &[(&str, i64)]) -> DueQueue {
        let mut q = DueQueue::new();
        for (id, due) in orders {
            assert!(q.insert(Arc::from(*id), Entry::new(0, Tracking::new(0), 0), *due));
        }
        q
    }

    /// Orders scheduled at (due, purpose).
    fn queue_with(orders: &[(&str, i64, PollPurpose)]) -> DueQueue {
        let mut q = queue_of(&[]);
        for (id, due, purpose) in orders {
            let id: Arc<str> = Arc::from(*id);
            assert!(q.insert(id.clone(), Entry::new(0, Tracking::new(0), 0), i64::MAX));
            q.schedule(&id, *due, *purpose);
        }
        q
    }

    fn pop_id(q: &mut DueQueue, now_ms: i64) -> Option<String> {
        q.pop_due(now_ms).map(|id| id.to_string())
    }

    /// Everything due at `now_ms`, in the order it is served.
    fn drain(q: &mut DueQueue, now_ms: i64) -> Vec<String> {
        std::iter::from_fn(|| pop_id(q, now_ms)).collect()
    }

    #[test]
    fn orders_come_out_in_due_order_and_only_when_due() {
        let mut q = queue_of(&[("b", 20), ("a", 10), ("c", 30)]);
        assert_eq!(q.peek_due(), Some(10));
        assert_eq!(q.pop_due(9), None);
        assert_eq!(pop_id(&mut q, 25).as_deref(), Some("a"));
        assert_eq!(pop_id(&mut q, 25).as_deref(), Some("b"));
        assert_eq!(q.pop_due(25), None);
        assert_eq!(q.peek_due(), Some(30));
    }

    #[test]
    fn an_order_is_taken_once() {
        let mut q = queue_of(&[("a", 10)]);
        assert!(!q.insert(Arc::from("a"), Entry::new(0, Tracking::new(0), 0), 5));
        assert_eq!(q.len(), 1);
        assert_eq!(q.peek_due(), Some(10), "the first schedule stands");
    }

    #[test]
    fn rescheduling_leaves_a_stale_entry_that_is_skipped() {
        let mut q = queue_of(&[("a", 10), ("b", 20)]);
        let a: Arc<str> = Arc::from("a");
        // Moved later (and to another purpose's heap): the old entry at 10 is stale.
        q.schedule(&a, 50, Decisive);
        assert_eq!(q.heap_len(), 3);
        assert_eq!(q.peek_due(), Some(20));
        assert_eq!(q.heap_len(), 2, "the stale entry was dropped");
        assert_eq!(pop_id(&mut q, 30).as_deref(), Some("b"));
        assert_eq!(q.pop_due(30), None);
        let a = q.take_due(50).unwrap();
        assert_eq!((&*a.order_id, a.due_ms, a.purpose), ("a", 50, Decisive));
        assert_eq!(q.pop_due(1_000), None, "one live entry, taken once");
    }

    #[test]
    fn finalized_and_in_flight_orders_do_not_come_out() {
        let mut q = queue_of(&[("a", 10), ("b", 20), ("c", 30)]);
        assert!(q.remove("a").is_some());
        q.set_in_flight("b", true);
        assert_eq!(pop_id(&mut q, 100).as_deref(), Some("c"));
        assert_eq!(q.pop_due(100), None);
        // Back from the worker: rescheduled, due again.
        q.schedule(&Arc::from("b"), 40, Routine);
        assert_eq!(pop_id(&mut q, 100).as_deref(), Some("b"));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn a_new_order_is_first_polled_for_an_expected_fact() {
        let mut q = queue_of(&[("a", 10)]);
        let first = q.take_due(10).unwrap();
        assert_eq!((first.due_ms, first.purpose), (10, Expected));
    }

    #[test]
    fn among_due_orders_decisive_then_expected_then_routine_within_the_head_start() {
        let t = 1_000 * S;
        let mut q = queue_with(&[
            ("routine", t - 10 * S, Routine),
            ("expected", t - 5 * S, Expected),
            ("decisive", t, Decisive),
        ]);
        assert_eq!(drain(&mut q, t), ["decisive", "expected", "routine"]);
        // Due at the same instant: the purpose decides.
        let mut q = queue_with(&[("r", t, Routine), ("e", t, Expected), ("d", t, Decisive)]);
        assert_eq!(drain(&mut q, t), ["d", "e", "r"]);
    }

    #[test]
    fn a_head_start_never_serves_an_order_before_it_is_due() {
        let t = 1_000 * S;
        let mut q = queue_with(&[
            ("routine", t - 10 * S, Routine),
            ("decisive", t + S, Decisive),
        ]);
        assert_eq!(drain(&mut q, t), ["routine"]);
        assert_eq!(q.peek_due(), Some(t + S));
        assert_eq!(drain(&mut q, t + S), ["decisive"]);
    }

    #[test]
    fn a_routine_poll_due_longer_ago_than_the_head_start_goes_first() {
        let t = 1_000 * S;
        // Just beyond each head start: the older routine poll is not starved.
        let mut q = queue_with(&[
            ("decisive", t, Decisive),
            ("expected", t, Expected),
            ("routine-old", t - DECISIVE_HEAD_START_MS - 1, Routine),
            ("routine-mid", t - EXPECTED_HEAD_START_MS - 1, Routine),
        ]);
        assert_eq!(
            drain(&mut q, t),
            ["routine-old", "decisive", "routine-mid", "expected"]
        );
        // Decisive polls keep coming: a routine poll waits at most the head start.
        let mut q = queue_with(&[("routine", t, Routine)]);
        let mut served = Vec::new();
        for i in 0..100 {
            let now = t + i * S;
            let id: Arc<str> = Arc::from(format!("d{i}"));
            assert!(q.insert(id.clone(), Entry::new(0, Tracking::new(0), 0), i64::MAX));
            q.schedule(&id, now, Decisive);
            // One query per second, fewer than the polls that become due.
            served.push((now, pop_id(&mut q, now).unwrap()));
        }
        let (at, _) = served.iter().find(|(_, id)| id == "routine").unwrap();
        assert!(*at - t <= DECISIVE_HEAD_START_MS, "{served:?}");
    }
}

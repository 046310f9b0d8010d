//! The pending orders and the time-ordered queue of their next polls.
//!
//! Rescheduling an order does not search the heap: it pushes a new entry with a new
//! ticket, and the old entry goes stale (its ticket no longer matches the order's). Stale
//! entries, entries of finalized orders and entries of orders in flight are dropped
//! when they reach the top.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use crate::outcome::Tracking;

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
}

impl Entry {
    pub fn new(app: u16, tracking: Tracking, polls: u32) -> Self {
        Entry {
            app,
            tracking,
            polls,
            ticket: 0,
            in_flight: false,
        }
    }
}

/// The pending orders by id, and when each is due.
#[derive(Debug)]
pub(super) struct DueQueue {
    orders: HashMap<Arc<str>, Entry>,
    /// (due Unix ms, ticket, order id), earliest first.
    heap: BinaryHeap<Reverse<(i64, u64, Arc<str>)>>,
    next_ticket: u64,
}

impl DueQueue {
    pub fn new() -> Self {
        DueQueue {
            orders: HashMap::new(),
            heap: BinaryHeap::new(),
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

    /// Adds an order due at `due_ms`; false if it is already pending.
    pub fn insert(&mut self, order_id: Arc<str>, entry: Entry, due_ms: i64) -> bool {
        if self.orders.contains_key(&order_id) {
            return false;
        }
        self.orders.insert(order_id.clone(), entry);
        self.schedule(&order_id, due_ms);
        true
    }

    /// Takes an order out (finalized); its queue entries go stale.
    pub fn remove(&mut self, order_id: &str) -> Option<Entry> {
        self.orders.remove(order_id)
    }

    /// (Re)schedules a pending order at `due_ms`; it is no longer in flight.
    pub fn schedule(&mut self, order_id: &Arc<str>, due_ms: i64) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if let Some(entry) = self.orders.get_mut(order_id) {
            entry.ticket = ticket;
            entry.in_flight = false;
            self.heap.push(Reverse((due_ms, ticket, order_id.clone())));
        }
    }

    /// Marks an order in flight: its queue entry is not live until it is rescheduled.
    pub fn set_in_flight(&mut self, order_id: &str, in_flight: bool) {
        if let Some(entry) = self.orders.get_mut(order_id) {
            entry.in_flight = in_flight;
        }
    }

    /// Due time of the next live queue entry, dropping stale ones.
    pub fn peek_due(&mut self) -> Option<i64> {
        while let Some(Reverse((due, ticket, id))) = self.heap.peek() {
            match self.orders.get(id) {
                Some(entry) if entry.ticket == *ticket && !entry.in_flight => return Some(*due),
                _ => {
                    self.heap.pop();
                }
            }
        }
        None
    }

    /// The next order due at or before `now_ms`, taken off the queue.
    pub fn pop_due(&mut self, now_ms: i64) -> Option<Arc<str>> {
        match self.peek_due() {
            Some(due) if due <= now_ms => self.heap.pop().map(|Reverse((_, _, id))| id),
            _ => None,
        }
    }

    /// Queue entries, live or stale (for tests of the bookkeeping).
    #[cfg(test)]
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue_of(orders: &[(&str, i64)]) -> DueQueue {
        let mut q = DueQueue::new();
        for (id, due) in orders {
            assert!(q.insert(Arc::from(*id), Entry::new(0, Tracking::new(0), 0), *due));
        }
        q
    }

    #[test]
    fn orders_come_out_in_due_order_and_only_when_due() {
        let mut q = queue_of(&[("b", 20), ("a", 10), ("c", 30)]);
        assert_eq!(q.peek_due(), Some(10));
        assert_eq!(q.pop_due(9), None);
        assert_eq!(q.pop_due(25).as_deref(), Some("a"));
        assert_eq!(q.pop_due(25).as_deref(), Some("b"));
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
        // Moved later: the old entry at 10 is stale and must not fire.
        q.schedule(&a, 50);
        assert_eq!(q.heap_len(), 3);
        assert_eq!(q.peek_due(), Some(20));
        assert_eq!(q.heap_len(), 2, "the stale entry was dropped");
        assert_eq!(q.pop_due(30).as_deref(), Some("b"));
        assert_eq!(q.pop_due(30), None);
        assert_eq!(q.pop_due(50).as_deref(), Some("a"));
        assert_eq!(q.pop_due(1_000), None, "one live entry, taken once");
    }

    #[test]
    fn finalized_and_in_flight_orders_do_not_come_out() {
        let mut q = queue_of(&[("a", 10), ("b", 20), ("c", 30)]);
        assert!(q.remove("a").is_some());
        q.set_in_flight("b", true);
        assert_eq!(q.pop_due(100).as_deref(), Some("c"));
        assert_eq!(q.pop_due(100), None);
        // Back from the worker: rescheduled, due again.
        q.schedule(&Arc::from("b"), 40);
        assert_eq!(q.pop_due(100).as_deref(), Some("b"));
        assert_eq!(q.len(), 2);
    }
}

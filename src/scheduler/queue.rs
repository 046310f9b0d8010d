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
use std::collections::BinaryHeap;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::outcome::{Counted, Observation, Outcome, PollPurpose, Tracking};

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

/// A planned poll in a purpose's heap: 16 bytes. Ordered by due time (then slot, so
/// that ties do not depend on the heap's history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Planned {
    due_ms: i64,
    slot: u32,
    /// The slot's ticket when this poll was planned: stale once the slot's order is
    /// rescheduled, finalized or replaced by another order.
    ticket: u32,
}

type Heap = BinaryHeap<Reverse<Planned>>;

/// An order taken off the queue to be polled: when and why its poll was planned.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DuePoll {
    pub order_id: Arc<str>,
    pub due_ms: i64,
    pub purpose: PollPurpose,
    /// Where its entry is, for [`DueQueue::start_flight`] (no second lookup by id).
    pub slot: u32,
}

/// Why the queue cannot take an order.
#[derive(Debug, thiserror::Error)]
pub(super) enum QueueError {
    #[error("order id of {0} bytes is longer than the queue keeps ({MAX_ID_BYTES})")]
    IdTooLong(usize),
    /// More than 4 GiB of ids or 4 billion orders: beyond what a `u32` offset or slot
    /// reaches (far beyond the memory of the machines this runs on).
    #[error("the in-memory queue is full")]
    Full,
}

/// Longest order id the arena keeps (its length is one byte); the spool admits at most
/// `spool::MAX_ORDER_ID_LEN` (64).
const MAX_ID_BYTES: usize = u8::MAX as usize;

/// A time of an order kept as milliseconds after its issue in an `i32`: ±24.8 days
/// around `issued_ms`. `tracking.max_age` is at most 7 days, so a pending order's
/// decision and first "no record" fall well within; a time beyond (only in the very
/// answer that expires an order long overdue, e.g. after a long downtime, or one
/// persisted while draining) is clamped to the bound, which is itself past `max_age`,
/// so the order is finalized at its next poll either way.
const NO_TIME: i32 = i32::MIN;

fn pack_time(issued_ms: i64, at_ms: Option<i64>) -> i32 {
    match at_ms {
        None => NO_TIME,
        Some(at) => at
            .saturating_sub(issued_ms)
            .clamp(i64::from(NO_TIME) + 1, i64::from(i32::MAX)) as i32,
    }
}

fn unpack_time(issued_ms: i64, offset: i32) -> Option<i64> {
    (offset != NO_TIME).then(|| issued_ms.saturating_add(i64::from(offset)))
}

// `Entry::bits`: outcome code (0 = none), next purpose's rank, flags.
const OUTCOME_MASK: u8 = 0b0000_0111;
const PURPOSE_SHIFT: u8 = 3;
const PURPOSE_MASK: u8 = 0b0001_1000;
const IN_FLIGHT: u8 = 1 << 5;
const FAILING: u8 = 1 << 6;
/// The slot holds no order (it is on the free list).
const VACANT: u8 = 1 << 7;

fn outcome_code(outcome: Option<Outcome>) -> u8 {
    match outcome {
        None => 0,
        Some(Outcome::Verified) => 1,
        Some(Outcome::Failed) => 2,
        Some(Outcome::Unverified) => 3,
        Some(Outcome::Undelivered) => 4,
        Some(Outcome::NotFound) => 5,
        Some(Outcome::Expired) => 6,
    }
}

fn outcome_of(code: u8) -> Option<Outcome> {
    match code {
        1 => Some(Outcome::Verified),
        2 => Some(Outcome::Failed),
        3 => Some(Outcome::Unverified),
        4 => Some(Outcome::Undelivered),
        5 => Some(Outcome::NotFound),
        6 => Some(Outcome::Expired),
        _ => None,
    }
}

/// One pending order in memory, packed: 64 bytes, and no allocation of its own while
/// nothing is known of it (`last` is `None` until a record is seen).
///
/// Where the bytes of a pending order go (at 1,000,000 pending, 25-byte ids): this
/// entry in the slab, 64 B; its slot in the id index, 4 B per bucket plus 1 control
/// byte at ~2 buckets per order, ~10 B; its id in the arena, length byte + id, 26 B;
/// its planned poll in a heap, 16 B; redb's page cache (`store::STORE_CACHE_BYTES`)
/// shared by all orders, ~17 B. About 133 B, plus the boxed latest record of the
/// orders that have one.
///
/// The pure rules work on [`Tracking`]: [`Entry::take_tracking`] unpacks it (moving
/// the record out, no clone) and [`Entry::put_tracking`] packs it back.
#[derive(Debug)]
pub(super) struct Entry {
    issued_ms: i64,
    /// The latest record, kept so an order can be finalized when the API is down.
    last: Option<Box<Observation>>,
    counted: Counted,
    /// `decided_ms` and `first_absent_ms` as offsets from `issued_ms` (see [`NO_TIME`]).
    decided: i32,
    first_absent: i32,
    answers: u32,
    /// Queries sent for this order, answered or not (`otp_exporter_polls_per_order`).
    pub polls: u32,
    /// Incremented on every schedule: planned polls carrying an older ticket are stale.
    /// Kept across a slot's reuse, so the previous order's planned polls stay stale
    /// (it wraps after 4 billion schedules of one slot).
    ticket: u32,
    /// Arena offset of the order id (a length byte, then the id); in a vacant slot, the
    /// next vacant slot.
    id_at: u32,
    /// Index into the scheduler's app list.
    pub app: u16,
    /// Queries since the journal's last line that changed nothing (written with the
    /// next line), and how many of them failed.
    pub quiet_queries: u16,
    pub quiet_errors: u16,
    /// Failed queries in a row, saturating: the backoff only looks at the first 21.
    errors_in_row: u8,
    /// Outcome, next purpose and flags (see `OUTCOME_MASK` and the rest).
    bits: u8,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 64);

impl Entry {
    pub fn new(app: u16, tracking: Tracking, polls: u32) -> Self {
        let mut entry = Entry {
            issued_ms: 0,
            last: None,
            counted: Counted::default(),
            decided: NO_TIME,
            first_absent: NO_TIME,
            answers: 0,
            polls,
            ticket: 0,
            id_at: 0,
            app,
            quiet_queries: 0,
            quiet_errors: 0,
            errors_in_row: 0,
            bits: 0,
        };
        entry.put_tracking(tracking);
        entry
    }

    /// A slot on the free list, keeping its ticket.
    fn vacant(next_free: u32, ticket: u32) -> Self {
        let mut entry = Entry::new(0, Tracking::new(0), 0);
        entry.bits = VACANT;
        entry.id_at = next_free;
        entry.ticket = ticket;
        entry
    }

    /// The order's tracking, for the rules; the record moves out until
    /// [`Entry::put_tracking`] puts the tracking back.
    pub fn take_tracking(&mut self) -> Tracking {
        Tracking {
            issued_ms: self.issued_ms,
            outcome: self.outcome(),
            decided_ms: self.decided_ms(),
            first_absent_ms: self.first_absent_ms(),
            answers: self.answers,
            errors_in_row: u32::from(self.errors_in_row),
            last: self.last.take(),
            next_purpose: self.next_purpose(),
            counted: self.counted,
        }
    }

    /// Packs `tracking` into the entry (times beyond ±24.8 days of the issue are
    /// clamped, see [`NO_TIME`]).
    pub fn put_tracking(&mut self, tracking: Tracking) {
        self.issued_ms = tracking.issued_ms;
        self.decided = pack_time(tracking.issued_ms, tracking.decided_ms);
        self.first_absent = pack_time(tracking.issued_ms, tracking.first_absent_ms);
        self.answers = tracking.answers;
        self.errors_in_row = u8::try_from(tracking.errors_in_row).unwrap_or(u8::MAX);
        self.last = tracking.last;
        self.counted = tracking.counted;
        let purpose = rank(tracking.next_purpose) as u8;
        self.bits = (self.bits & !(OUTCOME_MASK | PURPOSE_MASK))
            | outcome_code(tracking.outcome)
            | (purpose << PURPOSE_SHIFT);
    }

    pub fn issued_ms(&self) -> i64 {
        self.issued_ms
    }

    pub fn outcome(&self) -> Option<Outcome> {
        outcome_of(self.bits & OUTCOME_MASK)
    }

    pub fn decided_ms(&self) -> Option<i64> {
        unpack_time(self.issued_ms, self.decided)
    }

    pub fn first_absent_ms(&self) -> Option<i64> {
        unpack_time(self.issued_ms, self.first_absent)
    }

    pub fn answers(&self) -> u32 {
        self.answers
    }

    pub fn counted(&self) -> Counted {
        self.counted
    }

    pub fn last(&self) -> Option<&Observation> {
        self.last.as_deref()
    }

    pub fn next_purpose(&self) -> PollPurpose {
        PollPurpose::ALL[usize::from((self.bits & PURPOSE_MASK) >> PURPOSE_SHIFT).min(2)]
    }

    /// The last query failed (the journal notes the first failure of a run).
    pub fn failing(&self) -> bool {
        self.bits & FAILING != 0
    }

    pub fn set_failing(&mut self, failing: bool) {
        self.set_flag(FAILING, failing);
    }

    fn in_flight(&self) -> bool {
        self.bits & IN_FLIGHT != 0
    }

    fn is_vacant(&self) -> bool {
        self.bits & VACANT != 0
    }

    fn set_flag(&mut self, flag: u8, on: bool) {
        if on {
            self.bits |= flag;
        } else {
            self.bits &= !flag;
        }
    }
}

/// No slot (the end of the free list).
const NO_SLOT: u32 = u32::MAX;

/// The id stored at `at` in the arena.
fn id_bytes(ids: &[u8], at: u32) -> &[u8] {
    let at = at as usize;
    let len = usize::from(ids[at]);
    &ids[at + 1..at + 1 + len]
}

/// The pending orders by id, and when each is due.
///
/// Orders live in a slab of [`Entry`] indexed by a `u32` slot (vacant slots are
/// chained in a free list and reused); the index maps an order id to its slot and
/// hashes the id's bytes, which live once in an arena (finalized orders leave holes,
/// compacted once they outweigh the live ids: amortised O(1) per removal).
#[derive(Debug)]
pub(super) struct DueQueue {
    slots: Vec<Entry>,
    /// First vacant slot ([`NO_SLOT`] when none).
    free: u32,
    index: HashTable<u32>,
    /// foldhash (hashbrown's default), randomly seeded per process: SipHash showed in
    /// the poll path's profile (every answer looks its order up).
    hasher: hashbrown::DefaultHashBuilder,
    /// Order ids, each a length byte and the id's bytes.
    ids: Vec<u8>,
    /// Bytes of `ids` that belong to orders no longer pending.
    dead_id_bytes: usize,
    len: usize,
    /// Per purpose (in [`PollPurpose::ALL`] order), earliest first.
    heaps: [Heap; 3],
}

impl DueQueue {
    pub fn new() -> Self {
        DueQueue {
            slots: Vec::new(),
            free: NO_SLOT,
            index: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            ids: Vec::new(),
            dead_id_bytes: 0,
            len: 0,
            heaps: Default::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn slot_of(&self, order_id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(order_id.as_bytes());
        let (slots, ids) = (&self.slots, &self.ids);
        self.index
            .find(hash, |&slot| {
                id_bytes(ids, slots[slot as usize].id_at) == order_id.as_bytes()
            })
            .copied()
    }

    /// The slot of `order_id`, tried at `hint` (where it was when its query went out)
    /// before the index: one comparison of the id instead of a hash and a probe. The
    /// order may have gone and its slot been taken by another since: then the index.
    pub fn find(&self, hint: u32, order_id: &str) -> Option<u32> {
        match self.slots.get(hint as usize) {
            Some(e) if !e.is_vacant() && id_bytes(&self.ids, e.id_at) == order_id.as_bytes() => {
                Some(hint)
            }
            _ => self.slot_of(order_id),
        }
    }

    /// The entry at `slot` (from [`DueQueue::find`], with no removal since).
    pub fn at(&self, slot: u32) -> Option<&Entry> {
        self.slots.get(slot as usize).filter(|e| !e.is_vacant())
    }

    /// [`DueQueue::at`], to change it.
    pub fn at_mut(&mut self, slot: u32) -> Option<&mut Entry> {
        self.slots.get_mut(slot as usize).filter(|e| !e.is_vacant())
    }

    pub fn contains(&self, order_id: &str) -> bool {
        self.slot_of(order_id).is_some()
    }

    #[cfg(test)]
    pub fn get(&self, order_id: &str) -> Option<&Entry> {
        let slot = self.slot_of(order_id)?;
        self.slots.get(slot as usize)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().filter(|e| !e.is_vacant())
    }

    /// Adds an order due at `due_ms`, for the purpose its tracking planned (a new
    /// order's first poll is `Expected`); false if it is already pending.
    pub fn insert(
        &mut self,
        order_id: &str,
        mut entry: Entry,
        due_ms: i64,
    ) -> Result<bool, QueueError> {
        if self.contains(order_id) {
            return Ok(false);
        }
        let id = order_id.as_bytes();
        if id.len() > MAX_ID_BYTES {
            return Err(QueueError::IdTooLong(id.len()));
        }
        if self.free == NO_SLOT && self.slots.len() >= NO_SLOT as usize {
            return Err(QueueError::Full);
        }
        let needed = self.ids.len() + 1 + id.len();
        if needed > u32::MAX as usize {
            self.compact_ids();
            if self.ids.len() + 1 + id.len() > u32::MAX as usize {
                return Err(QueueError::Full);
            }
        }
        entry.id_at = self.ids.len() as u32;
        self.ids.push(id.len() as u8);
        self.ids.extend_from_slice(id);
        entry.bits &= !(VACANT | IN_FLIGHT);
        let slot = if self.free == NO_SLOT {
            self.slots.push(entry);
            (self.slots.len() - 1) as u32
        } else {
            let slot = self.free;
            let vacant = &mut self.slots[slot as usize];
            self.free = vacant.id_at;
            entry.ticket = vacant.ticket;
            *vacant = entry;
            slot
        };
        let hash = self.hasher.hash_one(id);
        let (slots, ids, hasher) = (&self.slots, &self.ids, &self.hasher);
        self.index.insert_unique(hash, slot, |&s| {
            hasher.hash_one(id_bytes(ids, slots[s as usize].id_at))
        });
        self.len += 1;
        let purpose = self.slots[slot as usize].next_purpose();
        self.schedule_slot(slot, due_ms, purpose);
        Ok(true)
    }

    /// Takes an order out (finalized); its planned polls go stale and its slot is
    /// free for another order.
    pub fn remove(&mut self, order_id: &str) -> Option<Entry> {
        let hash = self.hasher.hash_one(order_id.as_bytes());
        let (slots, ids) = (&self.slots, &self.ids);
        let found = self.index.find_entry(hash, |&slot| {
            id_bytes(ids, slots[slot as usize].id_at) == order_id.as_bytes()
        });
        let (slot, _) = found.ok()?.remove();
        let taken = &mut self.slots[slot as usize];
        let vacant = Entry::vacant(self.free, taken.ticket);
        let entry = std::mem::replace(taken, vacant);
        self.free = slot;
        self.len -= 1;
        self.dead_id_bytes += 1 + usize::from(self.ids[entry.id_at as usize]);
        let live = self.ids.len() - self.dead_id_bytes;
        // Compacting costs a pass over the slots and the live ids: only once at least
        // as many bytes died, so that it is paid for by the removals.
        if self.dead_id_bytes > live.max(self.slots.len()).max(4096) {
            self.compact_ids();
        }
        Some(entry)
    }

    /// Rewrites the arena with the live ids only.
    fn compact_ids(&mut self) {
        let mut ids = Vec::with_capacity(self.ids.len() - self.dead_id_bytes);
        for entry in self.slots.iter_mut().filter(|e| !e.is_vacant()) {
            let at = entry.id_at as usize;
            let end = at + 1 + usize::from(self.ids[at]);
            entry.id_at = ids.len() as u32;
            ids.extend_from_slice(&self.ids[at..end]);
        }
        self.ids = ids;
        self.dead_id_bytes = 0;
    }

    /// (Re)schedules a pending order at `due_ms` for `purpose`; it is no longer in
    /// flight.
    #[cfg(test)]
    pub fn schedule(&mut self, order_id: &str, due_ms: i64, purpose: PollPurpose) {
        if let Some(slot) = self.slot_of(order_id) {
            self.schedule_slot(slot, due_ms, purpose);
        }
    }

    fn schedule_slot(&mut self, slot: u32, due_ms: i64, purpose: PollPurpose) {
        let entry = &mut self.slots[slot as usize];
        entry.ticket = entry.ticket.wrapping_add(1);
        entry.set_flag(IN_FLIGHT, false);
        self.heaps[rank(purpose)].push(Reverse(Planned {
            due_ms,
            slot,
            ticket: entry.ticket,
        }));
    }

    /// Marks an order in flight: its queue entry is not live until it is rescheduled.
    #[cfg(test)]
    pub fn set_in_flight(&mut self, order_id: &str, in_flight: bool) {
        if let Some(entry) = self
            .slot_of(order_id)
            .map(|slot| &mut self.slots[slot as usize])
        {
            entry.set_flag(IN_FLIGHT, in_flight);
        }
    }

    /// Marks the order just taken by [`DueQueue::take_due`] in flight; its entry.
    /// Each lookup by id is a few cache misses at a million orders: the poll path
    /// looks an order up by id three times per answer (none when it sends the query).
    pub fn start_flight(&mut self, slot: u32) -> Option<&Entry> {
        let entry = self
            .slots
            .get_mut(slot as usize)
            .filter(|e| !e.is_vacant())?;
        entry.set_flag(IN_FLIGHT, true);
        Some(entry)
    }

    /// The entry at `slot` (from [`DueQueue::find`]) of an order whose query came
    /// back, no longer in flight.
    pub fn land_flight(&mut self, slot: u32) -> Option<&mut Entry> {
        let entry = self.at_mut(slot)?;
        entry.set_flag(IN_FLIGHT, false);
        Some(entry)
    }

    /// [`DueQueue::schedule`] for the order at `slot` (from [`DueQueue::find`],
    /// with no removal since).
    pub fn schedule_at(&mut self, slot: u32, due_ms: i64, purpose: PollPurpose) {
        if self
            .slots
            .get(slot as usize)
            .is_some_and(|e| !e.is_vacant())
        {
            self.schedule_slot(slot, due_ms, purpose);
        }
    }

    /// Due time of `purpose`'s next live queue entry, dropping stale ones.
    fn peek_live(&mut self, purpose: PollPurpose) -> Option<i64> {
        let heap = &mut self.heaps[rank(purpose)];
        while let Some(Reverse(planned)) = heap.peek() {
            match self.slots.get(planned.slot as usize) {
                Some(entry)
                    if entry.ticket == planned.ticket
                        && !entry.is_vacant()
                        && !entry.in_flight() =>
                {
                    return Some(planned.due_ms)
                }
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
        let Reverse(planned) = self.heaps[rank(purpose)].pop()?;
        let entry = self.slots.get(planned.slot as usize)?;
        // The arena only ever receives whole `&str`s.
        let order_id = std::str::from_utf8(id_bytes(&self.ids, entry.id_at)).ok()?;
        Some(DuePoll {
            order_id: Arc::from(order_id),
            due_ms: planned.due_ms,
            purpose,
            slot: planned.slot,
        })
    }

    /// The id of the next order [`DueQueue::take_due`] serves at `now_ms`.
    #[cfg(test)]
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
            assert!(q
                .insert(id, Entry::new(0, Tracking::new(0), 0), *due)
                .unwrap());
        }
        q
    }

    /// Orders scheduled at (due, purpose).
    fn queue_with(orders: &[(&str, i64, PollPurpose)]) -> DueQueue {
        let mut q = queue_of(&[]);
        for (id, due, purpose) in orders {
            assert!(q
                .insert(id, Entry::new(0, Tracking::new(0), 0), i64::MAX)
                .unwrap());
            q.schedule(id, *due, *purpose);
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
    fn find_checks_the_hint_against_the_id() {
        let mut q = queue_of(&[("a", 10), ("b", 20)]);
        let a = q.take_due(10).unwrap();
        assert_eq!(q.find(a.slot, "a"), Some(a.slot), "the hint, checked");
        let b = q.find(99, "b").expect("a hint out of range: the index");
        assert_eq!(
            q.find(a.slot, "b"),
            Some(b),
            "another order's slot: the index"
        );
        // "a" finalized while in flight and its slot taken by "c": the answer for "a"
        // finds nothing, and "c" is found at the reused slot.
        assert!(q.remove("a").is_some());
        assert_eq!(q.find(a.slot, "a"), None, "a vacant slot: not its order");
        assert!(q
            .insert("c", Entry::new(0, Tracking::new(0), 0), 30)
            .unwrap());
        assert_eq!(
            q.find(a.slot, "a"),
            None,
            "the slot reused by another order"
        );
        assert_eq!(q.find(a.slot, "c"), Some(a.slot));
        assert!(q.at(a.slot).is_some() && q.land_flight(99).is_none());
    }

    #[test]
    fn an_order_is_taken_once() {
        let mut q = queue_of(&[("a", 10)]);
        assert!(!q
            .insert("a", Entry::new(0, Tracking::new(0), 0), 5)
            .unwrap());
        assert_eq!(q.len(), 1);
        assert_eq!(q.peek_due(), Some(10), "the first schedule stands");
    }

    #[test]
    fn rescheduling_leaves_a_stale_entry_that_is_skipped() {
        let mut q = queue_of(&[("a", 10), ("b", 20)]);
        // Moved later (and to another purpose's heap): the old entry at 10 is stale.
        q.schedule("a", 50, Decisive);
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
        q.schedule("b", 40, Routine);
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
            let id = format!("d{i}");
            assert!(q
                .insert(&id, Entry::new(0, Tracking::new(0), 0), i64::MAX)
                .unwrap());
            q.schedule(&id, now, Decisive);
            // One query per second, fewer than the polls that become due.
            served.push((now, pop_id(&mut q, now).unwrap()));
        }
        let (at, _) = served.iter().find(|(_, id)| id == "routine").unwrap();
        assert!(*at - t <= DECISIVE_HEAD_START_MS, "{served:?}");
    }

    /// An order with `polls` as its mark, due at `due`.
    fn insert_marked(q: &mut DueQueue, id: &str, mark: u32, due: i64) {
        assert!(
            q.insert(id, Entry::new(0, Tracking::new(0), mark), due)
                .unwrap(),
            "{id}"
        );
    }

    #[test]
    fn a_reused_slot_does_not_answer_to_the_planned_polls_of_its_previous_order() {
        let mut q = queue_of(&[("a", 10)]);
        q.schedule("a", 20, Routine);
        assert!(q.remove("a").is_some());
        // "b" takes a's slot; a's two planned polls (10 and 20) are still in the heaps.
        insert_marked(&mut q, "b", 7, 100);
        assert_eq!(q.slots.len(), 1, "the slot was reused");
        assert_eq!(q.heap_len(), 3);
        assert_eq!(
            q.pop_due(99),
            None,
            "a's planned polls do not serve b early"
        );
        assert_eq!(q.peek_due(), Some(100));
        let b = q.take_due(100).unwrap();
        assert_eq!((&*b.order_id, b.due_ms), ("b", 100));
        assert_eq!(q.get("b").unwrap().polls, 7);
        assert_eq!(q.get("a").map(|e| e.polls), None);
        assert_eq!(q.pop_due(i64::MAX), None);
    }

    #[test]
    fn ids_of_every_length_are_kept_apart_and_found() {
        let mut q = DueQueue::new();
        // Prefixes of one another, and ids differing in their last byte only.
        let ids: Vec<String> = (1..=64)
            .flat_map(|len| ["a".repeat(len), format!("{}b", "a".repeat(len - 1))])
            .collect();
        for (i, id) in ids.iter().enumerate() {
            insert_marked(&mut q, id, i as u32, i as i64);
        }
        assert_eq!(q.len(), 128);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(q.get(id).map(|e| e.polls), Some(i as u32), "{id}");
        }
        assert!(!q.contains(&"a".repeat(65)) && !q.contains("") && !q.contains("ba"));
        assert_eq!(drain(&mut q, i64::MAX), ids);
        let longest = "x".repeat(MAX_ID_BYTES);
        assert!(q
            .insert(&longest, Entry::new(0, Tracking::new(0), 0), 0)
            .unwrap());
        let too_long = "x".repeat(MAX_ID_BYTES + 1);
        assert!(matches!(
            q.insert(&too_long, Entry::new(0, Tracking::new(0), 0), 0),
            Err(QueueError::IdTooLong(256))
        ));
        assert_eq!(q.pop_due(0).as_deref(), Some(longest.as_str()));
    }

    #[test]
    fn compacting_the_id_arena_keeps_every_id_findable() {
        let mut q = DueQueue::new();
        let id = |i: u32| format!("ORD-{i:06}-{}", "z".repeat((i % 40) as usize));
        for i in 0..20_000 {
            insert_marked(&mut q, &id(i), i, i64::from(i));
        }
        let full = q.ids.len();
        // Two of three finalized: compaction runs on the way.
        for i in (0..20_000).filter(|i| i % 3 != 0) {
            assert_eq!(q.remove(&id(i)).map(|e| e.polls), Some(i));
        }
        assert!(
            q.ids.len() < full / 2,
            "compacted: {} of {full} bytes",
            q.ids.len()
        );
        assert!(q.dead_id_bytes <= q.ids.len() - q.dead_id_bytes);
        for i in 0..20_000 {
            let kept = q.get(&id(i)).map(|e| e.polls);
            assert_eq!(kept, (i % 3 == 0).then_some(i), "{}", id(i));
        }
        let served = drain(&mut q, i64::MAX);
        let expected: Vec<String> = (0..20_000).filter(|i| i % 3 == 0).map(id).collect();
        assert_eq!(served, expected);
    }

    #[test]
    fn churn_keeps_the_queue_equal_to_a_plain_map() {
        let mut q = DueQueue::new();
        let mut model = std::collections::BTreeMap::new();
        // A fixed pseudo-random walk (xorshift): inserts, removals, reschedules.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for step in 0..60_000u32 {
            let r = next();
            let id = format!("o{}", r % 3_000);
            match (r >> 32) % 4 {
                0 | 1 => {
                    let added = q
                        .insert(&id, Entry::new(0, Tracking::new(0), step), 0)
                        .unwrap();
                    assert_eq!(added, !model.contains_key(&id));
                    model.entry(id).or_insert(step);
                }
                2 => assert_eq!(q.remove(&id).map(|e| e.polls), model.remove(&id)),
                _ => q.schedule(&id, i64::from(step), Routine),
            }
            assert_eq!(q.len(), model.len());
        }
        assert!(
            q.slots.len() <= 3_000,
            "slots are reused: {}",
            q.slots.len()
        );
        for (id, mark) in &model {
            assert_eq!(q.get(id).map(|e| e.polls), Some(*mark));
        }
        let mut served = drain(&mut q, i64::MAX);
        served.sort();
        assert_eq!(
            served,
            model.keys().cloned().collect::<Vec<_>>(),
            "each once"
        );
    }

    #[test]
    fn times_are_kept_to_the_millisecond_within_24_days_of_the_issue_and_clamped_beyond() {
        let issued = 1_800_000_000_000;
        let bound = i64::from(i32::MAX);
        for offset in [0, 1, -1, 7 * 86_400_000, bound, -bound] {
            let at = issued + offset;
            assert_eq!(unpack_time(issued, pack_time(issued, Some(at))), Some(at));
        }
        assert_eq!(unpack_time(issued, pack_time(issued, None)), None);
        assert_eq!(
            unpack_time(issued, pack_time(issued, Some(issued + bound + 1))),
            Some(issued + bound)
        );
        assert_eq!(
            unpack_time(issued, pack_time(issued, Some(i64::MIN))),
            Some(issued - bound),
            "never mistaken for none"
        );
    }

    #[test]
    fn tracking_comes_back_from_an_entry_as_it_went_in() {
        let mut t = Tracking::new(1_800_000_000_000);
        for outcome in Outcome::ALL.map(Some).into_iter().chain([None]) {
            for purpose in PollPurpose::ALL {
                t.outcome = outcome;
                t.next_purpose = purpose;
                t.decided_ms = outcome.map(|_| t.issued_ms + 301_000);
                t.first_absent_ms = Some(t.issued_ms - 5);
                t.answers = 70_000;
                t.errors_in_row = 21;
                t.last = Some(Box::new(Observation {
                    verified_ms: Some(t.issued_ms + 9_000),
                    attempts_dropped: 2,
                    ..Observation::default()
                }));
                let mut entry = Entry::new(3, t.clone(), 9);
                entry.set_failing(true);
                assert_eq!(entry.take_tracking(), t);
                assert_eq!(entry.last(), None, "moved out, not cloned");
                entry.put_tracking(t.clone());
                assert_eq!((entry.app, entry.polls, entry.failing()), (3, 9, true));
                assert_eq!(entry.take_tracking(), t);
            }
        }
        // Failures in a row past what the backoff looks at: kept as many as it needs.
        t.errors_in_row = 1_000;
        let back = Entry::new(0, t.clone(), 0).take_tracking();
        assert_eq!(back.errors_in_row, u32::from(u8::MAX));
    }
}

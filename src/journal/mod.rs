//! The order journal: for each tracked order, what the provider said, when, and why its
//! outcome is what it is, kept in the state database (`store`) in the same transaction
//! as the order's progress, so that on-call can go from a metric to the orders behind
//! it. `model` is what is kept and its encoding, `build` the pure rules that make it.

mod build;
mod model;
pub mod query;

pub use build::{
    changes, decision_rule, finalize_reason, index_row, merge, new_entry, snapshot, OperatorNames,
    Snapshot, Update,
};
pub use model::{
    clip_reason, decode, encode, mask_receiver, Answer, AttemptDetail, Change, DecodeError, Entry,
    Event, EventKind, IndexRow, State, MAX_REASON_CHARS, MAX_TIMELINE,
};

#[cfg(test)]
mod tests;

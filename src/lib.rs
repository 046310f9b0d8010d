//! itnio-otp-exporter: turns ITNIO Tech OTP order records into Prometheus metrics.
//!
//! Data flow: `spool` (order ids dropped by issuing apps) → `store` (durable pending set)
//! → `scheduler` (one time-ordered queue drives every poll) → `api` (signed record queries)
//! → `outcome` (pure rules: record → fate + metric samples) → `metrics` → `http`.
//! `daemon` wires them together; `cli` is the command line. The provider stand-in
//! (`simulate`, `demo`, the tests) is the separate workspace crate `itnio-sim`.

pub mod account;
pub mod api;
pub mod build_info;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod error;
pub mod geo;
pub mod http;
pub mod journal;
pub mod metrics;
pub mod outcome;
pub mod scheduler;
pub mod spool;
pub mod status;
pub mod store;

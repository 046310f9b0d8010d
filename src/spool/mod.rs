//! The spool: issuing applications drop files of order ids into `spool.dir`.
//!
//! The data path, one file per step: `watch.rs` wakes the scanner (notify events, a
//! periodic rescan); `scan.rs` lists the files that are ready and drives each through
//! `read.rs` (regular UTF-8 files only) and `parse.rs` (a line → an order or a
//! [`LineError`]), admits the orders to the store and sends them to the scheduler;
//! `quarantine.rs` keeps the bad lines and unreadable files with their reasons. A
//! file leaves the spool only after its orders are committed to the store.

mod parse;
mod quarantine;
mod read;
mod scan;
mod watch;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc as tokio_mpsc;

pub use parse::{
    parse_line, parse_text, LineError, LineRules, ParsedText, RejectedLine, SpoolOrder,
    MAX_ISSUED_AHEAD_MS, MAX_ORDER_ID_LEN,
};
pub use quarantine::QUARANTINE_DIR;
pub use read::{FileProblem, FileStamp};
pub use scan::ScanTotals;
pub use watch::{SpoolEnd, SpoolRunner};

use crate::metrics::Metrics;
use crate::store::Store;
use quarantine::Quarantine;
use scan::Unfinished;

/// Orders the spool accepted, on their way to the scheduler.
pub type OrderSender = tokio_mpsc::UnboundedSender<Vec<SpoolOrder>>;

/// How the spool reads its directory.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    pub dir: PathBuf,
    pub rules: LineRules,
    pub max_file_bytes: u64,
    /// Files modified more recently than this are left for the next scan, so that a
    /// writer that writes in place (instead of renaming) is not read half-way.
    pub min_file_age: Duration,
}

/// Everything the spool scanner needs.
pub struct Spool {
    dir: PathBuf,
    rules: LineRules,
    max_file_bytes: u64,
    min_file_age: Duration,
    quarantine: Quarantine,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    orders: OrderSender,
    /// Files whose orders are recorded but whose last step (writing the quarantine,
    /// removing the file) failed; retried on every scan instead of read again.
    unfinished: Mutex<HashMap<PathBuf, Unfinished>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool directory {path}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot watch spool directory {path}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("cannot start the spool thread")]
    ThreadStart(#[source] std::io::Error),
}

impl Spool {
    /// A spool that admits orders to `store` and sends the new ones to `orders`.
    pub fn new(
        options: SpoolOptions,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        orders: OrderSender,
    ) -> Self {
        let SpoolOptions {
            dir,
            rules,
            max_file_bytes,
            min_file_age,
        } = options;
        Spool {
            quarantine: Quarantine::in_spool(&dir),
            dir,
            rules,
            max_file_bytes,
            min_file_age,
            store,
            metrics,
            orders,
            unfinished: Mutex::default(),
        }
    }

    /// Creates the spool and quarantine directories if needed.
    pub fn prepare(&self) -> Result<(), SpoolError> {
        self.quarantine.create().map_err(|source| SpoolError::Dir {
            path: self.quarantine.dir().to_path_buf(),
            source,
        })
    }
}

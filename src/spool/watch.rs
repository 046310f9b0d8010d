//! The spool's thread: a scan at start, on every relevant watcher event, and every
//! `rescan_interval`. The directory is the truth; events only wake the scanner early,
//! and the periodic rescan catches whatever events were lost.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};

use super::{Spool, SpoolError};
use crate::error::Chain;
use crate::status::Status;

/// Events that arrive this close together are handled by one scan.
const EVENT_SETTLE: Duration = Duration::from_millis(20);
/// Margin after `min_file_age` before deferred files are looked at again.
const DEFERRED_MARGIN: Duration = Duration::from_millis(50);

/// Why the scanner woke up.
enum Wake {
    Event,
    Stop,
}

/// How the spool thread ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpoolEnd {
    /// Its loop returned (asked to stop, or its runner went away).
    #[error("stopped")]
    Returned,
    #[error("panicked: {0}")]
    Panicked(String),
}

/// Test-only fault switch, compiled into debug builds only (the integration tests run
/// them; release builds have no such variable): the spool thread panics at its next
/// scan once a file of this name is in the spool. Nothing real kills this thread
/// alone (a crash kills the process), so tests need it to prove that a dead spool
/// thread is noticed.
#[cfg(debug_assertions)]
pub const TEST_PANIC_FILE_ENV: &str = "ITNIO_OTP_EXPORTER_TEST_SPOOL_PANIC_FILE";

/// Runs the scanner on its own thread until stopped.
pub struct SpoolRunner {
    wake: mpsc::Sender<Wake>,
    thread: Option<std::thread::JoinHandle<()>>,
    _watcher: Option<notify::RecommendedWatcher>,
    ended: Option<oneshot::Receiver<SpoolEnd>>,
}

impl SpoolRunner {
    /// Creates the spool's folders, watches the directory and starts the thread.
    /// The thread returns once `stop` is set and it noticed, or on [`Self::stop`].
    pub fn start(
        spool: Spool,
        rescan_interval: Duration,
        stop: Arc<AtomicBool>,
        status: Arc<Status>,
    ) -> Result<SpoolRunner, SpoolError> {
        spool.prepare()?;
        let (wake, wakes) = mpsc::channel::<Wake>();
        let watcher = watch_dir(&spool.dir, wake.clone())?;
        let (ended_tx, ended) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("spool".into())
            .spawn(move || {
                // Caught so that the daemon learns how the thread ended (the panic
                // hook has printed the panic already); a send to nobody is fine.
                let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    run(&spool, rescan_interval, &stop, &status, &wakes)
                }));
                let end = match ran {
                    Ok(()) => SpoolEnd::Returned,
                    Err(payload) => SpoolEnd::Panicked(panic_text(payload.as_ref())),
                };
                let _ = ended_tx.send(end);
            })
            .map_err(SpoolError::ThreadStart)?;
        Ok(SpoolRunner {
            wake,
            thread: Some(thread),
            _watcher: Some(watcher),
            ended: Some(ended),
        })
    }

    /// Resolves when the thread ends, with how; for the daemon's supervisor (the
    /// receiver is handed out once). A closed channel means it ended without a word.
    pub fn take_ended(&mut self) -> Option<oneshot::Receiver<SpoolEnd>> {
        self.ended.take()
    }

    /// Stops taking new files and waits for the file in hand to finish.
    pub fn stop(mut self) {
        let _ = self.wake.send(Wake::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A watcher on `dir` (not its subfolders) that wakes the scanner on relevant events.
fn watch_dir(
    dir: &Path,
    wake: mpsc::Sender<Wake>,
) -> Result<notify::RecommendedWatcher, SpoolError> {
    let failed = |source| SpoolError::Watch {
        path: dir.to_path_buf(),
        source,
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if wakes_scanner(&event) {
            let _ = wake.send(Wake::Event);
        }
    })
    .map_err(failed)?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(failed)?;
    Ok(watcher)
}

/// Whether an event may mean a file is ready: a file closed after writing, a rename
/// (writers rename finished files in), or something the watcher cannot describe.
fn wakes_scanner(event: &notify::Result<notify::Event>) -> bool {
    match event {
        // Overflow or an error: rescan everything.
        Err(_) => true,
        Ok(e) => {
            e.need_rescan()
                || matches!(
                    e.kind,
                    EventKind::Access(AccessKind::Close(AccessMode::Write))
                        | EventKind::Modify(ModifyKind::Name(_))
                        | EventKind::Create(CreateKind::Folder)
                        | EventKind::Create(CreateKind::Other)
                        | EventKind::Other
                )
        }
    }
}

/// A panic's message (panics carry a `&str` or a `String`).
fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_string()
    }
}

/// The thread's loop: scan, then sleep until an event, a stop or the next rescan.
fn run(
    spool: &Spool,
    rescan_interval: Duration,
    stop: &AtomicBool,
    status: &Status,
    wakes: &mpsc::Receiver<Wake>,
) {
    while !stop.load(Ordering::Relaxed) {
        #[cfg(debug_assertions)]
        test_fault(spool);
        let wait = scan_once(spool, rescan_interval, stop);
        status.spool_scanned.store(true, Ordering::Release);
        match wakes.recv_timeout(wait) {
            Ok(Wake::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Ok(Wake::Event) | Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        // Let a burst of events settle into one scan.
        std::thread::sleep(EVENT_SETTLE);
        while let Ok(w) = wakes.try_recv() {
            if matches!(w, Wake::Stop) {
                return;
            }
        }
    }
}

/// The test-only fault switch (see [`TEST_PANIC_FILE_ENV`]).
#[cfg(debug_assertions)]
fn test_fault(spool: &Spool) {
    if let Some(name) = std::env::var_os(TEST_PANIC_FILE_ENV) {
        let trigger = spool.dir.join(name);
        if trigger.exists() {
            panic!("test fault: {} exists", trigger.display());
        }
    }
}

/// Scans once; returns how long to wait before the next scan at the latest.
fn scan_once(spool: &Spool, rescan_interval: Duration, stop: &AtomicBool) -> Duration {
    match spool.scan(stop) {
        Ok(t) => {
            if t.files + t.quarantined_files > 0 {
                tracing::debug!(?t, "spool scanned");
            }
            if t.deferred > 0 {
                // Look again once the fresh files have been quiet long enough.
                return rescan_interval.min(spool.min_file_age + DEFERRED_MARGIN);
            }
        }
        Err(e) => tracing::error!(error = %Chain(&e), "spool scan failed"),
    }
    rescan_interval
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{Event, Flag, RemoveKind};

    #[test]
    fn finished_files_and_unknown_events_wake_the_scanner() {
        let wakes = |kind| wakes_scanner(&Ok(Event::new(kind)));
        assert!(wakes(EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(wakes(EventKind::Modify(ModifyKind::Name(
            notify::event::RenameMode::To
        ))));
        assert!(wakes(EventKind::Create(CreateKind::Other)));
        assert!(wakes(EventKind::Other));
        assert!(wakes_scanner(&Err(notify::Error::generic("overflow"))));
        assert!(wakes_scanner(&Ok(
            Event::new(EventKind::Any).set_flag(Flag::Rescan)
        )));
        // A file being written, read or removed is not ready yet (or gone).
        assert!(!wakes(EventKind::Create(CreateKind::File)));
        assert!(!wakes(EventKind::Modify(ModifyKind::Data(
            notify::event::DataChange::Any
        ))));
        assert!(!wakes(EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!wakes(EventKind::Remove(RemoveKind::File)));
    }

    #[test]
    fn a_directory_that_cannot_be_watched_is_named_with_the_cause() {
        use std::error::Error as _;
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing");
        let Err(err) = watch_dir(&missing, mpsc::channel().0) else {
            panic!("a missing directory is watched");
        };
        let prefix = format!("cannot watch spool directory {}: ", missing.display());
        assert!(
            crate::error::Chain(&err).to_string().starts_with(&prefix),
            "{err}"
        );
        let cause = err.source().and_then(|s| s.downcast_ref::<notify::Error>());
        assert!(cause.is_some(), "{err:?}");
    }
}

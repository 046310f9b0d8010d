//! What one HTTP client may hold: a cap on open connections (past it a new
//! connection is closed at once), a header-read timeout, an I/O idle timeout, and
//! logging that reports a flood in a few lines instead of one per connection.
//!
//! Why: a scraper port that accepts without bound lets idle connections take every
//! descriptor of the process, and then the spool cannot open its directory and
//! the state database cannot grow (issue 8, defect 7).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A client must send a whole request head within this; hyper starts the timer
/// whenever it waits for a head, so it also bounds an idle keep-alive connection
/// between requests and a head trickled byte by byte.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection on which no byte moves for this long is closed: a client that
/// stops reading its response, or stalls a TLS handshake.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The TLS handshake must complete within this.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most connections the server keeps open, whatever the descriptor limit.
pub const MAX_CONNECTIONS: usize = 512;

/// The fewest, on a process with very few descriptors.
const MIN_CONNECTIONS: usize = 16;

/// Problems of the accept loop and refusals are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The connection cap for a process that may open `nofile` descriptors: a quarter
/// of them, so that the spool, the state database, the API client's connections and
/// the logs keep the other three quarters whatever the scrapers do.
pub fn connection_cap(nofile: Option<u64>) -> usize {
    match nofile {
        Some(n) => usize::try_from(n / 4)
            .unwrap_or(MAX_CONNECTIONS)
            .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS),
        None => MAX_CONNECTIONS,
    }
}

/// The soft limit on open descriptors (`ulimit -n`), read from /proc so that no
/// unsafe FFI is needed; None where /proc is absent or says "unlimited".
pub fn nofile_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_nofile_soft_limit(&limits)
}

fn parse_nofile_soft_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Counts what the accept loop turned away and logs it at most once a minute.
#[derive(Debug)]
pub struct FloodLog {
    cap: usize,
    state: Mutex<FloodState>,
}

#[derive(Debug, Default)]
struct FloodState {
    last_logged: Option<Instant>,
    refused_unlogged: u64,
    accept_errors_unlogged: u64,
}

impl FloodLog {
    pub fn new(cap: usize) -> Self {
        FloodLog {
            cap,
            state: Mutex::new(FloodState::default()),
        }
    }

    /// A connection closed because the cap is reached.
    pub fn refused(&self) {
        self.note(|s| s.refused_unlogged += 1, None);
    }

    /// `accept` failed (e.g. EMFILE because something else holds the descriptors).
    pub fn accept_failed(&self, error: &io::Error) {
        self.note(|s| s.accept_errors_unlogged += 1, Some(error));
    }

    fn note(&self, count: impl FnOnce(&mut FloodState), error: Option<&io::Error>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        count(&mut state);
        let now = Instant::now();
        if state
            .last_logged
            .is_some_and(|at| now.duration_since(at) < LOG_EVERY)
        {
            return;
        }
        state.last_logged = Some(now);
        let refused = std::mem::take(&mut state.refused_unlogged);
        let accept_errors = std::mem::take(&mut state.accept_errors_unlogged);
        match error {
            Some(e) => tracing::warn!(
                error = %e,
                accept_errors,
                refused,
                "cannot accept HTTP connections (logged at most once a minute)"
            ),
            None => tracing::warn!(
                cap = self.cap,
                refused,
                accept_errors,
                "HTTP connection cap reached: new connections are closed at once (logged at most once a minute)"
            ),
        }
    }
}

/// When bytes last moved on a connection, shared between its I/O and its watchdog.
#[derive(Debug, Clone)]
pub struct Activity {
    // tokio's clock, so that a test can pause and move time.
    origin: tokio::time::Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub fn new() -> Self {
        Activity {
            origin: tokio::time::Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When the connection becomes idle for `timeout` if nothing moves until then.
    fn idle_deadline(&self, timeout: Duration) -> tokio::time::Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + timeout
    }

    /// Resolves once no byte has moved for `timeout`.
    pub async fn idle_for(&self, timeout: Duration) {
        loop {
            let deadline = self.idle_deadline(timeout);
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// A stream that records in `Activity` every read or write that moved bytes.
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    activity: Activity,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Activity) -> Self {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Runs `connection` until it ends or no byte has moved on it for `IDLE_TIMEOUT`;
/// dropping it closes the socket.
pub async fn until_idle<F: Future>(connection: F, activity: &Activity) {
    tokio::select! {
        _ = connection => {}
        _ = activity.idle_for(IDLE_TIMEOUT) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_three_quarters_of_the_descriptors_to_the_rest() {
        assert_eq!(connection_cap(Some(1024)), 256);
        assert_eq!(connection_cap(Some(20)), MIN_CONNECTIONS);
        assert_eq!(connection_cap(Some(1 << 40)), MAX_CONNECTIONS);
        assert_eq!(connection_cap(None), MAX_CONNECTIONS);
    }

    #[test]
    fn reads_the_soft_limit_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             63422                63422                processes \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_nofile_soft_limit(text), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile_soft_limit(unlimited), None);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_for_waits_until_nothing_moved_for_the_timeout() {
        let activity = Activity::new();
        let watcher = activity.clone();
        let idle = tokio::spawn(async move { watcher.idle_for(Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_secs(20)).await;
        activity.touch();
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(
            !idle.is_finished(),
            "activity at 20 s moves the deadline to 50 s"
        );
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(idle.is_finished());
    }
}

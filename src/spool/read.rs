//! Reading one spool file: only regular files, bounded in size, UTF-8.

use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A file whose modification time leads our clock by more than this is read at once
/// (waiting for it to turn quiet would wait until that time) and issued "now".
pub(super) const MTIME_AHEAD_TOLERANCE: Duration = Duration::from_secs(60);

/// Modification time and length: enough to notice that a file changed.
pub type FileStamp = (SystemTime, u64);

/// Why a whole file was quarantined (label `reason` of the quarantine counter).
/// The texts go into `.reason` files after the file's path.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FileProblem {
    #[error("is a symbolic link (spool entries must be regular files)")]
    Symlink,
    #[error("is a directory (spool entries must be regular files)")]
    Directory,
    #[error("is not a regular file")]
    NotRegular,
    #[error("is {bytes} bytes, larger than spool.max_file_bytes ({max})")]
    TooLarge { bytes: u64, max: u64 },
    #[error("is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { offset: usize },
    /// Shared, because a problem is kept to retry its quarantine and `io::Error`
    /// cannot be cloned.
    #[error("cannot be read: {0}")]
    Unreadable(#[source] Arc<io::Error>),
}

impl FileProblem {
    pub fn label(&self) -> &'static str {
        match self {
            FileProblem::Symlink => "symlink",
            FileProblem::Directory => "directory",
            FileProblem::NotRegular => "not_regular",
            FileProblem::TooLarge { .. } => "too_large",
            FileProblem::NotUtf8 { .. } => "not_utf8",
            FileProblem::Unreadable(_) => "unreadable",
        }
    }
}

impl From<io::Error> for FileProblem {
    fn from(e: io::Error) -> Self {
        FileProblem::Unreadable(Arc::new(e))
    }
}

/// A spool file as read.
#[derive(Debug)]
pub(super) struct SpoolFile {
    pub text: String,
    /// The issue time of its lines without `issuedAt`: the modification time, or
    /// now if that lies in the future.
    pub issued_ms: i64,
    pub stamp: FileStamp,
}

/// Reads `path` if it is a regular UTF-8 file of at most `max_file_bytes`.
pub(super) fn read_spool_file(
    path: &Path,
    max_file_bytes: u64,
    now_ms: i64,
) -> Result<SpoolFile, FileProblem> {
    let meta = fs::symlink_metadata(path)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(FileProblem::Symlink);
    }
    if kind.is_dir() {
        return Err(FileProblem::Directory);
    }
    if !kind.is_file() {
        return Err(FileProblem::NotRegular);
    }
    let too_large = |bytes: u64| FileProblem::TooLarge {
        bytes,
        max: max_file_bytes,
    };
    if meta.len() > max_file_bytes {
        return Err(too_large(meta.len()));
    }
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let stamp = (modified, meta.len());
    let mtime_ms = modified
        .duration_since(UNIX_EPOCH)
        .map_or(now_ms, |d| d.as_millis() as i64);
    if mtime_ms > now_ms + MTIME_AHEAD_TOLERANCE.as_millis() as i64 {
        tracing::warn!(file = %path.display(), "spool file modified in the future (the writer's clock is ahead?); its orders without issuedAt count as issued now");
    }
    // The file may grow between the look and the read: read one byte more than allowed.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    fs::File::open(path)?
        .take(max_file_bytes + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_file_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    let text = String::from_utf8(bytes).map_err(|e| FileProblem::NotUtf8 {
        offset: e.utf8_error().valid_up_to(),
    })?;
    Ok(SpoolFile {
        text,
        issued_ms: mtime_ms.min(now_ms),
        stamp,
    })
}

/// The stamp of whatever is at `path` without following links (zero if nothing).
pub(super) fn stamp_of(path: &Path) -> FileStamp {
    fs::symlink_metadata(path)
        .map(|m| (m.modified().unwrap_or(UNIX_EPOCH), m.len()))
        .unwrap_or((UNIX_EPOCH, 0))
}

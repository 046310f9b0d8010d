//! `quarantine/` inside the spool: whole files beside a `.reason` file, and rejected
//! lines in `.rejected` files, each line preceded by a `# line N: reason` comment so
//! that a fixed file can be moved back into the spool as it is.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::parse::RejectedLine;
use super::read::FileProblem;

/// Folder inside the spool that the daemon keeps for itself.
pub const QUARANTINE_DIR: &str = "quarantine";

/// The quarantine folder of one spool.
#[derive(Debug, Clone)]
pub(super) struct Quarantine {
    dir: PathBuf,
}

impl Quarantine {
    pub fn in_spool(spool_dir: &Path) -> Self {
        Quarantine {
            dir: spool_dir.join(QUARANTINE_DIR),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the folder if it is missing (an operator may have deleted it).
    pub fn create(&self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)
    }

    /// Moves `path` here beside a `.reason` file that says why; returns its new
    /// path. On failure the file stays where it was and no `.reason` is left behind.
    pub fn move_whole(&self, path: &Path, problem: &FileProblem) -> io::Result<PathBuf> {
        let target = self.unique_name(path);
        let reason_file = with_suffix(&target, ".reason");
        let reason = format!("{}: {problem}\n", path.display());
        let moved =
            write_durably(&reason_file, reason.as_bytes()).and_then(|()| fs::rename(path, &target));
        match moved {
            Ok(()) => Ok(target),
            Err(e) => {
                let _ = fs::remove_file(&reason_file);
                Err(e)
            }
        }
    }

    /// Writes the rejected lines of `path` into a `.rejected` file.
    pub fn write_rejected(&self, path: &Path, rejected: &str) -> io::Result<()> {
        let target = with_suffix(&self.unique_name(path), ".rejected");
        write_durably(&target, rejected.as_bytes())
    }

    /// A name here for something that came from `path`, unique even when two
    /// quarantines of one name fall in the same millisecond.
    fn unique_name(&self, path: &Path) -> PathBuf {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unnamed".into());
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let taken = |base: &str| {
            ["", ".reason", ".rejected"]
                .iter()
                .any(|ext| self.dir.join(format!("{base}{ext}")).exists())
        };
        let mut base = format!("{name}.{stamp}");
        let mut n = 1;
        while taken(&base) {
            n += 1;
            base = format!("{name}.{stamp}.{n}");
        }
        self.dir.join(base)
    }
}

/// The text of a `.rejected` file: a header naming the file, then every rejected
/// line after a comment with its line number and reason.
pub(super) fn rejected_lines_text(path: &Path, rejected: &[RejectedLine<'_>]) -> String {
    let mut text = format!("# rejected lines of {}\n", path.display());
    for bad in rejected {
        text.push_str(&format!(
            "# line {}: {}\n{}\n",
            bad.line_no, bad.reason, bad.line
        ));
    }
    text
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::parse::LineError;

    #[test]
    fn rejected_lines_are_commented_with_number_and_reason() {
        let rejected = [
            RejectedLine {
                line_no: 4,
                reason: LineError::EmptyOrderId,
                line: r#"{"orderId": ""}"#,
            },
            RejectedLine {
                line_no: 9,
                reason: LineError::UnknownApp("ghost".into()),
                line: "g1",
            },
        ];
        assert_eq!(
            rejected_lines_text(Path::new("/spool/batch-1"), &rejected),
            "# rejected lines of /spool/batch-1\n\
             # line 4: empty order id\n{\"orderId\": \"\"}\n\
             # line 9: unknown app \"ghost\" (not in apps[].id)\ng1\n"
        );
    }

    #[test]
    fn names_never_collide_and_a_failed_move_leaves_no_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let quarantine = Quarantine::in_spool(tmp.path());
        quarantine.create().unwrap();
        for _ in 0..3 {
            let file = tmp.path().join("same-name");
            fs::write(&file, "x\n").unwrap();
            let moved = quarantine
                .move_whole(&file, &FileProblem::NotRegular)
                .unwrap();
            assert!(moved.exists() && !file.exists());
            let reason = fs::read_to_string(with_suffix(&moved, ".reason")).unwrap();
            assert_eq!(
                reason,
                format!("{}: is not a regular file\n", file.display())
            );
        }
        assert_eq!(fs::read_dir(quarantine.dir()).unwrap().count(), 6);
        // Nothing to move: the error is returned and no stray `.reason` stays.
        let gone = tmp.path().join("gone");
        assert!(quarantine
            .move_whole(&gone, &FileProblem::NotRegular)
            .is_err());
        assert_eq!(fs::read_dir(quarantine.dir()).unwrap().count(), 6);
    }
}

//! A daemon that cannot start says what failed and why, in one line: `main` prints
//! the error with every cause (`error::Chain`), not just the outermost words.

mod common;

use std::process::Command;

use common::*;

/// Runs `run --config` on the test config, which must fail; returns its `error:` line.
fn failed_start(dir: &std::path::Path) -> String {
    let config = exporter_config(dir, free_addr(), "http://127.0.0.1:9", "");
    let out = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .env("TEST_ITNIO_SECRET", API_SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started:\n{stderr}");
    stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"))
        .to_string()
}

#[test]
fn a_state_dir_that_cannot_be_created_names_the_path_and_the_os_error() {
    let dir = tempfile::tempdir().unwrap();
    // `state` is a regular file, so `state/` cannot be a directory.
    std::fs::write(dir.path().join("state"), "not a directory").unwrap();
    let line = failed_start(dir.path());
    assert!(line.contains("cannot create state directory"), "{line}");
    assert!(
        line.contains(&dir.path().join("state").display().to_string()),
        "{line}"
    );
    // The cause from the OS follows the daemon's own words.
    assert!(
        line.contains(": File exists") || line.contains(": Not a directory"),
        "{line}"
    );
}

#[test]
fn a_state_file_that_is_not_a_database_names_the_file_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/state.redb"), vec![0x5a_u8; 8192]).unwrap();
    let line = failed_start(dir.path());
    assert!(line.contains("cannot open state database"), "{line}");
    assert!(
        line.contains("state.redb: "),
        "the cause is missing: {line}"
    );
    assert!(!line.contains(API_SECRET), "{line}");
}

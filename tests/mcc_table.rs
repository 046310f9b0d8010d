//! The committed `data/mcc-mnc.csv` is exactly what `scripts/derive-mcc-table.py`
//! makes of the licensed source table, so nobody edits it by hand and the generator's
//! rules (operator names included) are the ones in force.
//!
//! The source (`mcc-mnc-table.csv`, musalbas/mcc-mnc-table 45b06a1) is not in the
//! repository: it is found through `ITNIO_MCC_MNC_SOURCE`, else as
//! `shared/data/mcc-mnc/mcc-mnc-table.csv` in a directory above the repository (the
//! team's layout: `../shared/data/mcc-mnc/`) or under `/work`. A clone elsewhere
//! without the licensed source (CI's clean clone may be anywhere) cannot run the
//! generator: it says so on stderr and checks only what the repository holds.

use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCE_IN_SHARED: &str = "shared/data/mcc-mnc/mcc-mnc-table.csv";

fn source_table() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ITNIO_MCC_MNC_SOURCE") {
        return Some(PathBuf::from(path));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    repo.ancestors()
        .skip(1)
        .chain([Path::new("/work")])
        .map(|dir| dir.join(SOURCE_IN_SHARED))
        .find(|path| path.is_file())
}

#[test]
fn the_committed_table_is_the_generators_output() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("data/README.md")).expect("data/README.md");
    let committed =
        std::fs::read_to_string(repo.join("data/mcc-mnc.csv")).expect("data/mcc-mnc.csv");
    // What the repository alone can show: the quoted row count is the file's.
    assert_eq!(committed.lines().count() - 1, 2123, "data/mcc-mnc.csv rows");
    let Some(source) = source_table() else {
        eprintln!(
            "no {SOURCE_IN_SHARED} above {} or under /work: the generator is not rerun \
             (set ITNIO_MCC_MNC_SOURCE to the musalbas/mcc-mnc-table CSV, commit 45b06a1)",
            repo.display()
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let generated = dir.path().join("mcc-mnc.csv");
    let out = Command::new("python3")
        .arg(repo.join("scripts/derive-mcc-table.py"))
        .arg(&source)
        .arg(&generated)
        .output()
        .expect("run python3 scripts/derive-mcc-table.py");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "derive-mcc-table failed: {log}");
    // The source is the one data/README.md names.
    let sha = log
        .split_whitespace()
        .skip_while(|w| *w != "sha256")
        .nth(1)
        .map(|w| w.trim_end_matches(':'))
        .unwrap_or_else(|| panic!("no sha256 in the generator's log: {log}"));
    assert!(
        readme.contains(sha),
        "source {} (sha256 {sha}) is not the one data/README.md names",
        source.display()
    );
    let committed = committed.into_bytes();
    let generated = std::fs::read(&generated).expect("generated table");
    if committed != generated {
        let (c, g) = (
            String::from_utf8_lossy(&committed),
            String::from_utf8_lossy(&generated),
        );
        let first = c
            .lines()
            .zip(g.lines())
            .enumerate()
            .find(|(_, (c, g))| c != g);
        panic!(
            "data/mcc-mnc.csv differs from scripts/derive-mcc-table.py's output \
             ({} vs {} lines; first difference at {first:?}): rerun the script",
            c.lines().count(),
            g.lines().count()
        );
    }
    // The numbers data/README.md quotes are the generator's.
    for quoted in ["2,123 rows", "229 MCCs", "471 rows repeat"] {
        assert!(readme.contains(quoted), "data/README.md lost {quoted:?}");
    }
    for said in [
        "2123 networks, 229 MCCs, 471 duplicate rows merged",
        "80 networks have several operator names (first kept), 31 none (empty)",
    ] {
        assert!(
            log.contains(said),
            "generator no longer says {said:?}: {log}"
        );
    }
    for quoted in ["80 networks", "31 networks"] {
        assert!(readme.contains(quoted), "data/README.md lost {quoted:?}");
    }
}

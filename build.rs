//! Build facts for `--version` and `otp_exporter_build_info`: the git revision, the build
//! date and the compiler's version, passed to the crate as `ITNIO_BUILD_*` variables.
//!
//! - Revision: `git rev-parse --short=12 HEAD` when the crate root is a git checkout (a fixed
//!   length, because git's automatic abbreviation depends on the object count and would differ
//!   between a shallow and a full clone of the same commit); else `ITNIO_OTP_EXPORTER_REVISION`
//!   (the Docker build passes it as a build argument, since its context excludes `.git/`);
//!   else `unknown` (a source tarball).
//! - Build date: `SOURCE_DATE_EPOCH` when set (reproducible builds), else the time this script
//!   ran. The script reruns only when HEAD moves or its inputs change, so an incremental
//!   build after editing sources keeps the earlier date: the date of a release build is exact.
//! - rustc: the version of the compiler cargo uses (`$RUSTC --version`); a new toolchain
//!   rebuilds everything, this script included.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

const REVISION_OVERRIDE: &str = "ITNIO_OTP_EXPORTER_REVISION";

fn main() {
    let root =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    // Emitting any rerun-if-changed replaces cargo's default (rerun on any file of the
    // package), so the script names everything it reads.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={REVISION_OVERRIDE}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let revision = git_revision(&root)
        .or_else(revision_override)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=ITNIO_BUILD_REVISION={revision}");
    println!("cargo:rustc-env=ITNIO_BUILD_DATE={}", build_date());
    println!("cargo:rustc-env=ITNIO_BUILD_RUSTC={}", rustc_version());
    let target = env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=ITNIO_BUILD_TARGET={target}");
}

/// The checkout's revision, watching the files that change when HEAD moves. `None` when
/// the crate root is no git checkout: a tarball unpacked inside some other repository
/// must not report that repository's revision.
fn git_revision(root: &Path) -> Option<String> {
    // `.git` is a directory in a clone, a file in a worktree or submodule.
    if !root.join(".git").exists() {
        return None;
    }
    for path in files_moving_with_head(root) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    match git(root, &["rev-parse", "--short=12", "HEAD"]) {
        Ok(revision) => Some(revision),
        Err(why) => {
            // Not silent: a checkout that reports `unknown` is worth a look (git missing,
            // or git refusing a repository owned by another user).
            println!("cargo:warning=git revision unknown: {why}");
            None
        }
    }
}

/// HEAD, the branch ref it points to and `packed-refs`, as git resolves them (worktrees
/// keep HEAD apart from the shared refs). Only existing paths are named: cargo reruns a
/// script on every build while a named path is missing. A branch that is only in
/// `packed-refs` gets its loose file on the next commit, so then its directory is watched.
fn files_moving_with_head(root: &Path) -> Vec<PathBuf> {
    let mut names = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Ok(branch) = git(root, &["symbolic-ref", "-q", "HEAD"]) {
        names.push(branch);
    }
    let mut paths = Vec::new();
    for name in names {
        let Ok(path) = git(root, &["rev-parse", "--git-path", &name]) else {
            continue;
        };
        let path = root.join(path);
        if path.exists() {
            paths.push(path);
        } else if let Some(dir) = path.parent().filter(|d| d.is_dir()) {
            if name.starts_with("refs/") {
                paths.push(dir.to_path_buf());
            }
        }
    }
    paths
}

fn git(root: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if output.status.success() && !stdout.is_empty() {
        Ok(stdout)
    } else {
        Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// `ITNIO_OTP_EXPORTER_REVISION` when set and not empty. It becomes a label value and a
/// line of `--version`, so only the characters of revisions and `git describe` names pass.
fn revision_override() -> Option<String> {
    let value = env::var(REVISION_OVERRIDE).ok()?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let valid = value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
    if !valid {
        panic!(
            "{REVISION_OVERRIDE}={value:?}: expected a git revision (up to 64 of A-Z a-z 0-9 . _ - +)"
        );
    }
    Some(value.to_string())
}

/// `YYYY-MM-DDTHH:MM:SSZ` of `SOURCE_DATE_EPOCH`, else of now. A malformed
/// `SOURCE_DATE_EPOCH` fails the build, as the reproducible-builds specification asks.
fn build_date() -> String {
    // Empty counts as unset: a Dockerfile ARG without a value is an empty variable.
    let secs = match env::var("SOURCE_DATE_EPOCH")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(value) => value.trim().parse::<u64>().unwrap_or_else(|_| {
            panic!(
                "SOURCE_DATE_EPOCH={value:?}: expected seconds since 1970 (a non-negative integer)"
            )
        }),
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    rfc3339_utc(secs)
}

/// Seconds since 1970 as a UTC timestamp (days to civil date: Howard Hinnant's algorithm),
/// so the build script needs no date crate.
fn rfc3339_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// `1.95.0` of `rustc 1.95.0 (59807616e 2026-04-14)`.
fn rustc_version() -> String {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split_whitespace().nth(1).map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".to_string())
}

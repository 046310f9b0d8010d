//! What this binary is: version, git revision, build date and compiler, as `build.rs`
//! found them. Shown by `--version` and exported as `otp_exporter_build_info`.

/// The crate version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// `git rev-parse --short=12 HEAD` at build time, or `unknown` (a build without `.git`).
pub const REVISION: &str = env!("ITNIO_BUILD_REVISION");
/// UTC, `YYYY-MM-DDTHH:MM:SSZ`; `SOURCE_DATE_EPOCH` when the build set it.
pub const BUILD_DATE: &str = env!("ITNIO_BUILD_DATE");
/// The compiler's version, e.g. `1.95.0`.
pub const RUSTC_VERSION: &str = env!("ITNIO_BUILD_RUSTC");
/// The target triple, e.g. `x86_64-unknown-linux-gnu`.
pub const TARGET: &str = env!("ITNIO_BUILD_TARGET");

/// `-V`: one line.
pub const SHORT_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision: ",
    env!("ITNIO_BUILD_REVISION"),
    ", build date: ",
    env!("ITNIO_BUILD_DATE"),
    ")"
);

/// `--version`: the layout of Prometheus' own exporters (`prometheus --version`).
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision: ",
    env!("ITNIO_BUILD_REVISION"),
    ")\n  build date:    ",
    env!("ITNIO_BUILD_DATE"),
    "\n  rustc version: ",
    env!("ITNIO_BUILD_RUSTC"),
    "\n  target:        ",
    env!("ITNIO_BUILD_TARGET"),
);

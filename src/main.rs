use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use itnio_otp_exporter::cli::{self, Cli, Command, LogFormat};
use itnio_otp_exporter::error::Chain;

/// mimalloc: fewer CPU cycles per poll than glibc's allocator (the footprint bench,
/// `cargo bench --bench footprint`, README "Scale").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's option enum (`mimalloc.h`); the Rust
/// bindings do not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the system 10 ms after it is freed, and a quiet thread
/// makes sure that happens (`mi_collect(true)` every 250 ms purges what any thread
/// freed): mimalloc v3 purges only when the freeing thread allocates again, so after a
/// big intake or a restart's load the garbage stayed resident (about 120 B more RSS
/// per pending order in the footprint bench). Purging at once (delay 0) kept RSS low
/// but cost about 6% CPU per poll in page faults and TLB shootdowns: pages freed and
/// reused within milliseconds were given back and faulted in again.
fn configure_allocator() {
    // SAFETY: sets one integer option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
    let purge = || loop {
        std::thread::sleep(std::time::Duration::from_millis(250));
        // SAFETY: mimalloc's collection is thread-safe; this thread owns no heap pages.
        unsafe { libmimalloc_sys::mi_collect(true) };
    };
    // Without the thread, memory is only returned later: not worth failing over.
    let _ = std::thread::Builder::new()
        .name("memory-purge".into())
        .spawn(purge);
}

fn main() -> std::process::ExitCode {
    configure_allocator();
    let args = Cli::parse();
    let filter = || {
        EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&args.log_level))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    // Colours only on a terminal: journald, files and pipes get plain text.
    let ansi = std::io::stderr().is_terminal();
    // The demo's terminal keeps its URLs and summaries in view: only warnings go
    // there; the full log (at --log-level, in --log-format) goes to a file.
    let demo_log = match &args.command {
        Command::Demo(demo) => cli::demo::open_log_file(demo),
        _ => Ok(None),
    };
    let demo_log = match demo_log {
        Ok(file) => file,
        Err(e) => {
            eprintln!("error: {}", Chain(&e));
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(file) = demo_log {
        let terminal = tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .with_filter(LevelFilter::WARN);
        let to_file = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file));
        let to_file = match args.log_format {
            LogFormat::Human => to_file.with_filter(filter()).boxed(),
            LogFormat::Json => to_file
                .json()
                .flatten_event(true)
                .with_filter(filter())
                .boxed(),
        };
        tracing_subscriber::registry()
            .with(terminal)
            .with(to_file)
            .init();
    } else {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_ansi(ansi)
            .with_writer(std::io::stderr);
        match args.log_format {
            LogFormat::Human => builder.init(),
            LogFormat::Json => builder.json().flatten_event(true).init(),
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli::execute(args.command));
    // After a fatal error, tasks and threads still running must not delay the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", Chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

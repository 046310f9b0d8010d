//! The simulator's error type, in its own module so that the modules which return it
//! do not import the crate root that wires them.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors of the simulator and the traffic generator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulator cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read scenario file {}: {source}", .path.display())]
    ScenarioRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("scenario file {}: {detail}", .path.display())]
    Scenario { path: PathBuf, detail: String },
    #[error("invalid simulator option {option}: {detail}")]
    InvalidOption {
        option: &'static str,
        detail: String,
    },
    #[error("spool directory {}: {source}", .path.display())]
    Spool {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("traffic generator: {0}")]
    Traffic(String),
    #[error("cannot wait for a shutdown signal: {0}")]
    Signal(std::io::Error),
}

//! The emulator's one error type: what can stop it from starting, loading, exporting or saving.

use std::path::PathBuf;

/// Why the emulator cannot start, load, export or save.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("invalid legacy emulator config: {0}")]
    Config(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("state file {} is not a valid snapshot: {reason}", path.display())]
    Snapshot { path: PathBuf, reason: String },
    #[error("seed {file}:{line}: {reason}")]
    Seed { file: String, line: u64, reason: String },
    #[error("cannot set up the webhook client: {0}")]
    Client(String),
}

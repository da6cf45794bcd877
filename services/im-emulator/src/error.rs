//! The crate's one error type: what can stop the emulator from starting, persisting or serving. Application
//! errors of the emulated API are not errors here; they are answers (HTTP 200, `ActionStatus: FAIL`).

use std::path::PathBuf;

/// Why the emulator could not start, save or serve.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is inconsistent (see [`crate::EmulatorConfig::validate`]).
    #[error("invalid emulator configuration: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    /// The state file exists but could not be read.
    #[error("cannot read state file {path}: {source}")]
    StateRead { path: PathBuf, source: std::io::Error },
    /// The state file is not a snapshot this emulator wrote.
    #[error("state file {path} is not a valid snapshot: {source}")]
    StateParse { path: PathBuf, source: serde_json::Error },
    /// The state file could not be written.
    #[error("cannot write state file {path}: {source}")]
    StateWrite { path: PathBuf, source: std::io::Error },
    /// The emulator spawns its callback worker on the current Tokio runtime.
    #[error("the emulator must be created inside a Tokio runtime")]
    NoRuntime,
    /// The HTTP client for callbacks could not be built.
    #[error("cannot build the callback HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

impl Error {
    /// Every emulator error is fatal to the emulator process: there is nothing to retry or dead-letter.
    pub fn is_fatal(&self) -> bool {
        true
    }
}

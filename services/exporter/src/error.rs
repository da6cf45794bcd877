//! The exporter's errors.

use std::path::{Path, PathBuf};

use imbridge_im::ImError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Im(#[from] ImError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("accounts list: {0}")]
    Accounts(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
}

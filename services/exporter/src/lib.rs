//! The exporter: reads an existing Tencent Cloud IM application (the "old app" of a forced upgrade to a new
//! SDKAppID) through its query APIs and writes the export directory `imbridge import` takes.
//!
//! - [`convert`]: IM's answers as export records (the inverse of the importer's requests);
//! - [`run`]: the phases, concurrent within the old app's quotas, written in a deterministic order;
//! - [`checkpoint`]: the checkpoint file in the export directory that makes a rerun after `kill -9` continue
//!   and write identical files;
//! - [`report`]: records written and what the old app could no longer give;
//! - [`progress`]: a bar per phase, or plain lines;
//! - [`config`]: the `[export]` section (`[export.from_im]` is the old app's [`imbridge_im::ImConfig`]).
//!
//! IM has no API that lists an app's accounts, so the accounts come from a list the operator gives (the app's
//! own user table); `account_check` tells which of them the old app has.

pub mod checkpoint;
pub mod config;
pub mod convert;
pub mod error;
pub mod progress;
pub mod report;
pub mod run;

pub use checkpoint::CHECKPOINT_FILE;
pub use config::ExportConfig;
pub use error::Error;
pub use report::ExportReport;
pub use run::{EXPORT_APIS, ExportOptions, export_from_im, read_accounts};

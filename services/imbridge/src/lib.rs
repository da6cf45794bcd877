//! The one binary's configuration as a library, so the end-to-end tests write `imbridge.toml` from the same
//! [`config::AppConfig`] the binary reads (a renamed key is then a compile error there, not a silent default).
//! The binary (`main.rs`) only parses commands and configuration and calls a part's `run`.

pub mod config;

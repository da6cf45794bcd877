//! The crate's integration tests in one binary (one link step), a module per concern; test names read
//! `<module>::<test>`.

mod against_emulator;
mod client_http;

//! The crate's integration tests in one binary (one link step), a module per concern; test names read
//! `<module>::<test>`, helpers in `common`.

mod accounts;
mod auth;
mod c2c;
mod callbacks;
mod client_compat;
mod client_sim;
mod common;
mod conformance_client;
mod faults;
mod groups;
mod persistence;
mod recentcontact;
mod throughput;
mod two_apps;

//! The crate's integration tests in one binary (one link step), a module per concern; test names read
//! `<module>::<test>`.

mod apply_client;
mod doc_example;
mod schemas;

//! The crate's integration tests in one binary (one link step), a module per concern; test names read
//! `<module>::<test>`, helpers in `common`.

mod common;
mod heartbeat;
mod im_callbacks;
mod legacy;
mod old_im_app;
mod spool;

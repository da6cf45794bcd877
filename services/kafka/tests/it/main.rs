//! The crate's integration tests in one binary (one link step), a module per concern; test names read
//! `<module>::<test>`, helpers in `common`.

mod batch;
mod common;
mod dlq;
mod dlq_replay;
mod lag;
mod no_loss;
mod order;
mod partitioner;
mod replay;
mod replay_key;
mod topics;

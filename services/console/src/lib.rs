//! The migration console: one web page that answers "where are we, what is stuck, where is my message?", and
//! the message tracer behind it (also `imbridge trace` on the command line).
//!
//! - [`config`]: [`ConsoleConfig`], the `[console]` section (listen address, watched services, admin token);
//! - [`collect`]: the collector — every refresh it reads Kafka the way `imbridge status` does (groups, lag, DLQ,
//!   parked and importing conversations, the import checkpoint) and scrapes each service's `/metrics` and
//!   `/readyz`, keeping a short history for rates, ETAs, latency windows and the lag charts; a [`Snapshot`] is
//!   what the page shows;
//! - [`trace`]: "where is my message?" — finds an event from the ids a person has, reading only the
//!   conversation's partition when it can, and says where it went (topic, partition, offset, accepted, applied
//!   or dead-lettered and why);
//! - [`page`]: server-rendered HTML (the page, its live panels, a lookup's answer) and the small script;
//! - [`server`]: the HTTP routes, read-only unless `admin_token` is set (actions then need it and a
//!   confirmation);
//! - [`metrics`]: the console's own `/metrics` — DLQ, parked conversations and lag per consumer group as gauges,
//!   updated every round, for the alerts no single service can raise;
//! - [`error`]: the crate's one error type, [`ConsoleError`].
//!
//! Nothing here needs the internet: the page, its script and its charts (inline SVG) are served by the binary.

pub mod collect;
pub mod config;
pub mod error;
pub mod metrics;
pub mod page;
pub mod server;
pub mod trace;

use imbridge_core::topics::{ImportPhase, TopicNames};
use imbridge_im::ImConfig;
use imbridge_kafka::KafkaConfig;

pub use collect::Snapshot;
pub use config::{ConsoleConfig, ServiceEndpoint, ServiceKind};
pub use error::ConsoleError;
pub use server::{Console, ConsoleSettings};

/// The consumer groups the console watches: the group ids of the other sections.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    /// to-im's live consumer group (on the legacy events topic).
    pub to_im: String,
    /// to-legacy's consumer group (on the IM events topic).
    pub to_legacy: String,
    /// The import's consumer group of each import phase.
    pub import: Vec<(ImportPhase, String)>,
}

/// What the console and the tracer read: Kafka, the topics, IM's configured rates (the import's quota-bound
/// lower bound) and the watched groups.
#[derive(Debug, Clone)]
pub struct View {
    pub kafka: KafkaConfig,
    pub topics: TopicNames,
    pub im: ImConfig,
    pub groups: Groups,
}

impl View {
    /// The topic of one import phase.
    pub fn import_topic(&self, which: ImportPhase) -> &str {
        self.topics.name(which.topic())
    }

    /// The consumer group that applies `topic`'s records.
    pub fn group_of(&self, topic: &str) -> Option<String> {
        if topic == self.topics.legacy_events {
            return Some(self.groups.to_im.clone());
        }
        if topic == self.topics.im_events {
            return Some(self.groups.to_legacy.clone());
        }
        self.groups.import.iter().find(|(w, _)| self.import_topic(*w) == topic).map(|(_, g)| g.clone())
    }

    /// (group, topic) pairs in the order the page shows them: the two live directions, then the import phases.
    pub fn groups(&self) -> Vec<(String, String)> {
        let mut g = vec![
            (self.groups.to_im.clone(), self.topics.legacy_events.clone()),
            (self.groups.to_legacy.clone(), self.topics.im_events.clone()),
        ];
        for (w, group) in &self.groups.import {
            g.push((group.clone(), self.import_topic(*w).to_owned()));
        }
        g
    }
}

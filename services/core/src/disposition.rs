//! What a failure means for the pipeline.
//!
//! Every library error enum implements [`Classify`] so the decision "retry, dead-letter or drop" is made once,
//! next to the error, and never re-invented at call sites.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What the consumer does with an event whose apply failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Transient (rate limit, timeout, 5xx, connection): try again after a backoff.
    Retry,
    /// Can never apply (bad parameters, missing account, too long): park it on the dead-letter topic.
    DeadLetter,
    /// Nothing to do and nothing lost (an echo, an event the target already has).
    Drop,
}

/// Implemented by every error that can end an apply.
pub trait Classify {
    fn disposition(&self) -> Disposition;
    /// A short, bounded, machine-readable label (used as a metric label and DLQ header), e.g. `im_70107`.
    fn kind(&self) -> String;
}

/// A failure as the consumer runner sees it: a bounded `kind` label and a human reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: String,
    pub reason: String,
}

impl Failure {
    pub fn new(kind: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { kind: kind.into(), reason: reason.into() }
    }

    /// Builds a failure from any classified error, keeping its label and its message.
    pub fn from_error<E: Classify + fmt::Display>(e: &E) -> Self {
        Self { kind: e.kind(), reason: e.to_string() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.reason)
    }
}

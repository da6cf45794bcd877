//! What one reconciliation pass found and did: a row per kind, the differences themselves, a table for people
//! and JSON for tools.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// What is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    C2cMessages,
    GroupMessages,
    /// A group exists on both sides (or on neither).
    Groups,
    GroupProfile,
    GroupMembers,
    /// A user's account exists.
    Accounts,
    /// A user's profile fields both sides hold (nick, face URL).
    Profiles,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::C2cMessages,
        Kind::GroupMessages,
        Kind::Groups,
        Kind::GroupProfile,
        Kind::GroupMembers,
        Kind::Accounts,
        Kind::Profiles,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::C2cMessages => "c2c_messages",
            Kind::GroupMessages => "group_messages",
            Kind::Groups => "groups",
            Kind::GroupProfile => "group_profile",
            Kind::GroupMembers => "group_members",
            Kind::Accounts => "accounts",
            Kind::Profiles => "profiles",
        }
    }
}

/// What kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Difference {
    MissingInIm,
    MissingInLegacy,
    Different,
    /// The same messages in a different relative order (one per conversation).
    Order,
}

impl Difference {
    pub fn as_str(self) -> &'static str {
        match self {
            Difference::MissingInIm => "missing_in_im",
            Difference::MissingInLegacy => "missing_in_legacy",
            Difference::Different => "different",
            Difference::Order => "order",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Row {
    /// Items compared (messages, groups, members).
    pub checked: u64,
    pub identical: u64,
    pub missing_in_im: u64,
    pub missing_in_legacy: u64,
    pub different: u64,
    /// Conversations whose common messages are in a different order.
    pub out_of_order: u64,
    /// Differences turned into events on the pipeline's topics.
    pub repaired: u64,
}

impl Row {
    pub fn differences(&self) -> u64 {
        self.missing_in_im + self.missing_in_legacy + self.different + self.out_of_order
    }
}

/// One difference, with what was done about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub conversation: String,
    pub kind: Kind,
    pub difference: Difference,
    /// The item: a message's id on the side that has it, a member, a profile field.
    pub item: String,
    /// The event id produced to repair it, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair_event: Option<String>,
    /// Why it was not repaired, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_repaired: Option<String>,
}

/// The whole pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub dry_run: bool,
    /// Window start, Unix ms (absent: everything).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    pub conversations_checked: u64,
    /// Of those, conversations not read in full because their digests on both sides were unchanged since a
    /// check found them identical.
    pub identical_by_digest: u64,
    /// IM REST requests this pass made (retries included).
    pub im_calls: u64,
    /// Legacy read requests this pass made.
    pub legacy_calls: u64,
    pub kinds: BTreeMap<Kind, Row>,
    pub findings: Vec<Finding>,
    /// Conversations that could not be compared, with the reason.
    pub errors: Vec<(String, String)>,
    /// Every conversation compared (read in full or identical by digest), for the service's bookkeeping.
    #[serde(skip)]
    pub checked_keys: Vec<String>,
}

impl Report {
    pub fn row(&mut self, kind: Kind) -> &mut Row {
        self.kinds.entry(kind).or_default()
    }

    /// Every difference of every kind.
    pub fn differences(&self) -> u64 {
        self.kinds.values().map(Row::differences).sum()
    }

    pub fn repaired(&self) -> u64 {
        self.kinds.values().map(|r| r.repaired).sum()
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The per-kind table, for a terminal.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<15} {:>8} {:>9} {:>13} {:>17} {:>9} {:>12} {:>8}",
            "kind",
            "checked",
            "identical",
            "missing_in_im",
            "missing_in_legacy",
            "different",
            "out_of_order",
            "repaired"
        );
        for k in Kind::ALL {
            let r = self.kinds.get(&k).copied().unwrap_or_default();
            let _ = writeln!(
                s,
                "{:<15} {:>8} {:>9} {:>13} {:>17} {:>9} {:>12} {:>8}",
                k.as_str(),
                r.checked,
                r.identical,
                r.missing_in_im,
                r.missing_in_legacy,
                r.different,
                r.out_of_order,
                r.repaired
            );
        }
        let _ = writeln!(
            s,
            "conversations checked: {} (identical by digest: {}), IM calls: {}, legacy reads: {}, errors: {}{}",
            self.conversations_checked,
            self.identical_by_digest,
            self.im_calls,
            self.legacy_calls,
            self.errors.len(),
            if self.dry_run { " (dry run: nothing repaired)" } else { "" }
        );
        s
    }
}

//! The export's final report: records written per kind, and what the old app could no longer give — accounts
//! that do not exist, conversations whose history is past the app's retention, holes in a group's MsgSeq,
//! recalled messages, groups of a type the export cannot carry, messages whose body the format cannot hold.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Examples kept per list (every count stays exact).
const MAX_LISTED: usize = 50;

/// A run of MsgSeqs a group no longer returns (past retention, or deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqHole {
    pub group_id: String,
    pub from_seq: u64,
    pub to_seq: u64,
}

/// A 1:1 conversation the list names whose messages IM no longer returns (all, or the newest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostHistory {
    pub user: String,
    pub peer: String,
    /// Unix seconds of the newest message, as the conversation list gives it.
    pub listed_msg_time: u64,
    /// Unix seconds of the newest message history returned, if any.
    pub newest_returned: Option<i64>,
}

/// A message left out, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub what: String,
    pub reason: String,
}

/// See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExportReport {
    /// Lines written per record file.
    pub written: BTreeMap<String, u64>,
    /// Ids of the accounts list that `account_check` says the old app does not have.
    pub missing_accounts: Vec<String>,
    pub missing_accounts_total: u64,
    /// Conversations listed but without (all of) their history: past the old app's retention.
    pub lost_c2c_history: Vec<LostHistory>,
    pub lost_c2c_history_total: u64,
    /// Group MsgSeqs no longer returned.
    pub group_seq_holes: Vec<SeqHole>,
    /// Runs of missing seqs, and the seqs they hold.
    pub group_seq_holes_total: u64,
    pub group_seq_missing_total: u64,
    /// Recalled group messages (IM keeps only a placeholder).
    pub recalled_group_messages: u64,
    /// Group notices (joins, leaves): IM's own, not imported.
    pub group_notices: u64,
    /// Groups and messages left out, with the reason.
    pub skipped: Vec<Skipped>,
    pub skipped_total: u64,
    /// Wall-clock seconds of all runs of this export together.
    pub seconds: f64,
}

fn push_capped<T>(list: &mut Vec<T>, total: &mut u64, item: T) {
    *total += 1;
    if list.len() < MAX_LISTED {
        list.push(item);
    }
}

impl ExportReport {
    pub fn count_written(&mut self, file: &str, n: u64) {
        if n > 0 {
            *self.written.entry(file.to_owned()).or_default() += n;
        }
    }

    pub fn missing_account(&mut self, id: String) {
        push_capped(&mut self.missing_accounts, &mut self.missing_accounts_total, id);
    }

    pub fn lost_history(&mut self, lost: LostHistory) {
        push_capped(&mut self.lost_c2c_history, &mut self.lost_c2c_history_total, lost);
    }

    pub fn hole(&mut self, hole: SeqHole) {
        self.group_seq_missing_total += hole.to_seq - hole.from_seq + 1;
        push_capped(&mut self.group_seq_holes, &mut self.group_seq_holes_total, hole);
    }

    pub fn skip(&mut self, what: String, reason: String) {
        push_capped(&mut self.skipped, &mut self.skipped_total, Skipped { what, reason });
    }

    /// Whether the old app gave everything it was asked for.
    pub fn is_complete(&self) -> bool {
        self.missing_accounts_total == 0
            && self.lost_c2c_history_total == 0
            && self.group_seq_missing_total == 0
            && self.skipped_total == 0
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{:<16} {:>9}", "file", "records");
        for (file, n) in &self.written {
            let _ = writeln!(s, "{file:<16} {n:>9}");
        }
        let more = |shown: usize, total: u64| {
            if total > shown as u64 { format!(" (first {shown} listed)") } else { String::new() }
        };
        if self.missing_accounts_total > 0 {
            let _ = writeln!(
                s,
                "accounts the old app does not have: {}{}: {}",
                self.missing_accounts_total,
                more(self.missing_accounts.len(), self.missing_accounts_total),
                self.missing_accounts.join(", ")
            );
        }
        if self.lost_c2c_history_total > 0 {
            let _ = writeln!(
                s,
                "1:1 conversations with history past the old app's retention: {}{}",
                self.lost_c2c_history_total,
                more(self.lost_c2c_history.len(), self.lost_c2c_history_total)
            );
            for l in &self.lost_c2c_history {
                let newest = l.newest_returned.map_or("none".to_owned(), |t| t.to_string());
                let _ = writeln!(
                    s,
                    "  {} ↔ {}: newest listed at {}, newest returned {newest}",
                    l.user, l.peer, l.listed_msg_time
                );
            }
        }
        if self.group_seq_missing_total > 0 {
            let _ = writeln!(
                s,
                "group messages no longer returned (holes in MsgSeq): {}{}",
                self.group_seq_missing_total,
                more(self.group_seq_holes.len(), self.group_seq_holes_total)
            );
            for h in &self.group_seq_holes {
                let _ = writeln!(s, "  {}: seq {}..={}", h.group_id, h.from_seq, h.to_seq);
            }
        }
        if self.recalled_group_messages > 0 {
            let _ = writeln!(s, "recalled group messages (not exported): {}", self.recalled_group_messages);
        }
        if self.group_notices > 0 {
            let _ = writeln!(s, "group notices (IM's own, not exported): {}", self.group_notices);
        }
        if self.skipped_total > 0 {
            let _ = writeln!(s, "left out: {}{}", self.skipped_total, more(self.skipped.len(), self.skipped_total));
            for k in &self.skipped {
                let _ = writeln!(s, "  {}: {}", k.what, k.reason);
            }
        }
        let _ = writeln!(
            s,
            "{}",
            if self.is_complete() {
                "export: the old app gave everything asked for"
            } else {
                "export: done, with the gaps above (the old app could not give them)"
            }
        );
        s
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The runs of `1..=top` missing from `present` (sorted ascending).
pub fn holes(present: &[u64], top: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut next = 1u64;
    for &seq in present.iter().chain(std::iter::once(&(top + 1))) {
        if seq > next {
            out.push((next, seq - 1));
        }
        next = next.max(seq + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_are_the_missing_runs() {
        assert_eq!(holes(&[1, 2, 3], 3), vec![]);
        assert_eq!(holes(&[3, 4, 7], 8), vec![(1, 2), (5, 6), (8, 8)]);
        assert_eq!(holes(&[], 2), vec![(1, 2)]);
        assert_eq!(holes(&[], 0), vec![]);
    }

    #[test]
    fn the_text_names_every_gap() {
        let mut r = ExportReport::default();
        r.count_written("accounts", 3);
        r.missing_account("ghost".into());
        r.hole(SeqHole { group_id: "g".into(), from_seq: 1, to_seq: 4 });
        let t = r.to_text();
        assert!(t.contains("ghost") && t.contains("seq 1..=4") && t.contains("gaps"), "{t}");
        assert_eq!(r.group_seq_missing_total, 4);
        assert!(!r.is_complete());
    }
}

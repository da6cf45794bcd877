//! Digest-based skipping: a conversation found identical by a full check is not read in full again while the
//! cheap digests of both sides stay what they were then.
//!
//! | side | digest of a conversation |
//! | --- | --- |
//! | legacy | `count` and `hash` from `POST /v1/read/digests` over all time (any message added, removed or changed moves the hash) |
//! | IM, 1:1 | the latest message time of the conversation in either user's `recentcontact/get_list` |
//! | IM, group | `get_group_info`: `NextMsgSeq`, `MemberNum`, `InfoSeq`, `LastInfoTime`, `LastMsgTime` |
//!
//! Both digests are read anyway (discovery, and the group's profile), so a skipped conversation costs no extra
//! call. Used only for checks over all time (sweeps): a windowed digest would not match a remembered one.
//! The memory is per process; after a restart the first sweep reads everything once. What the legacy digest
//! does not cover — a legacy-side group profile or member change with no message — reaches the pipeline as
//! an event and is checked then (activity checks never skip).

use std::collections::HashMap;
use std::sync::Mutex;

use imbridge_core::ConversationKey;
use imbridge_im::types::group::GroupInfo;

/// What both sides showed when a conversation was last found identical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// Legacy `(count, hash)`; `None` when legacy has no message in it.
    pub legacy: Option<(u64, String)>,
    /// IM's side, as [`im_c2c`] or [`im_group`] render it.
    pub im: String,
}

/// IM's digest of a 1:1 conversation: its latest message time (seconds) in the users' conversation lists.
pub fn im_c2c(latest_msg_time_s: u64) -> String {
    format!("c2c:{latest_msg_time_s}")
}

/// IM's digest of a group, from `get_group_info`.
pub fn im_group(i: &GroupInfo) -> String {
    format!(
        "group:{}:{}:{}:{}:{}",
        i.next_msg_seq.unwrap_or(0),
        i.member_num.unwrap_or(0),
        i.info_seq.unwrap_or(0),
        i.last_info_time.unwrap_or(0),
        i.last_msg_time.unwrap_or(0)
    )
}

/// The digests of the conversations last found identical.
#[derive(Debug, Default)]
pub struct DigestMemory {
    identical: Mutex<HashMap<ConversationKey, Digest>>,
}

impl DigestMemory {
    /// `true` when `key` was found identical with exactly these digests.
    pub fn unchanged(&self, key: &ConversationKey, now: &Digest) -> bool {
        self.identical.lock().unwrap_or_else(|p| p.into_inner()).get(key) == Some(now)
    }

    /// Remembers a full check's result: identical with `digest`, or not (forgotten).
    pub fn record(&self, key: &ConversationKey, digest: Option<Digest>) {
        let mut m = self.identical.lock().unwrap_or_else(|p| p.into_inner());
        match digest {
            Some(d) => {
                m.insert(key.clone(), d);
            }
            None => {
                m.remove(key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.identical.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unchanged_pair_skips() {
        let m = DigestMemory::default();
        let k = ConversationKey::parse("c2c:ann:bob").expect("key");
        let d = Digest { legacy: Some((2, "h".into())), im: im_c2c(10) };
        assert!(!m.unchanged(&k, &d));
        m.record(&k, Some(d.clone()));
        assert!(m.unchanged(&k, &d));
        assert!(!m.unchanged(&k, &Digest { im: im_c2c(11), ..d.clone() }), "IM moved");
        assert!(!m.unchanged(&k, &Digest { legacy: Some((2, "x".into())), ..d.clone() }), "legacy moved");
        m.record(&k, None);
        assert!(!m.unchanged(&k, &d));
    }
}

//! A pass over the import plan before anything is produced: which conversations and groups have history
//! (they get `importing` states and done markers) and how many calls each IM API will take (the quota-bound
//! lower bound of the import's wall time).
//!
//! The lower bound: accounts come first and everything else depends on them, so
//! `calls(multiaccount_import) / quota + max over the other import APIs of calls(api) / quota(api)`; the other
//! chains run in parallel, each API limited only by its own quota, so the slowest API decides the rest.
//! Calls are counted as the handlers make them: 100 accounts per `multiaccount_import`, one `friend_import`
//! per 100 friends of a user, one `import_group_member` per 100 members of a group other than its owner
//! (`import_group` sets the owner), one `import_group_msg` per 7 messages of a group, one call per record for
//! the others (a profile with no fields takes none).

use std::collections::{BTreeMap, HashMap};

use imbridge_core::{ConversationKey, Event, EventKind};
use imbridge_im::Api;
use imbridge_im::types::account::MULTIACCOUNT_IMPORT_MAX;
use imbridge_im::types::group::{IMPORT_GROUP_MEMBER_MAX, IMPORT_GROUP_MSG_MAX};
use imbridge_im::types::sns::FRIEND_IMPORT_MAX;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::plan::ImportPlan;

/// What the pass found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Survey {
    /// History records per 1:1 conversation (messages and read marks).
    pub c2c: BTreeMap<ConversationKey, u64>,
    /// History records per group (the group, members, messages, unread counts).
    pub groups: BTreeMap<ConversationKey, u64>,
    /// Calls per IM API.
    pub calls: CallPlan,
}

/// Calls per IM API an import takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallPlan {
    pub calls: BTreeMap<Api, u64>,
}

/// One API's share of the lower bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiBound {
    pub api: Api,
    pub calls: u64,
    /// The quota the client runs at (calls/s); `None` when unlimited.
    pub rate_per_sec: Option<f64>,
    /// `calls / rate` (0 when unlimited).
    pub secs: f64,
}

/// The quota-bound lower bound of an import's wall time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LowerBound {
    /// `calls(multiaccount_import) / quota`.
    pub accounts_secs: f64,
    /// The slowest of the other APIs, if any is limited.
    pub bottleneck: Option<ApiBound>,
    /// The bound itself.
    pub secs: f64,
    /// Every API's figures.
    pub apis: Vec<ApiBound>,
}

impl CallPlan {
    pub fn get(&self, api: Api) -> u64 {
        self.calls.get(&api).copied().unwrap_or(0)
    }

    fn add(&mut self, api: Api, n: u64) {
        *self.calls.entry(api).or_default() += n;
    }

    pub fn total(&self) -> u64 {
        self.calls.values().sum()
    }

    /// The lower bound at the given per-API rates (`None` = unlimited).
    pub fn lower_bound(&self, rate: impl Fn(Api) -> Option<f64>) -> LowerBound {
        let apis: Vec<ApiBound> = self
            .calls
            .iter()
            .map(|(api, calls)| {
                let r = rate(*api).filter(|r| *r > 0.0);
                ApiBound { api: *api, calls: *calls, rate_per_sec: r, secs: r.map_or(0.0, |r| *calls as f64 / r) }
            })
            .collect();
        let accounts_secs = apis.iter().find(|b| b.api == Api::MultiAccountImport).map_or(0.0, |b| b.secs);
        let bottleneck = apis
            .iter()
            .filter(|b| b.api != Api::MultiAccountImport && b.secs > 0.0)
            .max_by(|a, b| a.secs.total_cmp(&b.secs))
            .cloned();
        let secs = accounts_secs + bottleneck.as_ref().map_or(0.0, |b| b.secs);
        LowerBound { accounts_secs, bottleneck, secs, apis }
    }
}

fn per(n: u64, max: usize) -> u64 {
    n.div_ceil(max as u64)
}

/// Reads the plan's users, c2c and groups streams once (blocking file I/O: call it off the async workers).
pub fn survey(plan: &ImportPlan) -> Result<Survey, Error> {
    let mut s = Survey::default();
    let accounts = plan.counts().get(&EventKind::ImportAccount).copied().unwrap_or(0);
    s.calls.add(Api::MultiAccountImport, per(accounts, MULTIACCOUNT_IMPORT_MAX));

    let mut friends: HashMap<String, u64> = HashMap::new();
    for env in plan.users() {
        match env?.event {
            Event::ImportProfile(p) if !crate::apply::users::profile_items(&p).is_empty() => {
                s.calls.add(Api::PortraitSet, 1);
            }
            Event::ImportFriendship(f) => *friends.entry(f.user_id.into_string()).or_default() += 1,
            _ => {}
        }
    }
    s.calls.add(Api::FriendImport, friends.values().map(|n| per(*n, FRIEND_IMPORT_MAX)).sum());

    for env in plan.c2c() {
        let env = env?;
        match env.event {
            Event::ImportC2cMessage(_) => s.calls.add(Api::ImportMsg, 1),
            Event::ImportC2cRead(_) => s.calls.add(Api::AdminSetMsgRead, 1),
            _ => {}
        }
        *s.c2c.entry(env.conversation).or_default() += 1;
    }

    let mut owners: HashMap<ConversationKey, String> = HashMap::new();
    let mut members: HashMap<ConversationKey, u64> = HashMap::new();
    let mut messages: HashMap<ConversationKey, u64> = HashMap::new();
    for env in plan.groups() {
        let env = env?;
        match &env.event {
            Event::ImportGroup(g) => {
                s.calls.add(Api::ImportGroup, 1);
                if let Some(o) = &g.profile.owner {
                    owners.insert(env.conversation.clone(), o.as_str().to_owned());
                }
            }
            Event::ImportGroupMember(m)
                if owners.get(&env.conversation).map(String::as_str) != Some(m.user_id.as_str()) =>
            {
                *members.entry(env.conversation.clone()).or_default() += 1;
            }
            Event::ImportGroupMessage(_) => *messages.entry(env.conversation.clone()).or_default() += 1,
            Event::ImportMemberUnread(_) => s.calls.add(Api::SetUnreadMsgNum, 1),
            _ => {}
        }
        *s.groups.entry(env.conversation).or_default() += 1;
    }
    s.calls.add(Api::ImportGroupMember, members.values().map(|n| per(*n, IMPORT_GROUP_MEMBER_MAX)).sum());
    s.calls.add(Api::ImportGroupMsg, messages.values().map(|n| per(*n, IMPORT_GROUP_MSG_MAX)).sum());
    s.calls.calls.retain(|_, n| *n > 0);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_bound_is_accounts_plus_the_slowest_other_api() {
        let plan = CallPlan {
            calls: BTreeMap::from([
                (Api::MultiAccountImport, 2),
                (Api::ImportMsg, 20_000),
                (Api::ImportGroupMsg, 715),
                (Api::FriendImport, 180),
            ]),
        };
        let b = plan.lower_bound(|a| Some(a.documented_rate_per_sec()));
        assert!((b.accounts_secs - 0.02).abs() < 1e-9);
        assert_eq!(b.bottleneck.as_ref().map(|x| x.api), Some(Api::ImportMsg));
        assert!((b.secs - 100.02).abs() < 1e-9, "{}", b.secs);
        let unlimited = plan.lower_bound(|_| None);
        assert_eq!(unlimited.secs, 0.0);
        assert!(unlimited.bottleneck.is_none());
    }
}

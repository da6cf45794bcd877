//! `imbridge.import.users`: profiles with `portrait_set`, friend lists with `friend_import`.
//!
//! Both are keyed by the user (`user:<id>`), and the plan emits a user's profile before their friendships.
//! A user's friendships are consecutive records of one key, so lane batching hands them over together and
//! they go out in one `friend_import` call of up to 100 (IM asks for one batched call per user: concurrent
//! writes to one friend list conflict with 30008). Per-friend failures dead-letter only that friendship.
//! IM documents no "already a friend" code for `friend_import`: importing an existing friend overwrites its
//! fields and answers 0, so a re-run is simply imported again.

use std::sync::Arc;

use imbridge_core::event::{AllowType, Gender, ImportFriendship, ImportProfile};
use imbridge_core::{Event, EventKind};
use imbridge_im::Api;
use imbridge_im::types::account::{PortraitSetReq, ProfileItem, tags};
use imbridge_im::types::sns::{FRIEND_IMPORT_MAX, FriendImportItem, FriendImportReq};
use imbridge_kafka::{BatchOutcome, Handler, Outcome, Record};

use super::settled::{SettledCache, batch_outcome};
use super::{ApplyContext, RecordOutcome, item_failure, outcome_of, single_outcome, unexpected};

/// Applies `import.profile` and `import.friendship` records.
#[derive(Debug)]
pub struct UsersHandler {
    ctx: Arc<ApplyContext>,
    settled: SettledCache,
}

impl UsersHandler {
    pub fn new(ctx: Arc<ApplyContext>) -> Self {
        Self { ctx, settled: SettledCache::default() }
    }

    async fn profile(&self, p: ImportProfile) -> Outcome {
        let items = profile_items(&p);
        if items.is_empty() {
            // Nothing beyond the account itself: IM refuses an empty ProfileItem, and there is nothing to set.
            self.ctx.stats.record(EventKind::ImportProfile, RecordOutcome::Imported);
            return Outcome::Done;
        }
        let req = PortraitSetReq { from_account: p.user_id.into_string(), profile_item: items };
        match self.ctx.im.portrait_set(&req).await {
            Ok(_) => {
                self.ctx.stats.record(EventKind::ImportProfile, RecordOutcome::Imported);
                Outcome::Done
            }
            Err(e) => {
                let o = outcome_of(&e);
                if matches!(o, Outcome::DeadLetter(_)) {
                    self.ctx.stats.record(EventKind::ImportProfile, RecordOutcome::Failed);
                }
                o
            }
        }
    }

    async fn friends(&self, records: &[&Record], friendships: Vec<ImportFriendship>) -> BatchOutcome {
        let Some(from) = friendships.first().map(|f| f.user_id.clone()) else {
            return BatchOutcome { done: 0, next: None };
        };
        let req = FriendImportReq {
            from_account: from.into_string(),
            add_friend_item: friendships.iter().map(friend_item).collect(),
        };
        let resp = match self.ctx.im.friend_import(&req).await {
            Ok(r) => r,
            Err(e) => {
                let o = outcome_of(&e);
                if matches!(o, Outcome::Retry(_)) {
                    return BatchOutcome { done: 0, next: Some(o) };
                }
                // The whole call failed for good (a missing From_Account, a malformed request): the reason
                // holds for every friendship of the call, so each is dead-lettered with it.
                self.ctx.stats.add(EventKind::ImportFriendship, RecordOutcome::Failed, records.len() as u64);
                return batch_outcome(&self.settled, records, vec![o; records.len()]);
            }
        };
        let verdicts: Vec<Outcome> = friendships
            .iter()
            .map(|f| {
                let result = resp.result_item.iter().find(|i| i.to_account == f.friend_id.as_str());
                match result {
                    Some(i) if i.result_code != 0 => {
                        self.ctx.stats.record(EventKind::ImportFriendship, RecordOutcome::Failed);
                        item_failure(Api::FriendImport, i.result_code, f.friend_id.as_str(), &i.result_info)
                    }
                    // Listed as failed without a result item: a failure without a code.
                    None if resp.fail_account.iter().any(|a| a == f.friend_id.as_str()) => {
                        self.ctx.stats.record(EventKind::ImportFriendship, RecordOutcome::Failed);
                        item_failure(Api::FriendImport, 0, f.friend_id.as_str(), "listed in Fail_Account")
                    }
                    _ => {
                        self.ctx.stats.record(EventKind::ImportFriendship, RecordOutcome::Imported);
                        Outcome::Done
                    }
                }
            })
            .collect();
        batch_outcome(&self.settled, records, verdicts)
    }
}

impl Handler for UsersHandler {
    async fn handle(&self, record: &Record) -> Outcome {
        single_outcome(self.handle_batch(&[record]).await)
    }

    fn batch_limit(&self) -> usize {
        FRIEND_IMPORT_MAX
    }

    async fn handle_batch(&self, records: &[&Record]) -> BatchOutcome {
        let (first, env) = match self.settled.first_unsettled(records) {
            Ok(first) => first,
            Err(out) => return out,
        };
        match env.event {
            Event::ImportProfile(p) => BatchOutcome { done: 0, next: Some(self.profile(p).await) },
            Event::ImportFriendship(f) => {
                // The leading run of friendships of this user (a malformed record ends the run; it is
                // dead-lettered on its own when it comes first).
                let mut friendships = vec![f];
                for r in &records[1..] {
                    match r.envelope().map(|e| e.event) {
                        Ok(Event::ImportFriendship(g)) if g.user_id == friendships[0].user_id => friendships.push(g),
                        _ => break,
                    }
                }
                let n = friendships.len();
                self.friends(&records[..n], friendships).await
            }
            other => BatchOutcome { done: 0, next: Some(unexpected(other.kind().as_str(), &first.topic)) },
        }
    }

    fn partitions_revoked(&self, partitions: &[(String, i32)]) {
        self.settled.drop_partitions(partitions);
    }
}

/// The profile fields the export sets, as IM profile items (reference §4.3). Unset fields are not sent, so
/// IM keeps its defaults for them.
pub fn profile_items(p: &ImportProfile) -> Vec<ProfileItem> {
    let mut items = Vec::new();
    if let Some(v) = &p.nick {
        items.push(ProfileItem::string(tags::NICK, v));
    }
    if let Some(g) = p.gender {
        items.push(ProfileItem::string(tags::GENDER, gender_value(g)));
    }
    if let Some(b) = p.birthday {
        items.push(ProfileItem::int(tags::BIRTHDAY, u64::from(b)));
    }
    if let Some(v) = &p.location {
        items.push(ProfileItem::string(tags::LOCATION, v));
    }
    if let Some(v) = &p.signature {
        items.push(ProfileItem::string(tags::SELF_SIGNATURE, v));
    }
    if let Some(a) = p.allow_type {
        items.push(ProfileItem::string(tags::ALLOW_TYPE, allow_type_value(a)));
    }
    if let Some(l) = p.language {
        items.push(ProfileItem::int(tags::LANGUAGE, u64::from(l)));
    }
    if let Some(v) = &p.avatar {
        items.push(ProfileItem::string(tags::IMAGE, v));
    }
    if let Some(l) = p.level {
        items.push(ProfileItem::int(tags::LEVEL, u64::from(l)));
    }
    if let Some(r) = p.role {
        items.push(ProfileItem::int(tags::ROLE, u64::from(r)));
    }
    for (name, value) in p.custom.iter().flatten() {
        items.push(ProfileItem::string(format!("{}{name}", tags::CUSTOM_PREFIX), value));
    }
    items
}

/// IM's `Tag_Profile_IM_Gender` value.
pub fn gender_value(g: Gender) -> &'static str {
    match g {
        Gender::Male => "Gender_Type_Male",
        Gender::Female => "Gender_Type_Female",
        Gender::Unknown => "Gender_Type_Unknown",
    }
}

/// IM's `Tag_Profile_IM_AllowType` value.
pub fn allow_type_value(a: AllowType) -> &'static str {
    match a {
        AllowType::NeedConfirm => "AllowType_Type_NeedConfirm",
        AllowType::AllowAny => "AllowType_Type_AllowAny",
        AllowType::DenyAny => "AllowType_Type_DenyAny",
    }
}

/// IM's `AddSource` for an export keyword.
pub fn add_source_value(keyword: &str) -> String {
    format!("AddSource_Type_{keyword}")
}

/// One friendship as a `friend_import` item (times in Unix seconds).
pub fn friend_item(f: &ImportFriendship) -> FriendImportItem {
    FriendImportItem {
        to_account: f.friend_id.as_str().to_owned(),
        add_source: add_source_value(&f.add_source),
        remark: f.remark.clone(),
        remark_time: None,
        group_name: f.groups.clone().filter(|g| !g.is_empty()),
        add_wording: f.add_wording.clone(),
        add_time: f.added_at.map(|t| t.as_secs()),
        custom_item: None,
    }
}

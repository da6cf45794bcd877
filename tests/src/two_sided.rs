//! Two real emulators on 127.0.0.1 holding the same chats, and helpers to write a message on both sides (as the
//! pipeline would have copied it) or on one side only (as if a callback was dropped or an outbox wiped). The
//! reconcile crate's tests compare them without Kafka; the end-to-end scenario repairs them through the pipeline.

use imbridge_core::{EventId, UserId};
use imbridge_im::types::MemberAccount;
use imbridge_im::types::account::MultiAccountImportReq;
use imbridge_im::types::c2c::SendMsgReq;
use imbridge_im::types::group::{AddGroupMemberReq, CreateGroupMember, CreateGroupReq, GroupSpec, SendGroupMsgReq};
use imbridge_im::{ImClient, MsgElement};
use imbridge_im_emulator::{EmulatorConfig, RunningEmulator};
use imbridge_legacy::{ApplyClient, ApplyConfig, ContractEvent, ReadClient, ReadConfig, SigningSecret};
use imbridge_legacy_emulator::RunningLegacyEmulator;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::APPLY_SECRET;

/// What to-im writes into `CloudCustomData` of a message copied from legacy.
pub const MARKER: &str = r#"{"imbridge_origin":"legacy"}"#;

#[derive(Debug)]
pub struct World {
    pub im: RunningEmulator,
    pub legacy: RunningLegacyEmulator,
    pub client: ImClient,
    pub http: reqwest::Client,
    pub apply: ApplyClient,
    /// MsgSeq of every 1:1 send: IM orders a second's messages by MsgSeq, so it grows with the test's order.
    pub seq: std::sync::atomic::AtomicU32,
}

fn text(t: &str) -> Value {
    json!([{ "type": "text", "text": t }])
}

impl World {
    pub async fn start() -> World {
        let im = crate::spawn_im_with(EmulatorConfig { rate_limits_enabled: false, ..EmulatorConfig::default() }).await;
        let legacy = crate::spawn_legacy().await;
        let client = crate::im_client(&im);
        let apply = ApplyClient::new(
            ApplyConfig::new(legacy.apply_url(), SigningSecret::new(APPLY_SECRET)),
            &prometheus::Registry::new(),
        )
        .expect("apply client");
        World { im, legacy, client, http: reqwest::Client::new(), apply, seq: std::sync::atomic::AtomicU32::new(1) }
    }

    /// ann, bob, cy and dee on both sides, the group `crew` (ann, bob), and in step a message each way in
    /// `c2c:ann:bob` and in the group.
    pub async fn in_step(&self) {
        self.users(&["ann", "bob", "cy", "dee"]).await;
        self.group("crew", "ann", &["bob"]).await;
        self.legacy_c2c("ann", "bob", "hello", true).await;
        self.im_c2c("bob", "ann", "hi back", true).await;
        self.legacy_group_msg("crew", "ann", "team", true).await;
        self.im_group_msg("crew", "bob", "ok", true).await;
    }

    pub fn read_client(&self) -> ReadClient {
        ReadClient::new(ReadConfig::new(self.legacy.url(), SigningSecret::new(APPLY_SECRET))).expect("read client")
    }

    pub async fn legacy_post(&self, path: &str, body: Value) -> Value {
        crate::legacy_api(&self.legacy, path, body).await
    }

    pub async fn users(&self, ids: &[&str]) {
        for u in ids {
            self.legacy_post("/api/users", json!({ "user_id": u })).await;
        }
        self.client
            .multiaccount_import(&MultiAccountImportReq {
                accounts: Some(ids.iter().map(|s| (*s).to_owned()).collect()),
                account_list: None,
            })
            .await
            .expect("accounts");
    }

    /// A group on both sides, owner first.
    pub async fn group(&self, id: &str, owner: &str, members: &[&str]) {
        self.legacy_post("/api/groups", json!({"group_id": id, "name": id, "owner": owner, "members": members})).await;
        self.client
            .create_group(&CreateGroupReq {
                group: GroupSpec {
                    group_type: "Public".into(),
                    name: id.into(),
                    owner_account: Some(owner.into()),
                    group_id: Some(id.into()),
                    ..Default::default()
                },
                member_list: Some(
                    members
                        .iter()
                        .map(|m| CreateGroupMember { member_account: (*m).into(), ..Default::default() })
                        .collect(),
                ),
            })
            .await
            .expect("create group");
    }

    /// A member added on IM only.
    pub async fn im_only_member(&self, group: &str, user: &str) {
        self.client
            .add_group_member(&AddGroupMemberReq {
                group_id: group.into(),
                member_list: vec![MemberAccount::new(user)],
                ..Default::default()
            })
            .await
            .expect("add member");
    }

    /// A 1:1 message written on legacy; with `copy`, also on IM exactly as to-im would have sent it.
    pub async fn legacy_c2c(&self, from: &str, to: &str, t: &str, copy: bool) -> String {
        let v = self.legacy_post("/api/messages", json!({"from": from, "to": to, "body": text(t)})).await;
        let id = v["id"].as_str().expect("id").to_owned();
        if copy {
            self.client
                .sendmsg(&SendMsgReq {
                    from_account: Some(from.into()),
                    to_account: to.into(),
                    msg_seq: Some(self.next_seq()),
                    msg_random: EventId::legacy(&id).stable_u32(),
                    msg_body: vec![MsgElement::text(t)],
                    cloud_custom_data: Some(MARKER.into()),
                    ..Default::default()
                })
                .await
                .expect("copy to im");
        }
        id
    }

    /// A 1:1 message written on IM; with `copy`, also applied on legacy as to-legacy would have.
    pub async fn im_c2c(&self, from: &str, to: &str, t: &str, copy: bool) -> String {
        let sent = self
            .client
            .sendmsg(&SendMsgReq {
                from_account: Some(from.into()),
                to_account: to.into(),
                msg_seq: Some(self.next_seq()),
                msg_random: rand::random(),
                msg_body: vec![MsgElement::text(t)],
                ..Default::default()
            })
            .await
            .expect("send on im");
        let id = EventId::im_c2c(&UserId::new_unchecked(from), &sent.msg_key).to_string();
        if copy {
            self.apply_one(json!({"id": id, "type": "c2c.message", "time": sent.msg_time * 1000, "origin": "im",
                "from": from, "to": to, "body": text(t)}))
                .await;
        }
        id
    }

    pub async fn legacy_group_msg(&self, group: &str, from: &str, t: &str, copy: bool) -> String {
        let v =
            self.legacy_post(&format!("/api/groups/{group}/messages"), json!({"from": from, "body": text(t)})).await;
        let id = v["id"].as_str().expect("id").to_owned();
        if copy {
            self.client
                .send_group_msg(&SendGroupMsgReq {
                    group_id: group.into(),
                    random: EventId::legacy(&id).stable_u32(),
                    msg_body: vec![MsgElement::text(t)],
                    from_account: Some(from.into()),
                    cloud_custom_data: Some(MARKER.into()),
                    ..Default::default()
                })
                .await
                .expect("copy to im");
        }
        id
    }

    pub async fn im_group_msg(&self, group: &str, from: &str, t: &str, copy: bool) -> u64 {
        let sent = self
            .client
            .send_group_msg(&SendGroupMsgReq {
                group_id: group.into(),
                random: rand::random(),
                msg_body: vec![MsgElement::text(t)],
                from_account: Some(from.into()),
                ..Default::default()
            })
            .await
            .expect("send on im");
        if copy {
            let id = format!("im:gmsg:{group}:{}", sent.msg_seq);
            self.apply_one(json!({"id": id, "type": "group.message", "time": sent.msg_time * 1000, "origin": "im",
                "group_id": group, "from": from, "body": text(t)}))
                .await;
        }
        sent.msg_seq
    }

    fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    async fn apply_one(&self, v: Value) {
        let ev = ContractEvent::from_value(&v).expect("valid event");
        self.apply.apply(&[ev], &CancellationToken::new()).await.expect("apply");
    }
}

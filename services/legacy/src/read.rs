//! The contract's signed read endpoints: what reconciliation asks a legacy system to compare it with IM.
//!
//! Both are `POST` with a JSON body, signed exactly like an apply request (the body is what is signed, which is
//! why they are not `GET`s with query strings):
//!
//! - [`DIGESTS_PATH`]: per conversation with a message in a time window, the message count and a hash of
//!   `(id, time, sender, body)` in order — cheap to compare with the last sweep and with IM's conversation list;
//! - [`CONVERSATION_PATH`]: one conversation's messages in a window, and for a group its state (profile,
//!   members) — read only where a digest says something differs.
//!
//! [`ReadClient`] calls them; the reference emulator serves them. The digest hash is defined by
//! [`MessageDigest`], so both sides compute the same bytes.

use std::time::Duration;

use imbridge_core::event::{GroupType, MemberRole};
use imbridge_core::export::GroupProfile;
use imbridge_core::{ConversationKey, Element, GroupId, TimestampMs, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::contract::Origin;
use crate::signature::{self, SigningSecret};

/// Digests of every conversation with a message in a window.
pub const DIGESTS_PATH: &str = "/v1/read/digests";
/// The accounts and profiles of the users asked for.
pub const ACCOUNTS_PATH: &str = "/v1/read/accounts";
/// Most users one accounts request may name.
pub const MAX_READ_ACCOUNTS: usize = 1_000;
/// One conversation's messages (and group state) in a window.
pub const CONVERSATION_PATH: &str = "/v1/read/conversation";
/// Most messages one conversation read returns; `truncated` says when more were in the window.
pub const MAX_READ_MESSAGES: usize = 10_000;

/// A half-open time window `[since, until)` in Unix milliseconds; an absent bound is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<TimestampMs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<TimestampMs>,
}

impl Window {
    pub fn since(since: Option<TimestampMs>) -> Self {
        Self { since, until: None }
    }

    pub fn contains(&self, t: TimestampMs) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

/// `POST /v1/read/digests` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<TimestampMs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<TimestampMs>,
}

impl DigestsRequest {
    pub fn window(&self) -> Window {
        Window { since: self.since, until: self.until }
    }
}

/// One conversation's digest over a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationDigest {
    pub conversation: ConversationKey,
    /// Messages in the window.
    pub count: u64,
    /// [`MessageDigest`] of those messages, in order (lowercase hex SHA-256).
    pub hash: String,
    /// Time of the latest message in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_time: Option<TimestampMs>,
}

/// `POST /v1/read/digests` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestsAnswer {
    pub conversations: Vec<ConversationDigest>,
}

/// `POST /v1/read/conversation` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationRequest {
    /// `c2c:<a>:<b>` or `group:<id>`.
    pub conversation: ConversationKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<TimestampMs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<TimestampMs>,
}

impl ConversationRequest {
    pub fn window(&self) -> Window {
        Window { since: self.since, until: self.until }
    }
}

/// A message as the legacy system stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// The id it has on the legacy side: its own id, or `im:…` for what imbridge applied.
    pub id: String,
    pub time: TimestampMs,
    pub from: UserId,
    /// The peer, for a 1:1 message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<UserId>,
    pub body: Vec<Element>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// `POST /v1/read/accounts` body: the users to look up (1 to [`MAX_READ_ACCOUNTS`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsRequest {
    pub user_ids: Vec<UserId>,
}

/// One account as the legacy system holds it: the profile fields IM also has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    pub user_id: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
}

/// `POST /v1/read/accounts` answer: the users asked for that exist, sorted by user id (an unknown one is left
/// out, not an error).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsAnswer {
    pub accounts: Vec<AccountState>,
}

/// A group member and its role, with the evidence reconciliation decides a member on one side only from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMemberState {
    pub user_id: UserId,
    pub role: MemberRole,
    /// When this membership began (the joining event's time). Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<TimestampMs>,
    /// Who made the membership: `im` when imbridge applied it (copied from IM), absent when legacy's own users
    /// did. Optional; without it a member IM lacks is reported, not repaired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// A former member: the last time they left the group, and who removed them. Optional in the answer; with it,
/// reconciliation can tell "left on legacy, the leave never reached IM" from "joined on IM, the join never
/// reached legacy".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartedMember {
    pub user_id: UserId,
    pub left_at: TimestampMs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// A group's profile and members as the legacy system holds them now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    pub group_id: GroupId,
    pub group_type: GroupType,
    #[serde(flatten)]
    pub profile: GroupProfile,
    /// When the profile (name, introduction, notification, face URL) last changed. Optional: with it,
    /// reconciliation repairs a profile difference from the side that changed last; without, it reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_updated_at: Option<TimestampMs>,
    /// Sorted by user id.
    pub members: Vec<GroupMemberState>,
    /// Who created the group (`im`: imbridge applied it). Optional, as on members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// Users who were members and are not now, sorted by user id, each with their last leave. Optional.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub departed: Vec<DepartedMember>,
}

/// `POST /v1/read/conversation` answer. An unknown conversation is an empty answer, not a 404: "legacy has
/// nothing" is exactly what reconciliation needs to learn. Messages are in the conversation's order, which the
/// contract fixes: as stored, each placed by its time among its own system's messages (docs/legacy-contract.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationAnswer {
    pub conversation: ConversationKey,
    /// In the conversation's order, at most [`MAX_READ_MESSAGES`].
    pub messages: Vec<StoredMessage>,
    /// More messages were in the window than returned (ask again with `since` after the last one).
    #[serde(default)]
    pub truncated: bool,
    /// For a group that exists: its state now (not as of the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupState>,
    /// For a group that no longer exists because it was dismissed: when. Optional; with it, a group IM still
    /// has is dismissed there instead of being created on legacy again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dismissed_at: Option<TimestampMs>,
}

/// The digest hash: SHA-256 over, per message in order, `<id>\n<time ms>\n<from>\n<body as compact JSON>\n`,
/// where the body JSON is the contract's element array with fields in the order the contract lists them and
/// absent optional fields left out.
#[derive(Debug, Clone, Default)]
pub struct MessageDigest {
    hasher: Sha256,
    count: u64,
    last_time: Option<TimestampMs>,
}

impl MessageDigest {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, id: &str, time: TimestampMs, from: &UserId, body: &[Element]) {
        // Serializing plain data with string keys cannot fail.
        let body = serde_json::to_string(body).unwrap_or_default();
        self.hasher.update(format!("{id}\n{}\n{from}\n{body}\n", time.0).as_bytes());
        self.count += 1;
        self.last_time = Some(self.last_time.map_or(time, |t| t.max(time)));
    }

    pub fn finish(self, conversation: ConversationKey) -> ConversationDigest {
        ConversationDigest {
            conversation,
            count: self.count,
            hash: hex::encode(self.hasher.finalize()),
            last_time: self.last_time,
        }
    }
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("legacy answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("legacy did not answer within {0:?}")]
    Timeout(Duration),
    #[error("http error talking to legacy: {0}")]
    Transport(String),
    #[error("legacy answer is not the contract's shape: {0}")]
    Decode(String),
    #[error("cannot set up the legacy read client: {0}")]
    Setup(String),
}

impl ReadError {
    /// A bounded label for metrics and reports.
    pub fn kind(&self) -> String {
        match self {
            ReadError::Status { status, .. } => format!("legacy_http_{status}"),
            ReadError::Timeout(_) => "legacy_timeout".into(),
            ReadError::Transport(_) => "legacy_transport".into(),
            ReadError::Decode(_) => "legacy_decode".into(),
            ReadError::Setup(_) => "legacy_setup".into(),
        }
    }
}

/// Where and how imbridge reads from a legacy system.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadConfig {
    /// Base URL of the legacy system's contract endpoints, e.g. `http://legacy.internal:8080` (the read paths
    /// `/v1/read/…` are appended).
    pub base_url: String,
    /// Shared secret that signs every read request.
    pub secret: SigningSecret,
    /// Whole-request timeout, in milliseconds.
    #[serde(default = "default_read_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_read_timeout_ms() -> u64 {
    30_000
}

impl ReadConfig {
    pub fn new(base_url: impl Into<String>, secret: SigningSecret) -> Self {
        Self { base_url: base_url.into(), secret, timeout_ms: default_read_timeout_ms() }
    }
}

/// Calls the read endpoints. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReadClient {
    http: reqwest::Client,
    config: ReadConfig,
}

impl ReadClient {
    pub fn new(config: ReadConfig) -> Result<Self, ReadError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ReadError::Setup(e.to_string()))?;
        Ok(Self { http, config })
    }

    /// Digests of every conversation with a message in `window`.
    pub async fn digests(&self, window: Window) -> Result<DigestsAnswer, ReadError> {
        self.post(DIGESTS_PATH, &DigestsRequest { since: window.since, until: window.until }).await
    }

    /// One conversation's messages in `window`, and its group state.
    pub async fn conversation(
        &self,
        conversation: &ConversationKey,
        window: Window,
    ) -> Result<ConversationAnswer, ReadError> {
        self.post(
            CONVERSATION_PATH,
            &ConversationRequest { conversation: conversation.clone(), since: window.since, until: window.until },
        )
        .await
    }

    /// The accounts and profiles of `users` (any number: asked in chunks of [`MAX_READ_ACCOUNTS`]).
    pub async fn accounts(&self, users: &[UserId]) -> Result<Vec<AccountState>, ReadError> {
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(MAX_READ_ACCOUNTS) {
            let a: AccountsAnswer = self.post(ACCOUNTS_PATH, &AccountsRequest { user_ids: chunk.to_vec() }).await?;
            out.extend(a.accounts);
        }
        Ok(out)
    }

    async fn post<Q: Serialize, A: serde::de::DeserializeOwned>(&self, path: &str, req: &Q) -> Result<A, ReadError> {
        let body = serde_json::to_vec(req).map_err(|e| ReadError::Setup(e.to_string()))?;
        let url = format!("{}{path}", self.config.base_url.trim_end_matches('/'));
        let mut rb = self.http.post(url).header(http::header::CONTENT_TYPE, "application/json");
        for (name, value) in signature::signature_headers(&self.config.secret, signature::now_secs(), &body) {
            rb = rb.header(name, value);
        }
        let resp = rb.body(body).send().await.map_err(|e| {
            if e.is_timeout() {
                ReadError::Timeout(Duration::from_millis(self.config.timeout_ms))
            } else {
                ReadError::Transport(e.to_string())
            }
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| ReadError::Transport(e.to_string()))?;
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&bytes);
            return Err(ReadError::Status { status, body: text.chars().take(512).collect() });
        }
        serde_json::from_slice(&bytes).map_err(|e| ReadError::Decode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_order_sensitive_and_stable() {
        let (a, b) = (UserId::new_unchecked("ann"), UserId::new_unchecked("bob"));
        let body = |t: &str| vec![Element::Text { text: t.into() }];
        let key = ConversationKey::c2c(&a, &b);
        let mut d1 = MessageDigest::new();
        d1.add("m-1", TimestampMs(1), &a, &body("hi"));
        d1.add("m-2", TimestampMs(2), &b, &body("yo"));
        let mut d2 = MessageDigest::new();
        d2.add("m-2", TimestampMs(2), &b, &body("yo"));
        d2.add("m-1", TimestampMs(1), &a, &body("hi"));
        let (d1, d2) = (d1.finish(key.clone()), d2.finish(key.clone()));
        assert_eq!((d1.count, d1.last_time), (2, Some(TimestampMs(2))));
        assert_ne!(d1.hash, d2.hash, "order is part of the digest");
        // The definition, spelled out: a third party computing it by hand gets the same bytes.
        let manual = hex::encode(Sha256::digest(
            "m-1\n1\nann\n[{\"type\":\"text\",\"text\":\"hi\"}]\nm-2\n2\nbob\n[{\"type\":\"text\",\"text\":\"yo\"}]\n",
        ));
        assert_eq!(d1.hash, manual);
        assert_eq!(MessageDigest::new().finish(key).hash, hex::encode(Sha256::digest(b"")));
    }

    #[test]
    fn window_is_half_open() {
        let w = Window { since: Some(TimestampMs(10)), until: Some(TimestampMs(20)) };
        assert!(!w.contains(TimestampMs(9)));
        assert!(w.contains(TimestampMs(10)));
        assert!(!w.contains(TimestampMs(20)));
        assert!(Window::default().contains(TimestampMs(i64::MIN)));
    }
}

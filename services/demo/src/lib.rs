//! Demo tools for a running coexistence setup: the two emulators (`imbridge emulate im`, `imbridge emulate
//! legacy`), ingest, to-im and to-legacy on one Kafka — as `scripts/demo.sh` starts them. The old app is the
//! legacy emulator, or (`scripts/demo.sh --im-to-im`, `[old_side] kind = "im"`) a second IM emulator: its
//! users then act through that emulator's client simulation and it is read through IM's REST APIs.
//!
//! - [`traffic::run`] (`imbridge demo traffic`): users of the old app (the legacy emulator's user API) and of the
//!   new app (the IM emulator's client simulation) chat in 1:1 conversations and groups, create, rename, join,
//!   leave and dismiss groups, in rounds.
//! - [`check::run`] (`imbridge demo check`): waits until the pipeline is quiet, reads the services' metrics and
//!   compares the conversations the traffic touched on both sides; PASS or FAIL.
//!
//! "The same order" on two systems without a shared clock is only defined when a conversation's operations do
//! not race each other across systems: people take turns. So traffic runs in rounds; in each round every
//! conversation is driven from one side only (both apps are busy, in different conversations), and the next
//! round starts once everything of the previous one has been applied on the other side, in a later second (IM
//! orders 1:1 messages by second, then MsgSeq, and a native client's MsgSeq and imbridge's are not comparable).

pub mod check;
pub mod prom;
pub mod traffic;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use imbridge_core::Element;
use imbridge_core::topics::TopicNames;
use imbridge_im::config::RateSetting;
use imbridge_im::types::recentcontact::SESSION_C2C;
use imbridge_im::{Api, ImClient, ImConfig, from_im_body};
use imbridge_kafka::KafkaConfig;
use imbridge_kafka::admin::Admin;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where everything runs (from imbridge's configuration plus the legacy emulator's URL).
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The legacy emulator's base URL (user API and read endpoints); unused when the old app is an IM app.
    pub legacy_url: String,
    /// The old app, when it is an IM app (emulated) rather than the legacy emulator.
    pub old_im: Option<OldIm>,
    /// IM (the emulator): REST base URL, SDKAppID, admin and secret key (also signs the simulated users' UserSigs).
    pub im: ImConfig,
    pub kafka: KafkaConfig,
    pub topics: TopicNames,
    /// to-im's live consumer group and to-legacy's group (their lag says what is still in flight).
    pub to_im_group: String,
    pub to_legacy_group: String,
    /// `/metrics` URLs of ingest, to-im and to-legacy.
    pub ingest_metrics: String,
    pub to_im_metrics: String,
    pub to_legacy_metrics: String,
}

/// An IM app as the old app: its REST identity (whose key also signs its users' UserSigs) and its users (IM
/// cannot list an app's accounts).
#[derive(Debug, Clone)]
pub struct OldIm {
    pub im: ImConfig,
    pub users: Vec<String>,
}

/// Which app a user is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The old app: writes through the legacy backend's user API.
    Legacy,
    /// The new app: writes through IM (the emulator's client simulation).
    Im,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::Legacy => "old app",
            Side::Im => "new app",
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::Legacy => Side::Im,
            Side::Im => Side::Legacy,
        }
    }
}

/// Messages as (sender, body), in a system's order.
pub type Msgs = Vec<(String, Vec<Element>)>;

/// One group as either system shows it, in a shared shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSnap {
    pub group_type: String,
    pub name: String,
    pub introduction: String,
    pub notification: String,
    pub face_url: String,
    pub owner: String,
    /// Member → role (`owner`, `admin`, `member`).
    pub members: BTreeMap<String, String>,
    /// IM's join/leave notices left out.
    pub messages: Msgs,
}

/// What the demo talks to: both systems' user-facing and read APIs, and Kafka for the consumer groups' lag.
#[derive(Debug)]
pub struct Systems {
    pub ep: Endpoints,
    http: reqwest::Client,
    im: ImClient,
    /// The old app's client, when it is an IM app.
    old_im: Option<ImClient>,
    /// UserSigs by (SDKAppID, user).
    sigs: Mutex<HashMap<(u64, String), String>>,
}

impl Systems {
    pub fn new(ep: Endpoints) -> anyhow::Result<Self> {
        let reader = |c: &ImConfig| -> anyhow::Result<ImClient> {
            let im = ImClient::new(c, &prometheus::Registry::new()).context("IM client")?;
            // IM's read quotas are per app and shared with the services: the demo's reads take half.
            for api in [Api::AdminGetRoamMsg, Api::GroupMsgGetSimple, Api::GetGroupInfo, Api::GetGroupMemberInfo] {
                im.set_rate(api, RateSetting::PerSec(100.0));
            }
            Ok(im)
        };
        let im = reader(&ep.im)?;
        let old_im = ep.old_im.as_ref().map(|o| reader(&o.im)).transpose()?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self { ep, http, im, old_im, sigs: Mutex::default() })
    }

    /// Whether the old app is an IM app.
    pub fn old_is_im(&self) -> bool {
        self.old_im.is_some()
    }

    fn app(&self, side: Side) -> (&ImConfig, &ImClient) {
        match (side, &self.ep.old_im, &self.old_im) {
            (Side::Legacy, Some(o), Some(c)) => (&o.im, c),
            _ => (&self.ep.im, &self.im),
        }
    }

    // ---- the old app: the legacy emulator, or an IM app ------------------------------------------------------

    /// The old app's users, sorted.
    pub async fn old_users(&self) -> anyhow::Result<Vec<String>> {
        let Some(o) = &self.ep.old_im else { return self.legacy_users().await };
        let mut users = o.users.clone();
        users.sort();
        Ok(users)
    }

    /// The old app's 1:1 conversations: (a, b, messages), a < b; an IM app gives no count (1 for "has some").
    pub async fn old_c2c_list(&self) -> anyhow::Result<Vec<(String, String, u64)>> {
        let (Some(o), Some(old)) = (&self.ep.old_im, &self.old_im) else { return self.legacy_c2c_list().await };
        let mut out = std::collections::BTreeSet::new();
        for u in &o.users {
            for item in old.recent_contacts(u).await? {
                if let Some(peer) = item.to_account.filter(|_| item.kind == SESSION_C2C) {
                    let (a, b) = if *u < peer { (u.clone(), peer) } else { (peer, u.clone()) };
                    out.insert((a, b, u64::from(item.msg_time > 0)));
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    pub async fn old_group_ids(&self) -> anyhow::Result<Vec<String>> {
        match &self.old_im {
            Some(old) => Ok(old.all_group_ids(None).await?),
            None => self.legacy_group_ids().await,
        }
    }

    pub async fn old_c2c(&self, a: &str, b: &str) -> anyhow::Result<Msgs> {
        match &self.old_im {
            Some(old) => c2c_of(old, a, b).await,
            None => self.legacy_c2c(a, b).await,
        }
    }

    pub async fn old_group(&self, g: &str) -> anyhow::Result<Option<GroupSnap>> {
        match &self.old_im {
            Some(old) => group_of(old, g).await,
            None => self.legacy_group(g).await,
        }
    }

    // ---- the old app: the legacy backend's user API and read endpoints ----------------------------------------

    async fn legacy(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.ep.legacy_url);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.with_context(|| format!("legacy {method} {path}"))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("legacy {method} {path}: {status} {v}");
        }
        Ok(v)
    }

    /// A write by an old-app user.
    pub async fn legacy_write(&self, method: reqwest::Method, path: &str, body: Value) -> anyhow::Result<()> {
        self.legacy(method, path, Some(&body)).await.map(drop)
    }

    async fn legacy_users(&self) -> anyhow::Result<Vec<String>> {
        let v = self.legacy(reqwest::Method::GET, "/api/users", None).await?;
        let mut users: Vec<String> =
            v.as_array().context("users")?.iter().filter_map(|u| u["user_id"].as_str().map(str::to_owned)).collect();
        users.sort();
        Ok(users)
    }

    /// Existing 1:1 conversations: (a, b, message count), a < b.
    async fn legacy_c2c_list(&self) -> anyhow::Result<Vec<(String, String, u64)>> {
        let v = self.legacy(reqwest::Method::GET, "/api/c2c", None).await?;
        Ok(v.as_array()
            .context("c2c")?
            .iter()
            .filter_map(|c| {
                let (a, b) = c["conversation"].as_str()?.strip_prefix("c2c:")?.split_once(':')?;
                Some((a.to_owned(), b.to_owned(), c["messages"].as_u64().unwrap_or(0)))
            })
            .collect())
    }

    async fn legacy_group_ids(&self) -> anyhow::Result<Vec<String>> {
        let v = self.legacy(reqwest::Method::GET, "/api/groups", None).await?;
        Ok(v.as_array().context("groups")?.iter().filter_map(|g| g["group_id"].as_str().map(str::to_owned)).collect())
    }

    async fn legacy_c2c(&self, a: &str, b: &str) -> anyhow::Result<Msgs> {
        let v = self.legacy(reqwest::Method::GET, &format!("/api/c2c/{a}/{b}/messages"), None).await?;
        messages_of(&v["messages"])
    }

    async fn legacy_group(&self, g: &str) -> anyhow::Result<Option<GroupSnap>> {
        let r = self.http.get(format!("{}/api/groups/{g}", self.ep.legacy_url)).send().await?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let v: Value = r.error_for_status()?.json().await?;
        let msgs = self.legacy(reqwest::Method::GET, &format!("/api/groups/{g}/messages"), None).await?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let members = v["members"]
            .as_array()
            .context("members")?
            .iter()
            .filter_map(|m| Some((m["user_id"].as_str()?.to_owned(), m["role"].as_str()?.to_lowercase())))
            .collect();
        Ok(Some(GroupSnap {
            group_type: s("group_type"),
            name: s("name"),
            introduction: s("introduction"),
            notification: s("notification"),
            face_url: s("face_url"),
            owner: s("owner"),
            members,
            messages: messages_of(&msgs)?,
        }))
    }

    // ---- the new app: IM's client simulation, and IM's REST read APIs -----------------------------------------

    fn usersig(&self, app: &ImConfig, user: &str) -> String {
        let mut sigs = self.sigs.lock().unwrap_or_else(|e| e.into_inner());
        sigs.entry((app.sdkappid, user.to_owned()))
            .or_insert_with(|| {
                let now = imbridge_im::sigcache::unix_now_secs();
                imbridge_im::usersig::generate(app.sdkappid, &app.secret_key, user, 86_400, now)
            })
            .clone()
    }

    /// A new-app user's action (`api` like `openim/sendmsg`), through IM's client simulation.
    pub async fn im_as(&self, user: &str, api: &str, body: Value) -> anyhow::Result<Value> {
        self.app_as(Side::Im, user, api, body).await
    }

    /// An action of a user of `side`'s IM app (the old app only when it is an IM app), through that emulator's
    /// client simulation.
    pub async fn app_as(&self, side: Side, user: &str, api: &str, body: Value) -> anyhow::Result<Value> {
        let (app, _) = self.app(side);
        let url = format!(
            "{}/emulator/client/v4/{api}?sdkappid={}&identifier={user}&usersig={}&platform=Android",
            app.base_url.trim_end_matches('/'),
            app.sdkappid,
            self.usersig(app, user)
        );
        let v: Value = self.http.post(url).json(&body).send().await?.json().await?;
        if v["ErrorCode"] != 0 {
            bail!("IM client {user} {api}: {} {}", v["ErrorCode"], v["ErrorInfo"]);
        }
        Ok(v)
    }

    pub async fn im_c2c(&self, a: &str, b: &str) -> anyhow::Result<Msgs> {
        c2c_of(&self.im, a, b).await
    }

    pub async fn im_group(&self, g: &str) -> anyhow::Result<Option<GroupSnap>> {
        group_of(&self.im, g).await
    }

    // ---- the pipeline ---------------------------------------------------------------------------------------

    /// What is still in flight: webhooks in legacy's outbox, callbacks in IM's queue, events ingest accepted
    /// that to-im or to-legacy have not finished (their counters), and the lag of the two consumer groups
    /// (committed only after applying) — always with [`LagCheck::Always`], else only when the counters disagree
    /// (they restart with a service). Read in that order, so nothing in flight means every write made before the
    /// call has been applied on the other side.
    pub async fn in_flight(&self, admin: &Admin, lag: LagCheck) -> anyhow::Result<InFlight> {
        let callbacks_pending = |app: &ImConfig| {
            let url = format!("{}/emulator/stats", app.base_url.trim_end_matches('/'));
            async move {
                let v: Value = self.http.get(url).send().await?.json().await?;
                v["callbacks_pending"].as_u64().context("callbacks_pending")
            }
        };
        // The old app's queue: the legacy emulator's webhook outbox, or the old IM app's callbacks.
        let legacy_outbox = match &self.ep.old_im {
            Some(o) => callbacks_pending(&o.im).await?,
            None => {
                let legacy = self.legacy(reqwest::Method::GET, "/api/stats", None).await?;
                legacy["outbox_pending"].as_u64().context("outbox_pending")?
            }
        };
        let mut f =
            InFlight { legacy_outbox, im_callbacks: callbacks_pending(&self.ep.im).await?, ..InFlight::default() };
        let counters = async {
            let page =
                |url: String| async move { Ok::<_, anyhow::Error>(prom::Page::parse(&self.scrape(&url).await?)) };
            let ingest = page(self.ep.ingest_metrics.clone()).await?;
            let to_im = page(self.ep.to_im_metrics.clone()).await?;
            let to_legacy = page(self.ep.to_legacy_metrics.clone()).await?;
            let ingested = |source: &str| ingest.sum("imbridge_ingest_events_total", &[("source", source)]);
            anyhow::Ok((
                (ingested("legacy") - to_im.sum("imbridge_to_im_events_total", &[])) as i64,
                (ingested("im") - to_legacy.sum("imbridge_to_legacy_events_total", &[])) as i64,
            ))
        };
        // A service that is down has no counters; its lag still tells.
        let balanced = match counters.await {
            Ok((a, b)) => {
                (f.to_im_unfinished, f.to_legacy_unfinished) = (Some(a), Some(b));
                a == 0 && b == 0
            }
            Err(_) => false,
        };
        if lag == LagCheck::Always || !balanced {
            let sum = |ps: Vec<imbridge_kafka::admin::PartitionOffsets>| ps.iter().map(|p| p.lag()).sum::<i64>();
            f.to_im_lag = Some(sum(admin.offsets(&self.ep.topics.legacy_events, Some(&self.ep.to_im_group)).await?));
            f.to_legacy_lag =
                Some(sum(admin.offsets(&self.ep.topics.im_events, Some(&self.ep.to_legacy_group)).await?));
        }
        f.quiet = f.legacy_outbox == 0
            && f.im_callbacks == 0
            && match (f.to_im_lag, f.to_legacy_lag) {
                (Some(a), Some(b)) => a == 0 && b == 0,
                _ => balanced,
            };
        Ok(f)
    }

    /// Waits until nothing is in flight (twice in a row); returns how long it took.
    pub async fn wait_quiet(&self, admin: &Admin, lag: LagCheck, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut quiet_in_a_row = 0;
        loop {
            // A service that does not answer (restarting, say) counts as not quiet.
            let f = self.in_flight(admin, lag).await;
            quiet_in_a_row = if f.as_ref().is_ok_and(|f| f.quiet) { quiet_in_a_row + 1 } else { 0 };
            if quiet_in_a_row == 2 {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                match f {
                    Ok(f) => bail!("still in flight after {timeout:?}: {f}"),
                    Err(e) => bail!("no answer after {timeout:?}: {e:#}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET` a Prometheus text page.
    pub async fn scrape(&self, url: &str) -> anyhow::Result<String> {
        Ok(self.http.get(url).send().await?.error_for_status()?.text().await?)
    }
}

/// When [`Systems::in_flight`] reads the consumer groups' committed lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagCheck {
    Always,
    /// Only when the services' counters do not show every ingested event finished (fast in the usual case).
    IfCountersDisagree,
}

/// What is not yet on the other side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InFlight {
    pub legacy_outbox: u64,
    pub im_callbacks: u64,
    /// Events ingest accepted that the service has not finished (applied or dead-lettered), per their counters;
    /// `None` when a service did not answer.
    pub to_im_unfinished: Option<i64>,
    pub to_legacy_unfinished: Option<i64>,
    /// Records after the consumer group's committed offset, when read.
    pub to_im_lag: Option<i64>,
    pub to_legacy_lag: Option<i64>,
    pub quiet: bool,
}

impl std::fmt::Display for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |v: Option<i64>| v.map_or("?".to_owned(), |v| v.to_string());
        write!(
            f,
            "legacy webhooks queued {}, IM callbacks queued {}; to-im: {} unfinished, lag {}; to-legacy: {} \
             unfinished, lag {}",
            self.legacy_outbox,
            self.im_callbacks,
            n(self.to_im_unfinished),
            n(self.to_im_lag),
            n(self.to_legacy_unfinished),
            n(self.to_legacy_lag)
        )
    }
}

/// A 1:1 conversation as an IM app holds it.
async fn c2c_of(im: &ImClient, a: &str, b: &str) -> anyhow::Result<Msgs> {
    let now = imbridge_im::sigcache::unix_now_secs() as i64;
    let msgs = im.c2c_history(a, b, 0, now + 30 * 86_400).await?;
    msgs.iter().map(|m| Ok((m.from_account.clone(), from_im_body(&m.msg_body)?))).collect()
}

/// A group as an IM app holds it.
async fn group_of(im: &ImClient, g: &str) -> anyhow::Result<Option<GroupSnap>> {
    let Some(info) = im.group_infos(&[g.to_owned()], None).await?.into_iter().next() else {
        return Ok(None);
    };
    if info.error_code != 0 {
        return Ok(None);
    }
    let members = im
        .all_group_members(g, Some(vec!["Role".into()]))
        .await?
        .into_iter()
        .map(|m| (m.member_account, m.role.unwrap_or_default().to_lowercase()))
        .collect();
    let messages = im
        .group_history(g, false)
        .await?
        .into_iter()
        .filter(|m| m.is_system_msg != Some(1))
        .map(|m| Ok((m.from_account.clone(), from_im_body(&m.msg_body)?)))
        .collect::<anyhow::Result<Msgs>>()?;
    let s = |o: Option<String>| o.unwrap_or_default();
    Ok(Some(GroupSnap {
        group_type: s(info.group_type),
        name: s(info.name),
        introduction: s(info.introduction),
        notification: s(info.notification),
        face_url: s(info.face_url),
        owner: s(info.owner_account),
        members,
        messages,
    }))
}

fn messages_of(v: &Value) -> anyhow::Result<Msgs> {
    let Some(a) = v.as_array() else { return Ok(Vec::new()) };
    a.iter()
        .map(|m| {
            let body: Vec<Element> = serde_json::from_value(m["body"].clone()).context("legacy message body")?;
            Ok((m["from"].as_str().context("from")?.to_owned(), body))
        })
        .collect()
}

/// A text body in the legacy contract's shape.
pub fn text_body(s: &str) -> Value {
    json!([{ "type": "text", "text": s }])
}

/// A text body in IM's shape.
pub fn im_text(s: &str) -> Value {
    json!([{ "MsgType": "TIMTextElem", "MsgContent": { "Text": s } }])
}

/// The texts of a conversation's plain text messages.
pub fn texts(msgs: &Msgs) -> impl Iterator<Item = &str> {
    msgs.iter().filter_map(|(_, body)| match body.as_slice() {
        [Element::Text { text }] => Some(text.as_str()),
        _ => None,
    })
}

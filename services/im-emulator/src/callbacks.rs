//! Outgoing callbacks (webhooks) to the app backend.
//!
//! - **After** callbacks go through ONE queue per emulator, drained by one worker, so they are delivered in the
//!   order the operations happened (handlers enqueue while still holding the state lock). Real IM promises no
//!   ordering; a single queue is the simplest faithful choice and makes tests deterministic. Each delivery has a
//!   timeout and is never retried (IM documents no retries), and is counted as delivered or failed.
//! - **Before** callbacks are called synchronously by the request that causes them, with the same timeout; an
//!   answer with a non-zero `ErrorCode` rejects the operation. A timeout, a transport error or an unparseable
//!   answer lets the operation through (UNCONFIRMED: IM does not document its behaviour on failure).
//!
//! Every callback is a POST of the JSON body to the configured URL with the query parameters `SdkAppid`,
//! `CallbackCommand`, `contenttype=json`, `ClientIP`, `OptPlatform`, plus `Sign` = hex(sha256(token +
//! RequestTime)) and `RequestTime` (wall-clock seconds at sending) when a token is configured.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use reqwest::Url;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc};

use crate::Error;
use crate::clock::wall_ms;
use crate::config::EmulatorConfig;
use crate::handlers::{Ctx, Pending};
use crate::stats::Stats;

/// The "after" callbacks of the reference's trigger table (§7.4): on by default when no enable set is given.
pub const AFTER_CALLBACKS: &[&str] = &[
    "C2C.CallbackAfterSendMsg",
    "C2C.CallbackAfterMsgReport",
    "Group.CallbackAfterCreateGroup",
    "Group.CallbackAfterGroupInfoChanged",
    "Group.CallbackAfterNewMemberJoin",
    "Group.CallbackAfterMemberExit",
    "Group.CallbackAfterGroupDestroyed",
    "Group.CallbackAfterSendMsg",
];

/// Callbacks that fire only when named in `enabled_callbacks`: the blocking "before" callbacks and the profile
/// callback that also needs a console subscription.
pub const OPT_IN_CALLBACKS: &[&str] = &[
    "C2C.CallbackBeforeSendMsg",
    "Group.CallbackBeforeSendMsg",
    "Group.CallbackBeforeCreateGroup",
    "Group.CallbackBeforeInviteJoinGroup",
    "Profile.CallbackPortraitSet",
];

/// Where callbacks go and which are on; changeable at run time (the console's setting).
#[derive(Debug, Clone)]
struct Settings {
    url: Option<Url>,
    token: Option<String>,
    enabled: Option<BTreeSet<String>>,
}

#[derive(Debug)]
struct Shared {
    sdkappid: u64,
    settings: RwLock<Settings>,
    http: reqwest::Client,
    timeout: Duration,
    enqueued: AtomicU64,
    done: AtomicU64,
    progress: Notify,
    stats: Arc<Stats>,
}

/// One queued delivery.
#[derive(Debug)]
struct Job {
    url: Url,
    token: Option<String>,
    command: &'static str,
    body: Value,
}

/// What a before-callback decided.
#[derive(Debug)]
pub(crate) enum Before {
    /// Go on; the answer (if it was JSON) may carry replacements (`MsgBody`, `CloudCustomData`,
    /// `RefusedMembers_Account`).
    Allow(Option<Value>),
    /// The backend answered a non-zero `ErrorCode`.
    Reject,
}

/// The callback dispatcher of one emulator.
#[derive(Debug)]
pub(crate) struct Callbacks {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Job>,
}

impl Callbacks {
    /// Builds the dispatcher and spawns its worker on the current runtime.
    pub(crate) fn new(cfg: &EmulatorConfig, stats: Arc<Stats>) -> Result<Self, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let url = cfg.callback_url.as_deref().map(Url::parse).transpose().map_err(|e| Error::Config(e.to_string()))?;
        let http =
            reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(30)).build().map_err(Error::HttpClient)?;
        let shared = Arc::new(Shared {
            sdkappid: cfg.sdkappid,
            settings: RwLock::new(Settings {
                url,
                token: cfg.callback_token.clone(),
                enabled: cfg.enabled_callbacks.clone(),
            }),
            http,
            timeout: Duration::from_millis(cfg.callback_timeout_ms),
            enqueued: AtomicU64::new(0),
            done: AtomicU64::new(0),
            progress: Notify::new(),
            stats,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        runtime.spawn(worker(rx, shared.clone()));
        Ok(Self { shared, tx })
    }

    /// Changes the callback URL (or turns callbacks off with `None`).
    pub(crate) fn set_url(&self, url: Option<&str>) -> Result<(), Error> {
        let url = url.map(Url::parse).transpose().map_err(|e| Error::Config(format!("callback url: {e}")))?;
        self.shared.settings.write().url = url;
        Ok(())
    }

    /// Whether `command` would be sent now.
    pub(crate) fn enabled(&self, command: &str) -> bool {
        let s = self.shared.settings.read();
        s.url.is_some()
            && match &s.enabled {
                Some(set) => set.contains(command),
                None => AFTER_CALLBACKS.contains(&command),
            }
    }

    /// The URL with the documented query parameters (without `Sign`/`RequestTime`, added at sending).
    fn url_for(&self, command: &str, ctx: &Ctx) -> Option<(Url, Option<String>)> {
        let s = self.shared.settings.read();
        let mut url = s.url.clone()?;
        url.query_pairs_mut()
            .append_pair("SdkAppid", &self.shared.sdkappid.to_string())
            .append_pair("CallbackCommand", command)
            .append_pair("contenttype", "json")
            .append_pair("ClientIP", &ctx.client_ip)
            .append_pair("OptPlatform", &ctx.platform);
        Some((url, s.token.clone()))
    }

    /// Queues an after-callback if it is enabled. Call while holding the state lock so queue order is operation
    /// order; it never blocks.
    pub(crate) fn enqueue(&self, p: Pending, ctx: &Ctx) {
        if !self.enabled(p.command) {
            return;
        }
        let Some((url, token)) = self.url_for(p.command, ctx) else { return };
        self.shared.enqueued.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(Job { url, token, command: p.command, body: p.body }).is_err() {
            // The worker is gone (runtime shutting down): count it as done so flush() does not hang.
            self.shared.done.fetch_add(1, Ordering::SeqCst);
            self.shared.stats.callback(p.command, false);
        }
    }

    /// Calls a before-callback and waits for the decision.
    pub(crate) async fn call_before(&self, p: Pending, ctx: &Ctx) -> Before {
        if !self.enabled(p.command) {
            return Before::Allow(None);
        }
        let Some((url, token)) = self.url_for(p.command, ctx) else { return Before::Allow(None) };
        match deliver(&self.shared, url, token.as_deref(), &p.body).await {
            Ok(answer) => {
                self.shared.stats.callback(p.command, true);
                let code = answer.as_ref().and_then(|a| a.get("ErrorCode")).and_then(Value::as_i64).unwrap_or(0);
                if code != 0 { Before::Reject } else { Before::Allow(answer) }
            }
            Err(why) => {
                self.shared.stats.callback(p.command, false);
                tracing::warn!(command = p.command, error = %why, "before-callback failed; letting the operation through");
                Before::Allow(None)
            }
        }
    }

    /// Callbacks queued but not yet attempted.
    pub(crate) fn pending(&self) -> u64 {
        self.shared.enqueued.load(Ordering::SeqCst).saturating_sub(self.shared.done.load(Ordering::SeqCst))
    }

    /// Waits until every callback queued before this call has been attempted.
    pub(crate) async fn flush(&self) {
        let target = self.shared.enqueued.load(Ordering::SeqCst);
        loop {
            let notified = self.shared.progress.notified();
            tokio::pin!(notified);
            // Register before checking, so a completion between the check and the await is not missed.
            notified.as_mut().enable();
            if self.shared.done.load(Ordering::SeqCst) >= target {
                return;
            }
            notified.await;
        }
    }
}

/// `Sign` = lowercase hex of SHA-256 over the token followed by `RequestTime` (plain concatenation, no HMAC).
pub fn sign(token: &str, request_time: &str) -> String {
    hex::encode(Sha256::digest(format!("{token}{request_time}").as_bytes()))
}

/// POSTs one callback; `Ok` with the parsed answer (if JSON) on HTTP 2xx.
async fn deliver(shared: &Shared, mut url: Url, token: Option<&str>, body: &Value) -> Result<Option<Value>, String> {
    if let Some(token) = token {
        // RequestTime is wall-clock time: the receiver checks it against its own clock (±60 s).
        let request_time = (wall_ms() / 1000).to_string();
        url.query_pairs_mut()
            .append_pair("Sign", &sign(token, &request_time))
            .append_pair("RequestTime", &request_time);
    }
    let resp = shared.http.post(url).json(body).timeout(shared.timeout).send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("http status {status}"));
    }
    Ok(serde_json::from_slice(&bytes).ok())
}

async fn worker(mut rx: mpsc::UnboundedReceiver<Job>, shared: Arc<Shared>) {
    while let Some(job) = rx.recv().await {
        let ok = match deliver(&shared, job.url, job.token.as_deref(), &job.body).await {
            Ok(_) => true,
            Err(why) => {
                tracing::warn!(command = job.command, error = %why, "callback delivery failed; not retried");
                false
            }
        };
        shared.stats.callback(job.command, ok);
        shared.done.fetch_add(1, Ordering::SeqCst);
        shared.progress.notify_waiters();
    }
}

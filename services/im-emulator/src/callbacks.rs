//! Outgoing callbacks (webhooks) to the app backend.
//!
//! - **After** callbacks are queued by the operation that fires them, while it still holds the state lock, so
//!   the queue is in operation order; [`crate::faults`] decides each one's fate right there (drop, duplicate,
//!   delay), so decisions are reproducible whatever happens at delivery. One dispatcher drains the queue:
//!   - `callback_concurrency` > 1 (default 8, like IM's many sending servers): up to that many deliveries in
//!     flight at once, started in queue order; a delayed copy waits outside that limit and then takes its turn.
//!     Callbacks of one conversation can therefore arrive out of order — IM promises no order.
//!   - `callback_concurrency` = 1: serial, one delivery at a time in operation order; a delay holds the queue,
//!     and a duplicate follows its original at once. Tests that assert arrival order use this mode.
//!
//!   Each delivery has `callback_timeout_ms` and is never retried (IM documents no retries); each copy is
//!   counted as delivered or failed.
//! - **Before** callbacks are called synchronously by the request that causes them, with the same timeout; an
//!   answer with a non-zero `ErrorCode` rejects the operation. A timeout, a transport error or an unparseable
//!   answer lets the operation through (UNCONFIRMED: IM does not document its behaviour on failure). Faults are
//!   never injected into them.
//!
//! [`Callbacks::flush`] waits for every callback queued before it (delays included): each queued callback has an
//! id, and the set of ids not yet finished tells exactly which are still outstanding, whatever order concurrent
//! deliveries finish in.
//!
//! Every callback is a POST of the JSON body to the configured URL with the query parameters `SdkAppid`,
//! `CallbackCommand`, `contenttype=json`, `ClientIP`, `OptPlatform`, plus `Sign` = hex(sha256(token +
//! RequestTime)) and `RequestTime` (wall-clock seconds at sending) when a token is configured.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use reqwest::Url;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};

use crate::Error;
use crate::clock::wall_ms;
use crate::config::EmulatorConfig;
use crate::faults::Injector;
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

/// Ids of queued callbacks and which are still outstanding.
#[derive(Debug, Default)]
struct Outstanding {
    /// The id the next queued callback gets.
    next_id: u64,
    /// Queued and not yet finished (every copy attempted).
    ids: BTreeSet<u64>,
}

#[derive(Debug)]
struct Shared {
    sdkappid: u64,
    settings: RwLock<Settings>,
    http: reqwest::Client,
    timeout: Duration,
    concurrency: usize,
    outstanding: Mutex<Outstanding>,
    progress: Notify,
    stats: Arc<Stats>,
    faults: Arc<Injector>,
}

impl Shared {
    /// Marks a queued callback finished and wakes flushers.
    fn finish(&self, id: u64) {
        self.outstanding.lock().ids.remove(&id);
        self.progress.notify_waiters();
    }
}

/// One queued callback: the copies to send (one per entry, with its delay in ms; two = duplicated).
#[derive(Debug)]
struct Job {
    id: u64,
    url: Url,
    token: Option<String>,
    command: &'static str,
    body: Value,
    delays_ms: Vec<u64>,
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
    pub(crate) fn new(cfg: &EmulatorConfig, stats: Arc<Stats>, faults: Arc<Injector>) -> Result<Self, Error> {
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
            concurrency: cfg.callback_concurrency.max(1),
            outstanding: Mutex::new(Outstanding::default()),
            progress: Notify::new(),
            stats,
            faults,
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

    /// Queues an after-callback if it is enabled, with its injected fate. Call while holding the state lock so
    /// queue order (and the order fault decisions are drawn in) is operation order; it never blocks.
    pub(crate) fn enqueue(&self, p: Pending, ctx: &Ctx) {
        if !self.enabled(p.command) {
            return;
        }
        let Some((url, token)) = self.url_for(p.command, ctx) else { return };
        let fate = self.shared.faults.callback();
        self.shared.stats.callback_fate(p.command, &fate.copies);
        if fate.copies.is_empty() {
            tracing::debug!(command = p.command, "callback dropped (injected fault)");
            return;
        }
        // Taking the id and marking it outstanding is one step, so a flush never sees an id it cannot wait for.
        let id = {
            let mut o = self.shared.outstanding.lock();
            let id = o.next_id;
            o.next_id += 1;
            o.ids.insert(id);
            id
        };
        let job = Job { id, url, token, command: p.command, body: p.body, delays_ms: fate.copies };
        if let Err(mpsc::error::SendError(job)) = self.tx.send(job) {
            // The dispatcher is gone (runtime shutting down): count it as failed so flush() does not hang.
            for _ in &job.delays_ms {
                self.shared.stats.callback(job.command, false);
            }
            self.shared.finish(id);
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

    /// Callbacks queued (or waiting out a delay) but not yet attempted; a duplicated one counts once.
    pub(crate) fn pending(&self) -> u64 {
        self.shared.outstanding.lock().ids.len() as u64
    }

    /// Waits until every callback queued before this call has been attempted (every copy, delays included).
    pub(crate) async fn flush(&self) {
        let target = self.shared.outstanding.lock().next_id;
        loop {
            let notified = self.shared.progress.notified();
            tokio::pin!(notified);
            // Register before checking, so a completion between the check and the await is not missed.
            notified.as_mut().enable();
            // Ids are handed out in order: none below `target` outstanding = all of those were attempted.
            if self.shared.outstanding.lock().ids.first().is_none_or(|first| *first >= target) {
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

/// Drains the queue: serially in queue order when `callback_concurrency` is 1, else up to that many deliveries
/// at once, started in queue order.
async fn worker(mut rx: mpsc::UnboundedReceiver<Job>, shared: Arc<Shared>) {
    if shared.concurrency == 1 {
        while let Some(job) = rx.recv().await {
            for delay in &job.delays_ms {
                if *delay > 0 {
                    // Serial mode keeps operation order: a delay holds back everything behind it.
                    tokio::time::sleep(Duration::from_millis(*delay)).await;
                }
                attempt(&shared, &job).await;
            }
            shared.finish(job.id);
        }
        return;
    }
    let slots = Arc::new(Semaphore::new(shared.concurrency));
    while let Some(job) = rx.recv().await {
        let job = Arc::new(job);
        let copies_left = Arc::new(AtomicUsize::new(job.delays_ms.len()));
        for &delay in &job.delays_ms {
            let (shared, job, copies_left, slots) = (shared.clone(), job.clone(), copies_left.clone(), slots.clone());
            if delay == 0 {
                // Take the slot here, so undelayed callbacks start in queue order.
                let Ok(permit) = slots.acquire_owned().await else { return };
                tokio::spawn(deliver_copy(shared, job, copies_left, permit));
            } else {
                // A delayed copy waits outside the in-flight limit (it is late, not slow), then queues for a slot.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    if let Ok(permit) = slots.acquire_owned().await {
                        deliver_copy(shared, job, copies_left, permit).await;
                    }
                });
            }
        }
    }
}

/// One copy of a callback in concurrent mode, holding an in-flight slot; the last copy finishes the callback.
async fn deliver_copy(shared: Arc<Shared>, job: Arc<Job>, copies_left: Arc<AtomicUsize>, slot: OwnedSemaphorePermit) {
    attempt(&shared, &job).await;
    drop(slot);
    if copies_left.fetch_sub(1, Ordering::SeqCst) == 1 {
        shared.finish(job.id);
    }
}

/// Sends one copy of a callback and counts the outcome; never retried.
async fn attempt(shared: &Shared, job: &Job) {
    let ok = match deliver(shared, job.url.clone(), job.token.as_deref(), &job.body).await {
        Ok(_) => true,
        Err(why) => {
            tracing::warn!(command = job.command, error = %why, "callback delivery failed; not retried");
            false
        }
    };
    shared.stats.callback(job.command, ok);
}

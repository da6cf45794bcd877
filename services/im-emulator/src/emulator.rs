//! [`Emulator`]: the shared handle behind the HTTP router. It owns the state (one mutex, held only for the
//! synchronous part of one request), the rate limiter, the clock and the callback dispatcher, and implements the
//! request pipeline both entry points share:
//!
//! REST (`/v4/...`): method → query (`contenttype`, `random`, `sdkappid`) → UserSig (wall clock) → admin →
//! resource → injected fault → frequency limit → body → before-callback → handler → after-callbacks. An injected
//! `http_500` or `60007` answers before the handler, so it changes nothing; a `timeout` runs the call first when
//! `faults.rest_timeout_applies` (then hangs), else hangs without running it.
//!
//! Simulated client (`/emulator/client/v4/...`): `sdkappid` → that user's UserSig → account exists → allowed
//! command → body → same handler with the user as operator, its platform as `OptPlatform`, no frequency limit.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::api::{Api, ApiError, Family, envelope};
use crate::callbacks::{Before, Callbacks};
use crate::clock::{Clock, wall_ms};
use crate::config::EmulatorConfig;
use crate::faults::{Faults, Injector, RestFailureKind, RestFault};
use crate::handlers::{self, Ctx, Pending};
use crate::ratelimit::RateLimiter;
use crate::state::State;
use crate::stats::{Stats, StatsSnapshot};

/// Platforms a simulated client may claim (`OptPlatform` values of the callback docs).
const PLATFORMS: &[&str] = &["Web", "Android", "iOS", "Windows", "Mac", "iPad", "Unknown"];

struct Inner {
    config: EmulatorConfig,
    state: Mutex<State>,
    limiter: RateLimiter,
    clock: Clock,
    callbacks: Callbacks,
    stats: Arc<Stats>,
    faults: Arc<Injector>,
    /// Fires when the server shuts down: releases requests held by an injected timeout.
    closing: CancellationToken,
    /// Successful state-changing calls so far; the saver compares it with what it last wrote.
    mutations: AtomicU64,
    saved_mutations: AtomicU64,
}

/// A running emulated IM application: cheap to clone, shared by the router and tests.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("sdkappid", &self.inner.config.sdkappid).finish_non_exhaustive()
    }
}

impl Emulator {
    /// Validates `config`, loads `state_file` if it exists, and starts the callback worker. Must be called inside
    /// a Tokio runtime.
    pub fn new(config: EmulatorConfig) -> Result<Self, Error> {
        config.validate()?;
        let state = match &config.state_file {
            Some(path) => load_state(path)?,
            None => State::default(),
        };
        let stats = Arc::new(Stats::default());
        let faults = Arc::new(Injector::new(config.faults.clone()));
        let callbacks = Callbacks::new(&config, stats.clone(), faults.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                limiter: RateLimiter::new(&config),
                config,
                state: Mutex::new(state),
                clock: Clock::default(),
                callbacks,
                stats,
                faults,
                closing: CancellationToken::new(),
                mutations: AtomicU64::new(0),
                saved_mutations: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &EmulatorConfig {
        &self.inner.config
    }

    /// A UserSig for `identifier`, valid for one day from now (wall clock).
    pub fn usersig(&self, identifier: &str) -> String {
        let c = &self.inner.config;
        imbridge_im::usersig::generate(c.sdkappid, &c.secret_key, identifier, 86_400, wall_ms() / 1000)
    }

    /// The first configured admin identifier.
    pub fn admin_identifier(&self) -> &str {
        self.inner.config.admin_identifiers.first().map_or("administrator", String::as_str)
    }

    /// Emulated time, Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// Moves the emulated clock forward (dedup windows, retention). UserSig expiry is not affected.
    pub fn advance_clock(&self, by: Duration) {
        self.inner.clock.advance(by);
    }

    /// 1:1 messages stored, over every conversation: what benches compare with what they sent.
    pub fn c2c_messages(&self) -> usize {
        self.inner.state.lock().conversations.values().map(|c| c.msgs.len()).sum()
    }

    /// Counters of requests, errors and callbacks.
    pub fn stats(&self) -> StatsSnapshot {
        let deduplicated = self.inner.state.lock().deduplicated.clone();
        self.inner.stats.snapshot(self.inner.callbacks.pending(), deduplicated)
    }

    /// The faults injected now (initially `config().faults`).
    pub fn faults(&self) -> Faults {
        self.inner.faults.get()
    }

    /// Replaces the injected faults while running and restarts their random streams from `faults.seed`.
    pub fn set_faults(&self, faults: Faults) -> Result<(), Error> {
        self.inner.faults.set(faults).map_err(Error::Config)
    }

    /// Cancelled when the server serving this emulator shuts down.
    pub(crate) fn closing(&self) -> &CancellationToken {
        &self.inner.closing
    }

    /// Waits until every callback queued so far has been attempted.
    pub async fn flush_callbacks(&self) {
        self.inner.callbacks.flush().await;
    }

    /// Points callbacks at another URL, or turns them off (the console setting, changeable while running).
    pub fn set_callback_url(&self, url: Option<&str>) -> Result<(), Error> {
        self.inner.callbacks.set_url(url)
    }

    /// Writes the state to `state_file` (if configured) when it changed since the last save.
    pub fn save_state(&self) -> Result<(), Error> {
        let Some(path) = &self.inner.config.state_file else { return Ok(()) };
        let mutations = self.inner.mutations.load(Ordering::SeqCst);
        if mutations == self.inner.saved_mutations.load(Ordering::SeqCst) && path.exists() {
            return Ok(());
        }
        // Serialize under the lock (a consistent snapshot), write outside it.
        let bytes = {
            let st = self.inner.state.lock();
            serde_json::to_vec(&*st)
                .map_err(|e| Error::StateWrite { path: path.clone(), source: std::io::Error::other(e) })?
        };
        write_atomically(path, &bytes)?;
        self.inner.saved_mutations.store(mutations, Ordering::SeqCst);
        Ok(())
    }

    /// Runs `f` on the state under its lock, counted as a change (for the test-only hooks in `testing`).
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.inner.state.lock();
        let r = f(&mut st);
        self.inner.mutations.fetch_add(1, Ordering::SeqCst);
        r
    }

    fn ctx(&self, operator: &str, platform: &str, client_ip: &str, client: bool) -> Ctx {
        Ctx {
            operator: operator.to_owned(),
            platform: platform.to_owned(),
            client_ip: client_ip.to_owned(),
            client,
            now_ms: self.inner.clock.now_ms(),
            refused_members: Vec::new(),
        }
    }

    /// Verifies a UserSig against the app's key for `identifier`, at wall-clock time.
    fn check_usersig(&self, query: &HashMap<String, String>, identifier: &str) -> Result<(), ApiError> {
        let c = &self.inner.config;
        let sig = query.get("usersig").map_or("", String::as_str);
        imbridge_im::usersig::verify(sig, c.sdkappid, &c.secret_key, identifier, wall_ms() / 1000)
            .map(|_| ())
            .map_err(|e| ApiError::new(e.im_error_code(), e.to_string()))
    }

    fn check_sdkappid(&self, query: &HashMap<String, String>) -> Result<(), ApiError> {
        let raw = query.get("sdkappid").ok_or_else(|| ApiError::new(60012, "sdkappid is missing from the URL"))?;
        let id: u64 = raw.parse().map_err(|_| ApiError::new(60006, format!("sdkappid {raw:?} is invalid")))?;
        if id != self.inner.config.sdkappid {
            // UNCONFIRMED: an sdkappid this server does not host is answered "SDKAppID not found".
            return Err(ApiError::new(70020, format!("SDKAppID {id} not found")));
        }
        Ok(())
    }

    /// One REST call: a JSON body for an HTTP 200 answer, unless a fault was injected.
    pub(crate) async fn rest(&self, call: &HttpCall<'_>) -> RestAnswer {
        let key = call.key();
        let api = Api::from_key(&key).filter(|a| a.is_rest());
        let family = api.map(Api::family);
        let (result, fault) = self.rest_inner(api, call).await;
        let code = result.as_ref().err().map_or(0, |e| e.code);
        self.inner.stats.request(
            api.map_or("unknown", Api::key),
            code,
            fault.is_some_and(|f| f.kind == RestFailureKind::RateLimited),
        );
        if code != 0 {
            tracing::debug!(api = %key, code, "answered with an error");
        }
        match fault {
            Some(f) => {
                self.inner.stats.rest_fault(&key, f.kind.as_str());
                tracing::debug!(api = %key, kind = f.kind.as_str(), "injected REST failure");
                match f.kind {
                    RestFailureKind::Http500 => RestAnswer::Http500,
                    RestFailureKind::Timeout => RestAnswer::Hang(Duration::from_millis(f.hold_ms)),
                    // Already in `result` as an ordinary 60007 answer.
                    RestFailureKind::RateLimited => RestAnswer::Json(envelope(family, result)),
                }
            }
            None => RestAnswer::Json(envelope(family, result)),
        }
    }

    async fn rest_inner(&self, api: Option<Api>, call: &HttpCall<'_>) -> (Result<Value, ApiError>, Option<RestFault>) {
        let api = match self.rest_gate(api, call.is_post, call.query) {
            Ok(api) => api,
            Err(e) => return (Err(e), None),
        };
        // Injected failures come after the gate (a request IM would refuse is refused as usual) and, except a
        // timeout that applies, before anything that could change state.
        let fault = self.inner.faults.rest(api);
        match fault.map(|f| (f.kind, f.applies)) {
            Some((RestFailureKind::RateLimited, _)) => {
                let e = ApiError::new(60007, format!("{} call frequency over the limit (injected fault)", api.key()));
                return (Err(e), fault);
            }
            Some((RestFailureKind::Http500, _)) | Some((RestFailureKind::Timeout, false)) => {
                return (Ok(Value::Null), fault);
            }
            Some((RestFailureKind::Timeout, true)) | None => {}
        }
        (self.rest_apply(api, call.query, call.client_ip, call.body).await, fault)
    }

    /// The request gate: method, query, sdkappid, UserSig, admin, known API.
    fn rest_gate(&self, api: Option<Api>, is_post: bool, query: &HashMap<String, String>) -> Result<Api, ApiError> {
        // UNCONFIRMED code for a non-POST request; 60008 is "malformed HTTP request".
        if !is_post {
            return Err(ApiError::new(60008, "only POST is supported"));
        }
        if query.get("contenttype").map(String::as_str) != Some("json") {
            return Err(ApiError::new(60002, "contenttype=json is required in the URL"));
        }
        match query.get("random").map(|r| r.parse::<u32>()) {
            Some(Ok(_)) => {}
            _ => return Err(ApiError::new(60002, "random must be a 32-bit unsigned integer in the URL")),
        }
        self.check_sdkappid(query)?;
        let identifier = query.get("identifier").map_or("", String::as_str);
        self.check_usersig(query, identifier)?;
        if !self.inner.config.admin_identifiers.iter().any(|a| a == identifier) {
            let code = api.map_or(60010, |a| a.family().needs_admin());
            return Err(ApiError::new(code, format!("{identifier} is not an App admin")));
        }
        // UNCONFIRMED: 60009 "bad resource" for any unknown service/command (the group service may say 10003).
        api.ok_or_else(|| ApiError::new(60009, "unknown service or command"))
    }

    /// Everything after the gate: frequency limit, body, the call.
    async fn rest_apply(
        &self,
        api: Api,
        query: &HashMap<String, String>,
        client_ip: &str,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        let identifier = query.get("identifier").map_or("", String::as_str);
        if !self.inner.limiter.try_acquire(api) {
            return Err(ApiError::new(60007, format!("{} call frequency over the limit", api.key())));
        }
        let body = parse_body(api.family(), body)?;
        let ctx = self.ctx(identifier, "RESTAPI", client_ip, false);
        self.call(api, ctx, body).await
    }

    /// One simulated-client call.
    pub(crate) async fn client(&self, call: &HttpCall<'_>) -> Value {
        let api = Api::from_key(&call.key()).filter(|a| a.client_allowed());
        let family = api.map(Api::family);
        let result = self.client_inner(api, call).await;
        let code = result.as_ref().err().map_or(0, |e| e.code);
        self.inner.stats.request(&format!("client:{}", api.map_or("unknown", Api::key)), code, false);
        envelope(family, result)
    }

    async fn client_inner(&self, api: Option<Api>, call: &HttpCall<'_>) -> Result<Value, ApiError> {
        let HttpCall { is_post, query, client_ip, body, .. } = *call;
        if !is_post {
            return Err(ApiError::new(60008, "only POST is supported"));
        }
        self.check_sdkappid(query)?;
        let user = query.get("identifier").map_or("", String::as_str);
        self.check_usersig(query, user)?;
        let platform = query.get("platform").map_or("Unknown", String::as_str);
        if !PLATFORMS.contains(&platform) {
            return Err(ApiError::new(60002, format!("platform must be one of {PLATFORMS:?}")));
        }
        let exists = handlers::account_exists(&self.inner.state.lock(), &self.inner.config, user);
        if !exists {
            return Err(ApiError::new(70107, format!("account {user} is not imported")));
        }
        let api = api.ok_or_else(|| ApiError::new(60009, "not a command a simulated client can send"))?;
        let body = parse_body(api.family(), body)?;
        let ctx = self.ctx(user, platform, client_ip, true);
        self.call(api, ctx, body).await
    }

    /// Runs one API: the before-callback step (outside the lock), then the handler under the lock, queueing its
    /// after-callbacks before the lock is released.
    async fn call(&self, api: Api, mut ctx: Ctx, body: Value) -> Result<Value, ApiError> {
        let body = if handlers::has_prepare(api) {
            let prepared = {
                let st = self.inner.state.lock();
                handlers::prepare(api, &st, &self.inner.config, &ctx, body)?
            };
            let mut body = prepared.body;
            if let Some(before) = prepared.before {
                let command = before.command;
                match self.inner.callbacks.call_before(before, &ctx).await {
                    Before::Reject => return Err(rejected(api, command)),
                    Before::Allow(Some(answer)) => apply_before_answer(&mut body, &answer, &mut ctx),
                    Before::Allow(None) => {}
                }
            }
            body
        } else {
            body
        };
        let mut out: Vec<Pending> = Vec::new();
        let mut st = self.inner.state.lock();
        let result = handlers::handle(api, &mut st, &self.inner.config, &ctx, &body, &mut out);
        if result.is_ok() {
            if api.mutates() {
                self.inner.mutations.fetch_add(1, Ordering::SeqCst);
            }
            for p in out {
                self.inner.callbacks.enqueue(p, &ctx);
            }
        }
        drop(st);
        result
    }
}

/// One call to `/v4/<service>/<command>`, as the REST and the simulated-client entries both read it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpCall<'a> {
    pub is_post: bool,
    pub query: &'a HashMap<String, String>,
    pub service: &'a str,
    pub command: &'a str,
    pub client_ip: &'a str,
    pub body: &'a [u8],
}

impl HttpCall<'_> {
    /// `service/command`, the key [`Api::from_key`] reads.
    fn key(&self) -> String {
        format!("{}/{}", self.service, self.command)
    }
}

/// What the HTTP layer answers to one REST call.
#[derive(Debug)]
pub(crate) enum RestAnswer {
    /// HTTP 200 with IM's envelope (success or an application error).
    Json(Value),
    /// Injected: HTTP 500 with a plain-text body.
    Http500,
    /// Injected: hold the request this long, then close the connection without an answer.
    Hang(Duration),
}

/// The error of an operation a before-callback rejected.
fn rejected(api: Api, command: &str) -> ApiError {
    let code = if api == Api::SendMsg { 20006 } else { 10016 };
    ApiError::new(code, format!("rejected by the app backend's {command}"))
}

/// A before-send callback may replace the body and custom data; an invite callback may refuse some members.
fn apply_before_answer(body: &mut Value, answer: &Value, ctx: &mut Ctx) {
    if let Some(o) = body.as_object_mut() {
        for field in ["MsgBody", "CloudCustomData"] {
            if let Some(v) = answer.get(field) {
                o.insert(field.into(), v.clone());
            }
        }
    }
    if let Some(list) = answer.get("RefusedMembers_Account").and_then(Value::as_array) {
        ctx.refused_members = list.iter().filter_map(Value::as_str).map(str::to_owned).collect();
    }
}

/// The request body as a JSON object; an empty body is refused (IM wants at least `{}`).
fn parse_body(family: Family, body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        // UNCONFIRMED which code an empty body gets; 60003 is the public "body is not valid JSON".
        return Err(ApiError::new(60003, "request body must not be empty (send {} when an API takes no fields)"));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(family.parse_error(), format!("Fail to Parse json data of body: {e}")))?;
    imbridge_core::json::object(&v).map_err(|e| ApiError::new(family.parse_error(), format!("request body is {e}")))?;
    Ok(v)
}

fn load_state(path: &Path) -> Result<State, Error> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(Error::StateRead { path: path.to_owned(), source: e }),
    };
    let mut st: State =
        serde_json::from_slice(&bytes).map_err(|e| Error::StateParse { path: path.to_owned(), source: e })?;
    st.after_load();
    Ok(st)
}

/// Writes to a sibling temporary file and renames it, so a crash never leaves a half-written snapshot.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let err = |source| Error::StateWrite { path: path.to_owned(), source };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

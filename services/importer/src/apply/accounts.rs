//! `imbridge.import.accounts`: `multiaccount_import`, up to 100 accounts per call, gathered across keys.
//!
//! Accounts are keyed per user (`user:<id>`), so every lane holds one account and lane batching cannot
//! combine them. A coalescer task does instead: each lane's `handle` hands its account to the coalescer and
//! waits for that account's own verdict; the coalescer gathers whatever lanes offer into calls of at most 100
//! (waiting up to `accounts_linger_ms` for a short batch to fill) and runs a few calls at once, which the
//! client's token bucket paces at the quota. One call per 100 accounts is what the import's lower bound assumes.
//!
//! `AccountList` (the newer request shape) carries `Nick` and `FaceUrl`, so one call imports both; an account
//! that already exists is updated with them (reference §4.2), which is what a re-run wants. Accounts IM lists
//! in `FailAccounts` are dead-lettered one by one.

use std::sync::Arc;
use std::time::Duration;

use imbridge_core::{Event, EventKind, Failure};
use imbridge_im::Api;
use imbridge_im::types::account::{AccountImportReq, MULTIACCOUNT_IMPORT_MAX, MultiAccountImportReq};
use imbridge_kafka::{Handler, Outcome, Record};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::debug;

use super::{ApplyContext, RecordOutcome, envelope_of, outcome_of, unexpected};

/// One account waiting for a call, and where its verdict goes.
struct Pending {
    account: AccountImportReq,
    reply: oneshot::Sender<Outcome>,
}

/// Applies `import.account` records through the coalescer.
#[derive(Debug)]
pub struct AccountsHandler {
    tx: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("user", &self.account.user_id).finish_non_exhaustive()
    }
}

impl AccountsHandler {
    /// Creates the handler and starts its coalescer (on the current tokio runtime). The coalescer stops when
    /// the handler is dropped.
    pub fn new(ctx: Arc<ApplyContext>) -> Self {
        // Room for every lane to hand over its account without waiting on the channel itself.
        let (tx, rx) = mpsc::channel(4 * MULTIACCOUNT_IMPORT_MAX);
        tokio::spawn(coalesce(ctx, rx));
        Self { tx }
    }
}

impl Handler for AccountsHandler {
    async fn handle(&self, record: &Record) -> Outcome {
        let env = match envelope_of(record) {
            Ok(e) => e,
            Err(o) => return o,
        };
        let Event::ImportAccount(a) = env.event else {
            return unexpected(env.event.kind().as_str(), &record.topic);
        };
        let account = AccountImportReq { user_id: a.user_id.into_string(), nick: a.nick, face_url: a.face_url };
        let (reply, verdict) = oneshot::channel();
        if self.tx.send(Pending { account, reply }).await.is_err() {
            return Outcome::Retry(Failure::new("import_shutdown", "the accounts coalescer has stopped"));
        }
        match verdict.await {
            Ok(o) => o,
            Err(_) => Outcome::Retry(Failure::new("import_shutdown", "the accounts coalescer dropped the call")),
        }
    }
}

/// Gathers accounts into calls until every sender is gone.
async fn coalesce(ctx: Arc<ApplyContext>, mut rx: mpsc::Receiver<Pending>) {
    let calls = Arc::new(Semaphore::new(ctx.config.accounts_max_concurrent_calls.max(1)));
    let linger = Duration::from_millis(ctx.config.accounts_linger_ms);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < MULTIACCOUNT_IMPORT_MAX {
            // Take what is already queued without waiting; wait (up to the linger) only for a short batch.
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(p)) => batch.push(p),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        let Ok(permit) = calls.clone().acquire_owned().await else { return };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            call(&ctx, batch).await;
            drop(permit);
        });
    }
}

/// One `multiaccount_import` call; every waiter gets its own verdict.
async fn call(ctx: &ApplyContext, batch: Vec<Pending>) {
    // The same user twice in one call (a record redelivered while its first copy waits) needs no second slot.
    let mut accounts: Vec<AccountImportReq> = Vec::with_capacity(batch.len());
    for p in &batch {
        if !accounts.iter().any(|a| a.user_id == p.account.user_id) {
            accounts.push(p.account.clone());
        }
    }
    debug!(accounts = accounts.len(), waiters = batch.len(), "multiaccount_import");
    let req = MultiAccountImportReq { accounts: None, account_list: Some(accounts) };
    match ctx.im.multiaccount_import(&req).await {
        Ok(resp) => {
            for p in batch {
                let failed = resp.failed().contains(&p.account.user_id);
                let verdict = if failed {
                    ctx.stats.record(EventKind::ImportAccount, RecordOutcome::Failed);
                    Outcome::DeadLetter(Failure::new(
                        "im_fail_accounts",
                        format!("im {} listed {} in FailAccounts", Api::MultiAccountImport, p.account.user_id),
                    ))
                } else {
                    ctx.stats.record(EventKind::ImportAccount, RecordOutcome::Imported);
                    Outcome::Done
                };
                let _ = p.reply.send(verdict);
            }
        }
        Err(e) => {
            let verdict = outcome_of(&e);
            for p in batch {
                if matches!(verdict, Outcome::DeadLetter(_)) {
                    ctx.stats.record(EventKind::ImportAccount, RecordOutcome::Failed);
                }
                let _ = p.reply.send(verdict.clone());
            }
        }
    }
}

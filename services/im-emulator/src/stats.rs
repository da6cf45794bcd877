//! Counters of what the emulator answered and delivered, served at `GET /emulator/stats` (benchmarks read the
//! 60007 count there) and fault tests read what was dropped, duplicated, delayed and failed. Keys are API keys,
//! callback commands and fault kinds: bounded sets, never user or group ids.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// A copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatsSnapshot {
    /// Requests per API (`openim/sendmsg`; simulated clients as `client:openim/sendmsg`), whatever the answer.
    pub requests: BTreeMap<String, u64>,
    /// Failed answers per error code.
    pub errors: BTreeMap<i64, u64>,
    /// Answers with 60007 (per-API frequency limit).
    pub rate_limited: u64,
    /// Callback deliveries answered with HTTP 2xx, per command (a duplicated callback counts each copy).
    pub callbacks_delivered: BTreeMap<String, u64>,
    /// Callback deliveries that timed out, failed to connect or got a non-2xx answer, per command (never
    /// retried; a duplicated callback counts each copy).
    pub callbacks_failed: BTreeMap<String, u64>,
    /// After-callbacks never sent because of `faults.callback_drop_ratio`, per command.
    pub callbacks_dropped: BTreeMap<String, u64>,
    /// After-callbacks sent twice because of `faults.callback_duplicate_ratio`, per command.
    pub callbacks_duplicated: BTreeMap<String, u64>,
    /// Callback copies held back by a random delay (`faults.callback_delay_max_ms`), per command.
    pub callbacks_delayed: BTreeMap<String, u64>,
    /// Callbacks queued (or waiting out a delay) and not yet attempted; a duplicated one counts once.
    pub callbacks_pending: u64,
    /// Injected REST failures, per API and kind (`http_500`, `timeout`, `60007`).
    pub rest_faults: BTreeMap<String, BTreeMap<String, u64>>,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    inner: Mutex<StatsSnapshot>,
}

impl Stats {
    /// One answered request; `injected` = its failure was an injected fault (not counted as rate limiting).
    pub(crate) fn request(&self, key: &str, error_code: i64, injected: bool) {
        let mut s = self.inner.lock();
        if let Some(n) = s.requests.get_mut(key) {
            *n += 1;
        } else {
            s.requests.insert(key.to_owned(), 1);
        }
        if error_code != 0 {
            *s.errors.entry(error_code).or_default() += 1;
        }
        if error_code == 60007 && !injected {
            s.rate_limited += 1;
        }
    }

    pub(crate) fn callback(&self, command: &str, delivered: bool) {
        let mut s = self.inner.lock();
        let map = if delivered { &mut s.callbacks_delivered } else { &mut s.callbacks_failed };
        *map.entry(command.to_owned()).or_default() += 1;
    }

    /// An after-callback's injected fate: dropped (no copies), duplicated (two), and each delayed copy.
    pub(crate) fn callback_fate(&self, command: &str, copies: &[u64]) {
        let mut s = self.inner.lock();
        match copies.len() {
            0 => *s.callbacks_dropped.entry(command.to_owned()).or_default() += 1,
            1 => {}
            _ => *s.callbacks_duplicated.entry(command.to_owned()).or_default() += 1,
        }
        let delayed = copies.iter().filter(|d| **d > 0).count() as u64;
        if delayed > 0 {
            *s.callbacks_delayed.entry(command.to_owned()).or_default() += delayed;
        }
    }

    /// An injected REST failure.
    pub(crate) fn rest_fault(&self, api: &str, kind: &str) {
        let mut s = self.inner.lock();
        *s.rest_faults.entry(api.to_owned()).or_default().entry(kind.to_owned()).or_default() += 1;
    }

    pub(crate) fn snapshot(&self, pending: u64) -> StatsSnapshot {
        let mut s = self.inner.lock().clone();
        s.callbacks_pending = pending;
        s
    }
}

//! Counters of what the emulator answered and delivered, served at `GET /emulator/stats` (benchmarks read the
//! 60007 count there). Keys are API keys and callback commands: bounded sets, never user or group ids.

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
    /// Callbacks answered with HTTP 2xx, per command.
    pub callbacks_delivered: BTreeMap<String, u64>,
    /// Callbacks that timed out, failed to connect or got a non-2xx answer, per command (never retried).
    pub callbacks_failed: BTreeMap<String, u64>,
    /// Callbacks queued and not yet attempted.
    pub callbacks_pending: u64,
    /// Calls answered "OK" as a duplicate of an earlier one within IM's dedup rules and not stored again, per
    /// API (`openim/sendmsg`, `openim/importmsg`, `group_open_http_svc/send_group_msg`): what IM's dedup hid.
    pub deduplicated: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    inner: Mutex<StatsSnapshot>,
}

impl Stats {
    pub(crate) fn request(&self, key: &str, error_code: i64) {
        let mut s = self.inner.lock();
        if let Some(n) = s.requests.get_mut(key) {
            *n += 1;
        } else {
            s.requests.insert(key.to_owned(), 1);
        }
        if error_code != 0 {
            *s.errors.entry(error_code).or_default() += 1;
        }
        if error_code == 60007 {
            s.rate_limited += 1;
        }
    }

    pub(crate) fn callback(&self, command: &str, delivered: bool) {
        let mut s = self.inner.lock();
        let map = if delivered { &mut s.callbacks_delivered } else { &mut s.callbacks_failed };
        *map.entry(command.to_owned()).or_default() += 1;
    }

    pub(crate) fn snapshot(&self, pending: u64, deduplicated: BTreeMap<String, u64>) -> StatsSnapshot {
        let mut s = self.inner.lock().clone();
        s.callbacks_pending = pending;
        s.deduplicated = deduplicated;
        s
    }
}

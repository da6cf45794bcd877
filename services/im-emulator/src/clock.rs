//! The emulated clock: wall time plus an offset tests can advance, so dedup windows (120 s, 5 min) and
//! retention (7 days) can be crossed without waiting. UserSig expiry and callback `RequestTime` use the real
//! wall clock instead, because the callers and receivers they concern live in real time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall time in Unix milliseconds.
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Wall time shifted by an adjustable offset.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub(crate) fn now_ms(&self) -> u64 {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        wall_ms().saturating_add_signed(offset)
    }

    pub(crate) fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

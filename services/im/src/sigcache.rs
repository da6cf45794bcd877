//! [`UserSigCache`]: the admin UserSig, signed once and renewed before it expires.
//!
//! Signing costs an HMAC, a zlib pass and an allocation; at 200 calls per second that is waste, and IM
//! explicitly allows reusing a signature until near expiry (reference §1.1). Renewal happens at 80% of the
//! lifetime so a request signed just before renewal still has a fifth of the lifetime left in flight.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::usersig;

/// Fraction of the lifetime after which the cached signature is replaced.
const RENEW_AT_FRACTION: f64 = 0.8;

/// A shared, self-renewing UserSig for one identity. Clones share the cached value.
#[derive(Clone)]
pub struct UserSigCache {
    inner: Arc<Inner>,
}

struct Inner {
    sdkappid: u64,
    key: String,
    identifier: String,
    expire_secs: u64,
    cached: Mutex<Option<Cached>>,
}

#[derive(Clone)]
struct Cached {
    sig: Arc<str>,
    renew_at: u64,
    issued_at: u64,
}

impl std::fmt::Debug for UserSigCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSigCache")
            .field("sdkappid", &self.inner.sdkappid)
            .field("identifier", &self.inner.identifier)
            .field("expire_secs", &self.inner.expire_secs)
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it, which only a broken host reports).
pub fn unix_now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl UserSigCache {
    pub fn new(sdkappid: u64, key: impl Into<String>, identifier: impl Into<String>, expire_secs: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                sdkappid,
                key: key.into(),
                identifier: identifier.into(),
                expire_secs,
                cached: Mutex::new(None),
            }),
        }
    }

    /// The identity this cache signs for.
    pub fn identifier(&self) -> &str {
        &self.inner.identifier
    }

    /// The current signature, signing a new one if there is none or it reached 80% of its lifetime.
    pub fn get(&self) -> Arc<str> {
        self.get_at(unix_now_secs())
    }

    /// [`get`](Self::get) at an explicit time (tests, and callers with their own clock).
    pub fn get_at(&self, now_secs: u64) -> Arc<str> {
        // A poisoned lock only means another thread panicked mid-update; the Option inside is still valid.
        let mut guard = self.inner.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = guard.as_ref() {
            // `now < issued_at` means the clock went back: re-sign rather than trust an odd-looking value.
            if now_secs < c.renew_at && now_secs >= c.issued_at {
                return c.sig.clone();
            }
        }
        let inner = &self.inner;
        let sig: Arc<str> =
            usersig::generate(inner.sdkappid, &inner.key, &inner.identifier, inner.expire_secs, now_secs).into();
        let renew_after = ((inner.expire_secs as f64) * RENEW_AT_FRACTION) as u64;
        *guard = Some(Cached {
            sig: sig.clone(),
            renew_at: now_secs.saturating_add(renew_after.max(1)),
            issued_at: now_secs,
        });
        sig
    }

    /// Forgets the cached signature, e.g. after IM answered 70001 (expired) because of clock skew.
    pub fn invalidate(&self) {
        *self.inner.cached.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_then_renews_at_80_percent() {
        let cache = UserSigCache::new(1_400_000_000, "key", "administrator", 1000);
        let t = 1_700_000_000;
        let a = cache.get_at(t);
        assert!(Arc::ptr_eq(&a, &cache.clone().get_at(t + 799)), "clones share; reused before 80%");
        let b = cache.get_at(t + 800);
        assert!(!Arc::ptr_eq(&a, &b), "renewed at 80%");
        let claims = usersig::verify(&b, 1_400_000_000, "key", "administrator", t + 800).expect("valid");
        assert_eq!(claims.time, t + 800);
        // Clock going backwards re-signs.
        let c = cache.get_at(t);
        assert_eq!(usersig::decode(&c).expect("decodes").0.time, t);
        cache.invalidate();
        let d = cache.get_at(t);
        assert!(!Arc::ptr_eq(&c, &d));
    }
}

//! Which conversations had activity: the [`Handler`] the service's consumer group runs on both event topics,
//! and the schedule of checks it feeds.
//!
//! Every event on `imbridge.legacy.events` and `imbridge.im.events` is keyed by its conversation; each one
//! (re)arms that conversation's check to `check_delay` after it, so a conversation is compared once it has been
//! quiet long enough for sync in flight to land. Nothing is applied: a record is done as soon as it is noted,
//! so the group's committed offsets only say how far activity was seen. Checks pending when a process dies are
//! covered by the next process's start-up check of the recent window.
//!
//! Records reconcile produced itself (`imbridge.origin: reconcile`) arm nothing: the service schedules its
//! own verification of a repair, a bounded number of times, so a repair that never lands cannot loop.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use imbridge_core::ConversationKey;
use imbridge_kafka::{Handler, Outcome, Record};

use crate::reconciler::{ORIGIN_HEADER, ORIGIN_RECONCILE};

/// Told the new assignment after every change.
type OnAssignment = Box<dyn Fn(&BTreeSet<(String, i32)>) + Send + Sync>;

/// When a conversation is due, and how many verification rounds led to it (0: real activity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Due {
    at: Instant,
    round: u8,
}

/// The consumer's handler and the schedule it fills.
pub struct Activity {
    delay: Duration,
    pending: Mutex<HashMap<ConversationKey, Due>>,
    assigned: Mutex<BTreeSet<(String, i32)>>,
    /// Told the new assignment after every change (quota share, readiness).
    on_assignment: OnAssignment,
}

impl std::fmt::Debug for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activity").field("delay", &self.delay).finish_non_exhaustive()
    }
}

impl Activity {
    pub fn new(delay: Duration, on_assignment: impl Fn(&BTreeSet<(String, i32)>) + Send + Sync + 'static) -> Self {
        Self {
            delay,
            pending: Mutex::new(HashMap::new()),
            assigned: Mutex::new(BTreeSet::new()),
            on_assignment: Box::new(on_assignment),
        }
    }

    /// Activity in `key` now: its check moves to `delay` from now.
    pub fn touch(&self, key: ConversationKey) {
        self.touch_at(key, Instant::now());
    }

    fn touch_at(&self, key: ConversationKey, now: Instant) {
        let at = now + self.delay;
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(key, Due { at, round: 0 });
    }

    /// A check of `key` in `delay`, as verification round `round`; a check already pending is kept.
    pub fn verify(&self, key: ConversationKey, round: u8) {
        self.verify_at(key, round, Instant::now());
    }

    fn verify_at(&self, key: ConversationKey, round: u8, now: Instant) {
        let at = now + self.delay;
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_insert(Due { at, round });
    }

    /// Up to `max` conversations due now, with their verification round, oldest first.
    pub fn take_due(&self, max: usize) -> Vec<(ConversationKey, u8)> {
        self.take_due_at(max, Instant::now())
    }

    fn take_due_at(&self, max: usize, now: Instant) -> Vec<(ConversationKey, u8)> {
        let mut m = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut due: Vec<(Instant, ConversationKey)> =
            m.iter().filter(|(_, d)| d.at <= now).map(|(k, d)| (d.at, k.clone())).collect();
        due.sort();
        due.truncate(max);
        due.into_iter().filter_map(|(_, k)| m.remove(&k).map(|d| (k, d.round))).collect()
    }

    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The partitions of `topic` this instance holds.
    pub fn partitions_of(&self, topic: &str) -> BTreeSet<i32> {
        let a = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
        a.iter().filter(|(t, _)| t == topic).map(|(_, p)| *p).collect()
    }

    fn changed(&self, add: &[(String, i32)], remove: &[(String, i32)]) {
        let now = {
            let mut a = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
            a.extend(add.iter().cloned());
            for tp in remove {
                a.remove(tp);
            }
            a.clone()
        };
        (self.on_assignment)(&now);
    }
}

impl Handler for Activity {
    async fn handle(&self, record: &Record) -> Outcome {
        if record.header_str(ORIGIN_HEADER) == Some(ORIGIN_RECONCILE) {
            return Outcome::Done;
        }
        // A key that is no conversation (or none at all) has nothing to check; it is not ours to dead-letter.
        if let Some(key) = record.key_str().and_then(|k| ConversationKey::parse(k).ok())
            && !key.as_str().starts_with("user:")
        {
            self.touch(key);
        }
        Outcome::Done
    }

    fn partitions_assigned(&self, partitions: &[(String, i32)]) {
        self.changed(partitions, &[]);
    }

    fn partitions_revoked(&self, partitions: &[(String, i32)]) {
        self.changed(&[], partitions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> ConversationKey {
        ConversationKey::parse(k).expect("key")
    }

    #[test]
    fn a_check_waits_for_quiet_and_activity_re_arms_it() {
        // On an explicit clock: a loaded machine's sleeps must not decide the outcome.
        let a = Activity::new(Duration::from_millis(40), |_| {});
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        a.touch_at(key("c2c:ann:bob"), at(0));
        a.verify_at(key("group:g"), 2, at(0));
        a.verify_at(key("group:g"), 3, at(10));
        assert!(a.take_due_at(10, at(39)).is_empty(), "not quiet long enough");
        a.touch_at(key("c2c:ann:bob"), at(25));
        assert_eq!(
            a.take_due_at(10, at(50)),
            [(key("group:g"), 2)],
            "the touched one moved later; verify kept the first"
        );
        assert!(a.take_due_at(10, at(64)).is_empty());
        assert_eq!(a.take_due_at(10, at(65)), [(key("c2c:ann:bob"), 0)]);
        assert_eq!(a.pending(), 0);
        // Oldest first, at most `max`.
        a.touch_at(key("c2c:b:c"), at(100));
        a.touch_at(key("c2c:a:b"), at(90));
        assert_eq!(a.take_due_at(1, at(200)), [(key("c2c:a:b"), 0)]);
        assert_eq!(a.take_due_at(10, at(200)), [(key("c2c:b:c"), 0)]);
    }
}

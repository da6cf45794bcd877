//! Which offsets of each assigned partition are finished, and therefore which offset may be committed.
//!
//! Invariant: the position stored for a partition is the lowest offset that was dispatched and is not yet
//! finished, or — when nothing is outstanding — one past the highest dispatched offset. Offsets of a
//! partition are dispatched in increasing order, so every offset below the stored position was finished
//! (handled or dead-lettered). Gaps in Kafka offsets (compaction, transaction markers) are harmless: only
//! dispatched offsets are ever outstanding.
//!
//! A partition that is revoked and assigned again gets a new generation; jobs of the old generation still
//! sitting in a lane are skipped, never finished, so they cannot move the new generation's position.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A topic-partition.
pub type Tp = (String, i32);

#[derive(Debug)]
struct PartitionState {
    generation: u64,
    /// Dispatched, not finished.
    outstanding: BTreeSet<i64>,
    /// Jobs inside the handler right now (drain waits for these only).
    running: usize,
    /// One past the highest dispatched offset.
    next: Option<i64>,
    /// Last position handed to librdkafka's offset store.
    stored: Option<i64>,
}

impl PartitionState {
    fn position(&self) -> Option<i64> {
        self.outstanding.first().copied().or(self.next)
    }
}

/// Shared between the poll loop, the lanes and the rebalance callback.
#[derive(Debug, Default)]
pub struct Tracker {
    inner: Mutex<Inner>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Inner {
    partitions: HashMap<Tp, PartitionState>,
    next_generation: u64,
}

impl Tracker {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain bookkeeping behind; keep going rather than poison
        // every later caller.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts tracking newly assigned partitions; returns how many were new.
    pub fn assign(&self, tps: impl IntoIterator<Item = Tp>) -> usize {
        let mut g = self.lock();
        let mut added = 0;
        for tp in tps {
            if !g.partitions.contains_key(&tp) {
                g.next_generation += 1;
                let generation = g.next_generation;
                g.partitions.insert(
                    tp,
                    PartitionState { generation, outstanding: BTreeSet::new(), running: 0, next: None, stored: None },
                );
                added += 1;
            }
        }
        added
    }

    /// The current generation of an assigned partition.
    pub fn generation(&self, tp: &Tp) -> Option<u64> {
        self.lock().partitions.get(tp).map(|p| p.generation)
    }

    /// Records that `offset` was handed to a lane.
    pub fn dispatched(&self, tp: &Tp, generation: u64, offset: i64) -> bool {
        let mut g = self.lock();
        match g.partitions.get_mut(tp) {
            Some(p) if p.generation == generation => {
                p.outstanding.insert(offset);
                p.next = Some(p.next.map_or(offset + 1, |n| n.max(offset + 1)));
                true
            }
            _ => false,
        }
    }

    /// A lane is about to run a job: only if its partition is still ours in the same generation.
    pub fn start(&self, tp: &Tp, generation: u64) -> bool {
        let mut g = self.lock();
        match g.partitions.get_mut(tp) {
            Some(p) if p.generation == generation => {
                p.running += 1;
                true
            }
            _ => false,
        }
    }

    /// A running job ended; `finished` says whether its offset may be committed past.
    pub fn end(&self, tp: &Tp, generation: u64, offset: i64, finished: bool) {
        let mut g = self.lock();
        if let Some(p) = g.partitions.get_mut(tp)
            && p.generation == generation
        {
            p.running = p.running.saturating_sub(1);
            if finished {
                p.outstanding.remove(&offset);
            }
        }
        drop(g);
        self.changed.notify_all();
    }

    /// Positions that changed since they were last stored; marks them stored.
    pub fn take_unstored(&self) -> Vec<(Tp, i64)> {
        let mut g = self.lock();
        let mut out = Vec::new();
        for (tp, p) in g.partitions.iter_mut() {
            if let Some(pos) = p.position()
                && p.stored != Some(pos)
            {
                p.stored = Some(pos);
                out.push((tp.clone(), pos));
            }
        }
        out
    }

    /// Positions of the given partitions (those with anything dispatched).
    pub fn positions(&self, tps: &[Tp]) -> Vec<(Tp, i64)> {
        let g = self.lock();
        tps.iter()
            .filter_map(|tp| g.partitions.get(tp).and_then(|p| p.position()).map(|pos| (tp.clone(), pos)))
            .collect()
    }

    /// Waits until no job of `tps` is running, or `timeout`. Returns whether the drain completed.
    pub fn wait_idle(&self, tps: &[Tp], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            let busy = tps.iter().any(|tp| g.partitions.get(tp).is_some_and(|p| p.running > 0));
            if !busy {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = match self.changed.wait_timeout(g, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Whether any job of `tps` is running.
    pub fn any_running(&self, tps: &[Tp]) -> bool {
        let g = self.lock();
        tps.iter().any(|tp| g.partitions.get(tp).is_some_and(|p| p.running > 0))
    }

    /// Stops tracking revoked partitions.
    pub fn remove(&self, tps: &[Tp]) {
        let mut g = self.lock();
        for tp in tps {
            g.partitions.remove(tp);
        }
    }

    pub fn assigned(&self) -> Vec<Tp> {
        let mut v: Vec<Tp> = self.lock().partitions.keys().cloned().collect();
        v.sort();
        v
    }

    /// Outstanding (dispatched, unfinished) records over all partitions.
    pub fn outstanding(&self) -> usize {
        self.lock().partitions.values().map(|p| p.outstanding.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp() -> Tp {
        ("t".to_owned(), 0)
    }

    #[test]
    fn position_is_lowest_unfinished() {
        let t = Tracker::default();
        t.assign([tp()]);
        let g = t.generation(&tp()).expect("assigned");
        for o in [10, 11, 12, 15] {
            assert!(t.dispatched(&tp(), g, o));
        }
        assert_eq!(t.take_unstored(), vec![(tp(), 10)]);
        for o in [11, 12] {
            assert!(t.start(&tp(), g));
            t.end(&tp(), g, o, true);
        }
        // 10 is still outstanding: nothing above it may be committed.
        assert_eq!(t.take_unstored(), vec![]);
        assert!(t.start(&tp(), g));
        t.end(&tp(), g, 10, true);
        assert_eq!(t.take_unstored(), vec![(tp(), 15)]);
        assert!(t.start(&tp(), g));
        t.end(&tp(), g, 15, true);
        assert_eq!(t.take_unstored(), vec![(tp(), 16)]);
    }

    #[test]
    fn unfinished_job_holds_position() {
        let t = Tracker::default();
        t.assign([tp()]);
        let g = t.generation(&tp()).expect("assigned");
        t.dispatched(&tp(), g, 0);
        t.dispatched(&tp(), g, 1);
        assert!(t.start(&tp(), g));
        t.end(&tp(), g, 0, false);
        t.start(&tp(), g);
        t.end(&tp(), g, 1, true);
        assert_eq!(t.positions(&[tp()]), vec![(tp(), 0)]);
    }

    #[test]
    fn stale_generation_is_ignored() {
        let t = Tracker::default();
        t.assign([tp()]);
        let g1 = t.generation(&tp()).expect("assigned");
        t.dispatched(&tp(), g1, 5);
        t.remove(&[tp()]);
        t.assign([tp()]);
        let g2 = t.generation(&tp()).expect("assigned");
        assert_ne!(g1, g2);
        assert!(!t.start(&tp(), g1));
        assert!(!t.dispatched(&tp(), g1, 6));
        assert_eq!(t.positions(&[tp()]), vec![]);
    }

    #[test]
    fn wait_idle_sees_running_jobs() {
        let t = std::sync::Arc::new(Tracker::default());
        t.assign([tp()]);
        let g = t.generation(&tp()).expect("assigned");
        t.dispatched(&tp(), g, 0);
        assert!(t.start(&tp(), g));
        assert!(!t.wait_idle(&[tp()], Duration::from_millis(20)));
        let t2 = t.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            t2.end(&("t".to_owned(), 0), g, 0, true);
        });
        assert!(t.wait_idle(&[tp()], Duration::from_secs(5)));
        h.join().expect("thread");
    }
}

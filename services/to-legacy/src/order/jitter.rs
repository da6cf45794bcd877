//! The adaptive reorder window: how long a 1:1 message or group change must be held so that an earlier one still
//! in flight goes first. C2C `MsgSeq` is caller-chosen (no per-conversation counter reveals a gap), so nothing
//! proves a 1:1 lane contiguous; what can be measured is how late IM's deliveries run behind each other. Like a
//! VoIP jitter buffer, the window follows that measure instead of a fixed worst case.
//!
//! What is measured is **lateness**: a record that reached imbridge after another one that IM made later is late
//! by the difference of their arrivals (ingest's receipt times; IM's times are only compared with each other,
//! so neither clock's offset matters, and a queue that delays everything alike — IM's delivery queue during a
//! burst — is no lateness at all). Each record is compared with the [`RECENT`] records noted before it, across
//! conversations (IM's delivery is one channel for all of them, so every conversation's records tell about it).
//! The window is the largest lateness of the last [`HORIZON_SECS`] seconds, times [`SAFETY`], plus the configured
//! floor, capped by the configured maximum. Until [`WARMUP`] records were seen (a fresh instance knows nothing of
//! IM's delivery yet) the maximum applies.
//!
//! What it cannot see: a delay that has never happened in the horizon. A single callback delayed far more than
//! every other one in the last minute is applied after the later records it was meant to precede (late, never
//! lost), exactly as one delayed beyond a fixed window is. A floor equal to the maximum keeps the fixed window.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Records each record is compared with.
const RECENT: usize = 256;
/// Seconds a lateness counts for.
const HORIZON_SECS: usize = 30;
/// Records seen before the measure replaces the maximum.
const WARMUP: u64 = 64;
/// Margin over the largest lateness seen, as a ratio (3/2).
const SAFETY: (i64, i64) = (3, 2);

/// Lateness of IM's deliveries as the events one instance applies show it; shared by its lanes.
#[derive(Debug, Default)]
pub struct Jitter {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The last [`RECENT`] records noted: (IM's time, arrival), oldest first.
    recent: VecDeque<(i64, i64)>,
    seen: u64,
    /// Per wall-clock second (ring of [`HORIZON_SECS`]): (second, largest lateness).
    buckets: Vec<(i64, i64)>,
}

impl Jitter {
    /// Notes one record: IM's time of the event and when ingest received it (both ms); `now_ms` is the wall clock.
    pub fn observe(&self, time_ms: i64, arrived_ms: i64, now_ms: i64) {
        let Ok(mut s) = self.state.lock() else { return };
        s.observe(time_ms, arrived_ms, now_ms);
    }

    /// The window to hold timed events for now, in ms, between `floor_ms` and `max_ms`.
    pub fn window_ms(&self, floor_ms: u64, max_ms: u64, now_ms: i64) -> u64 {
        let Ok(s) = self.state.lock() else { return max_ms };
        if s.seen < WARMUP {
            return max_ms;
        }
        let late = s.largest_lateness(now_ms).max(0);
        let w = late.saturating_mul(SAFETY.0) / SAFETY.1;
        (floor_ms.saturating_add(w as u64)).clamp(floor_ms.min(max_ms), max_ms)
    }
}

impl State {
    fn observe(&mut self, time_ms: i64, arrived_ms: i64, now_ms: i64) {
        // Records IM made after this one that reached imbridge before it: the earliest of them sets the lateness.
        let overtaken_at = self.recent.iter().filter(|(t, a)| *t > time_ms && *a <= arrived_ms).map(|(_, a)| *a).min();
        let late = overtaken_at.map_or(0, |a| arrived_ms - a);
        self.seen += 1;
        self.recent.push_back((time_ms, arrived_ms));
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        let sec = now_ms.div_euclid(1000);
        if self.buckets.is_empty() {
            self.buckets = vec![(i64::MIN, 0); HORIZON_SECS];
        }
        let slot = &mut self.buckets[sec.rem_euclid(HORIZON_SECS as i64) as usize];
        if slot.0 != sec {
            *slot = (sec, 0);
        }
        slot.1 = slot.1.max(late);
    }

    fn largest_lateness(&self, now_ms: i64) -> i64 {
        let sec = now_ms.div_euclid(1000);
        self.buckets
            .iter()
            .filter(|(s, _)| sec.saturating_sub(*s) < HORIZON_SECS as i64)
            .map(|(_, e)| *e)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_instance_holds_the_maximum() {
        let j = Jitter::default();
        assert_eq!(j.window_ms(20, 1000, 0), 1000);
        for i in 0..WARMUP as i64 - 1 {
            j.observe(i * 10, i * 10 + 5 - i % 2 * 15, i * 10);
        }
        assert_eq!(j.window_ms(20, 1000, 1000), 1000, "still warming up");
    }

    #[test]
    fn in_order_delivery_holds_only_the_floor_whatever_the_queueing() {
        let j = Jitter::default();
        // IM's clock 70 s ahead of ours; a queue builds up (each delivery 1 ms later than the last), then drains.
        for i in 0..500i64 {
            let t = 70_000 + i * 10;
            let queued = if i < 250 { i } else { 500 - i };
            j.observe(t, i * 10 + 3 + queued, i * 10);
        }
        assert_eq!(j.window_ms(20, 1000, 5_000), 20);
    }

    #[test]
    fn overtaken_deliveries_widen_it_for_the_horizon_then_it_shrinks_again() {
        let j = Jitter::default();
        for i in 0..200i64 {
            j.observe(i * 10, i * 10 + 2, i * 10);
        }
        // Made at 1,995 ms, it arrives after the records of 2,000 and 2,010 ms (at 2,002 and 2,012): 30 ms late.
        j.observe(2_000, 2_002, 2_002);
        j.observe(2_010, 2_012, 2_012);
        j.observe(1_995, 2_032, 2_032);
        assert_eq!(j.window_ms(20, 1000, 2_040), 20 + 30 * 3 / 2);
        assert_eq!(j.window_ms(20, 40, 2_040), 40, "capped by the maximum");
        let later = 2_040 + (HORIZON_SECS as i64 + 1) * 1000;
        for i in 0..10i64 {
            let t = later + i * 10;
            j.observe(t, t + 2, t);
        }
        assert_eq!(j.window_ms(20, 1000, later + 100), 20);
    }

    #[test]
    fn a_floor_equal_to_the_maximum_is_a_fixed_window() {
        let j = Jitter::default();
        for i in 0..100i64 {
            j.observe(i, i, i);
        }
        assert_eq!(j.window_ms(500, 500, 100), 500);
    }
}

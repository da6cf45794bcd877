//! The `SendTime` of each imported group message: IM's rule and imbridge's deterministic treatment.
//!
//! IM accepts an imported group message only if its `SendTime` (Unix seconds) is strictly greater than the
//! group's creation time and than the group's latest message (reference §6.3). Legacy systems keep
//! milliseconds, so several messages of one group often share a second. imbridge keeps legacy order and moves
//! each message to the first second that satisfies the rule:
//!
//! ```text
//! send_time(1) = max(sec(sent_at(1)), created + 1)
//! send_time(k) = max(sec(sent_at(k)), send_time(k−1) + 1)
//! ```
//!
//! so a burst of n same-second messages occupies n consecutive seconds (and pushes later messages along only
//! while they would collide). It is a pure function of the group's legacy messages in legacy order, computed
//! once by the importer and carried on each record (`imbridge.import.send_time`); `imbridge verify` computes
//! the same function from the export to know which time IM must show for each message. 1:1 messages need no
//! such treatment: IM orders same-second 1:1 messages by `MsgSeq`, which the plan assigns in legacy order.

/// Folds a group's messages (legacy order) into their SendTimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendTimes {
    previous: i64,
}

impl SendTimes {
    /// Starts a group created at `created_secs`.
    pub fn new(created_secs: i64) -> Self {
        Self { previous: created_secs }
    }

    /// The SendTime of the next message, sent at `sent_secs` in the legacy system.
    pub fn next(&mut self, sent_secs: i64) -> i64 {
        let t = sent_secs.max(self.previous.saturating_add(1));
        self.previous = t;
        t
    }
}

/// The SendTimes of a whole group (legacy order).
pub fn group_send_times(created_secs: i64, sent_secs: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut s = SendTimes::new(created_secs);
    sent_secs.into_iter().map(|t| s.next(t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_second_messages_spread_forward_and_stay_strictly_increasing() {
        assert_eq!(group_send_times(100, [105, 105, 105, 106, 110, 110]), vec![105, 106, 107, 108, 110, 111]);
        // A message in the creation second moves past it.
        assert_eq!(group_send_times(100, [100, 101]), vec![101, 102]);
        // Distinct seconds are untouched.
        assert_eq!(group_send_times(0, [5, 9, 12]), vec![5, 9, 12]);
        let times = group_send_times(7, [8; 50]);
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(times.last(), Some(&57));
    }
}

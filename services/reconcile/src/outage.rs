//! Outages from ingest's heartbeats (`imbridge.status`, key `ingest:<instance>`), free of I/O.
//!
//! IM sends each callback once, so whatever it sent while ingest was down, unreachable, or refusing callbacks
//! (spool full) is lost and only reconciliation can find it. The beats say when that may have happened:
//!
//! | seen | outage window |
//! | --- | --- |
//! | a beat from a new process (`started_at` changed) | its `down_since` (the previous process's last beat on disk) → `started_at`; without it, the previous beat we saw → `started_at` |
//! | two beats of one process further apart than the gap | previous beat → this beat (Kafka was away: beats could not be written) |
//! | `callbacks_refused` or `kafka_failures` grew between two beats | previous beat → this beat |
//! | no beat from an instance for longer than the gap | its last beat → now (reported once; its return reports again) |
//!
//! Beats and windows older than the lookback are ignored: a reconcile process starting late would otherwise
//! re-check every old restart still in the compacted topic; older windows are the slow sweep's job.

use std::collections::HashMap;

use imbridge_core::TimestampMs;
use imbridge_core::status::IngestBeat;
use serde::Serialize;

/// Why a window is suspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// An ingest process started after a previous one stopped or died.
    Restart,
    /// Beats of one process stopped for longer than the gap and resumed (Kafka away, process stalled).
    Gap,
    /// ingest answered IM callbacks with an error (spool full or failing).
    CallbacksRefused,
    /// ingest could not write to Kafka.
    KafkaFailures,
    /// No beat from an instance for longer than the gap, so far.
    Silent,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Restart => "restart",
            Cause::Gap => "gap",
            Cause::CallbacksRefused => "callbacks_refused",
            Cause::KafkaFailures => "kafka_failures",
            Cause::Silent => "silent",
        }
    }
}

/// A time window in which IM callbacks may have been lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outage {
    pub instance: String,
    pub from: TimestampMs,
    pub to: TimestampMs,
    pub cause: Cause,
}

#[derive(Debug)]
struct Instance {
    last: IngestBeat,
    /// A silent outage was reported for `last`.
    silent_reported: bool,
}

/// Follows the beats of every ingest instance.
#[derive(Debug)]
pub struct Detector {
    gap_ms: i64,
    lookback_ms: i64,
    instances: HashMap<String, Instance>,
}

impl Detector {
    /// `gap_ms`: longer than this between beats is an outage (a few beat intervals); `lookback_ms`: older
    /// windows are ignored.
    pub fn new(gap_ms: i64, lookback_ms: i64) -> Self {
        Self { gap_ms, lookback_ms, instances: HashMap::new() }
    }

    /// One beat, read at `now`; the outages it reveals.
    pub fn beat(&mut self, b: IngestBeat, now: TimestampMs) -> Vec<Outage> {
        let horizon = now.0 - self.lookback_ms;
        let mut out = Vec::new();
        let window =
            |from: TimestampMs, to: TimestampMs, cause| Outage { instance: b.instance.clone(), from, to, cause };
        match self.instances.get(&b.instance) {
            None => {
                // First beat we see of this instance: only a recent restart says something.
                if let Some(t) = b.down_since
                    && b.started_at.0 >= horizon
                {
                    out.push(window(t, b.started_at, Cause::Restart));
                }
            }
            Some(prev) if prev.last.started_at != b.started_at => {
                if b.started_at.0 < prev.last.started_at.0 {
                    return out; // a late beat of an older process
                }
                let from = b.down_since.unwrap_or(prev.last.at);
                out.push(window(from, b.started_at, Cause::Restart));
            }
            Some(prev) => {
                let p = &prev.last;
                if b.at.0 <= p.at.0 {
                    return out; // a repeat
                }
                let cause = if b.callbacks_refused > p.callbacks_refused {
                    Some(Cause::CallbacksRefused)
                } else if b.at.0 - p.at.0 > self.gap_ms {
                    Some(Cause::Gap)
                } else if b.kafka_failures > p.kafka_failures {
                    Some(Cause::KafkaFailures)
                } else {
                    None
                };
                if let Some(c) = cause {
                    out.push(window(p.at, b.at, c));
                }
            }
        }
        out.retain(|o| o.to.0 >= horizon);
        self.instances.insert(b.instance.clone(), Instance { last: b, silent_reported: false });
        out
    }

    /// Instances silent for longer than the gap at `now`, each reported once per silence.
    pub fn tick(&mut self, now: TimestampMs) -> Vec<Outage> {
        let horizon = now.0 - self.lookback_ms;
        let mut out = Vec::new();
        for (name, i) in &mut self.instances {
            if !i.silent_reported && now.0 - i.last.at.0 > self.gap_ms {
                i.silent_reported = true;
                if i.last.at.0 >= horizon {
                    out.push(Outage { instance: name.clone(), from: i.last.at, to: now, cause: Cause::Silent });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(at: i64, started: i64) -> IngestBeat {
        IngestBeat {
            instance: "i".into(),
            at: TimestampMs(at),
            started_at: TimestampMs(started),
            down_since: None,
            callbacks_refused: 0,
            kafka_failures: 0,
        }
    }

    #[test]
    fn each_signal_becomes_one_window() {
        let mut d = Detector::new(15_000, 3_600_000);
        let now = TimestampMs(1_100_000);
        assert!(d.beat(beat(1_000_000, 900_000), now).is_empty());
        assert!(d.beat(beat(1_005_000, 900_000), now).is_empty(), "regular beats say nothing");
        // Killed, restarted: the new process reports its predecessor's last beat.
        let mut b = beat(1_040_000, 1_038_000);
        b.down_since = Some(TimestampMs(1_005_000));
        let o = d.beat(b.clone(), now);
        assert_eq!(
            o,
            [Outage {
                instance: "i".into(),
                from: TimestampMs(1_005_000),
                to: TimestampMs(1_038_000),
                cause: Cause::Restart
            }]
        );
        assert!(d.beat(b.clone(), now).is_empty(), "a repeat says nothing");
        // Kafka away for 20 s: the beats resume with a gap and counted failures.
        let mut late = beat(1_065_000, 1_038_000);
        late.kafka_failures = 3;
        let o = d.beat(late.clone(), now);
        assert_eq!((o[0].from, o[0].to, o[0].cause), (TimestampMs(1_040_000), TimestampMs(1_065_000), Cause::Gap));
        // Refused callbacks win over everything else.
        let mut refused = beat(1_070_000, 1_038_000);
        refused.kafka_failures = 3;
        refused.callbacks_refused = 2;
        assert_eq!(d.beat(refused, now)[0].cause, Cause::CallbacksRefused);
        // Silence is reported once, at the first tick past the gap.
        assert!(d.tick(TimestampMs(1_080_000)).is_empty());
        let o = d.tick(TimestampMs(1_090_000));
        assert_eq!((o[0].from, o[0].cause), (TimestampMs(1_070_000), Cause::Silent));
        assert!(d.tick(TimestampMs(1_095_000)).is_empty());
    }

    #[test]
    fn old_news_is_ignored() {
        let mut d = Detector::new(15_000, 60_000);
        let now = TimestampMs(10_000_000);
        let mut b = beat(1_000, 500);
        b.down_since = Some(TimestampMs(100));
        assert!(d.beat(b, now).is_empty(), "a restart long ago is the sweep's job");
        assert!(d.tick(now).is_empty(), "a long-gone instance is not an outage now");
    }
}

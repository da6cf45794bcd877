//! Per-item results of one batch call, kept for the records after the first failure.
//!
//! A lane batch ([`imbridge_kafka::Handler::handle_batch`]) can report only "the first `done` records finished,
//! and this is the verdict on the next one". When IM fails item `i` of a call but accepts the items after it,
//! the handler answers `done = i, next = DeadLetter(i)` and parks the verdicts of items `i+1..` here; the runner
//! re-offers those records, and the handler finishes them from this cache without calling IM again (which, for
//! `import_group_msg`, would fail: their SendTime is no longer after the group's latest message).
//!
//! Keyed by the record's position (topic, partition, offset), so an entry can never answer for another record.
//! Entries of revoked partitions are dropped (the next owner starts from the committed offset).

use std::collections::HashMap;
use std::sync::Mutex;

use imbridge_core::Envelope;
use imbridge_kafka::{BatchOutcome, Outcome, Record};

use super::envelope_of;

type Position = (String, i32, i64);

fn position(r: &Record) -> Position {
    (r.topic.clone(), r.partition, r.offset)
}

/// Verdicts waiting for their records to be re-offered.
#[derive(Debug, Default)]
pub struct SettledCache {
    entries: Mutex<HashMap<Position, Outcome>>,
}

impl SettledCache {
    /// Remembers the verdict of a record that will be offered again.
    pub fn put(&self, record: &Record, outcome: Outcome) {
        if let Ok(mut m) = self.entries.lock() {
            m.insert(position(record), outcome);
        }
    }

    /// Finishes the leading records of `records` that already have a verdict: `Some` when at least one did
    /// (the caller returns it), `None` when the first record still needs an IM call.
    pub fn take_leading(&self, records: &[&Record]) -> Option<BatchOutcome> {
        let Ok(mut m) = self.entries.lock() else { return None };
        let mut done = 0;
        for r in records {
            match m.remove(&position(r)) {
                Some(Outcome::Done) => done += 1,
                Some(other) => return Some(BatchOutcome { done, next: Some(other) }),
                None => break,
            }
        }
        (done > 0).then_some(BatchOutcome { done, next: None })
    }

    /// The start of every batch handler: the leading records that already have a verdict are answered from
    /// here; otherwise the first record and its envelope, which says what the batch is. `Err` is the handler's
    /// answer.
    pub fn first_unsettled<'r>(&self, records: &[&'r Record]) -> Result<(&'r Record, Envelope), BatchOutcome> {
        if let Some(out) = self.take_leading(records) {
            return Err(out);
        }
        let Some(first) = records.first() else { return Err(BatchOutcome { done: 0, next: None }) };
        let env = envelope_of(first).map_err(|o| BatchOutcome { done: 0, next: Some(o) })?;
        Ok((first, env))
    }

    /// Forgets everything about partitions this instance no longer owns.
    pub fn drop_partitions(&self, partitions: &[(String, i32)]) {
        if let Ok(mut m) = self.entries.lock() {
            m.retain(|(t, p, _), _| !partitions.iter().any(|(pt, pp)| pt == t && pp == p));
        }
    }
}

/// Turns per-item verdicts of one call (in record order) into the runner's answer, parking the verdicts after
/// the first failure in `cache`.
pub fn batch_outcome(cache: &SettledCache, records: &[&Record], verdicts: Vec<Outcome>) -> BatchOutcome {
    let first_failure = verdicts.iter().position(|v| *v != Outcome::Done);
    match first_failure {
        None => BatchOutcome::all(verdicts.len()),
        Some(i) => {
            let mut verdicts = verdicts.into_iter();
            let failed = verdicts.nth(i).unwrap_or(Outcome::Done);
            for (r, v) in records.iter().skip(i + 1).zip(verdicts) {
                cache.put(r, v);
            }
            BatchOutcome { done: i, next: Some(failed) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imbridge_core::Failure;

    fn rec(offset: i64) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset,
            key: None,
            payload: None,
            timestamp_ms: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn failure_mid_batch_parks_the_rest() {
        let cache = SettledCache::default();
        let rs: Vec<Record> = (0..5).map(rec).collect();
        let refs: Vec<&Record> = rs.iter().collect();
        let dl = Outcome::DeadLetter(Failure::new("im_10004", "bad time"));
        let out =
            batch_outcome(&cache, &refs, vec![Outcome::Done, dl.clone(), Outcome::Done, dl.clone(), Outcome::Done]);
        assert_eq!(out, BatchOutcome { done: 1, next: Some(dl.clone()) });
        // The runner re-offers records 2.. : 2 is done, 3 failed.
        assert_eq!(cache.take_leading(&refs[2..]), Some(BatchOutcome { done: 1, next: Some(dl) }));
        assert_eq!(cache.take_leading(&refs[4..]), Some(BatchOutcome { done: 1, next: None }));
        assert_eq!(cache.take_leading(&refs[4..]), None, "each verdict answers once");
    }

    #[test]
    fn all_done_and_revoke() {
        let cache = SettledCache::default();
        let rs: Vec<Record> = (0..3).map(rec).collect();
        let refs: Vec<&Record> = rs.iter().collect();
        assert_eq!(batch_outcome(&cache, &refs, vec![Outcome::Done; 3]), BatchOutcome::all(3));
        cache.put(&rs[0], Outcome::Done);
        cache.drop_partitions(&[("t".into(), 0)]);
        assert_eq!(cache.take_leading(&refs), None);
    }
}

//! The producing checkpoint: one record per export on a compacted topic, so a re-run knows where it stopped.
//!
//! Key = the export's fingerprint (a hash of its files and of the topic names); value = [`RunCheckpoint`].
//! Each import topic's stream is deterministic (the plan orders it by key and legacy order), so "the first
//! `produced[topic]` records were acknowledged" is a complete description of how far producing got. A re-run
//! skips that many records of each stream; records acknowledged after the last checkpoint are produced again,
//! which apply tolerates (every apply is idempotent, and group messages already in IM are skipped).
//!
//! A checkpoint marked `completed` belongs to a finished run: running the same import again starts a new run
//! (`generation + 1`) that produces everything again, which IM absorbs without duplicates.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use imbridge_kafka::admin::Admin;
use imbridge_kafka::producer::Outgoing;
use imbridge_kafka::reader::{Start, read_range_with};
use imbridge_kafka::{KafkaConfig, KafkaError, Producer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::export::{ExportDir, ExportKind};

/// How far one import run got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCheckpoint {
    /// Hash of the export's files and the topic names (the record key).
    pub fingerprint: String,
    /// 1 for the first run of this export, +1 for every later complete re-run.
    pub generation: u32,
    /// `<fingerprint prefix>-<generation>`: tags records (header `imbridge.import.run`) and states.
    pub run_id: String,
    pub export_dir: String,
    /// When the run's first attempt started, Unix ms (failures are read from the DLQ from here on).
    pub started_at_ms: i64,
    /// Attempts so far (1 for an uninterrupted run).
    pub attempts: u32,
    /// `importing` was recorded for every conversation with history.
    pub states_written: bool,
    /// Records acknowledged per import topic (in stream order, a prefix).
    pub produced: BTreeMap<String, u64>,
    /// Every stream was produced completely.
    pub produce_complete: bool,
    /// Everything produced was applied (committed offsets reached the end offsets).
    pub completed: bool,
    /// When the run completed, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<i64>,
}

impl RunCheckpoint {
    /// A fresh run of `fingerprint`.
    pub fn start(fingerprint: &str, generation: u32, export_dir: &str, now_ms: i64) -> Self {
        Self {
            fingerprint: fingerprint.to_owned(),
            generation,
            run_id: format!("{}-{generation}", &fingerprint[..fingerprint.len().min(16)]),
            export_dir: export_dir.to_owned(),
            started_at_ms: now_ms,
            attempts: 1,
            states_written: false,
            produced: BTreeMap::new(),
            produce_complete: false,
            completed: false,
            completed_at_ms: None,
        }
    }

    /// What a run of `fingerprint` does given the latest checkpoint: resume it, or start the next generation.
    pub fn next(latest: Option<RunCheckpoint>, fingerprint: &str, export_dir: &str, now_ms: i64) -> (Self, bool) {
        match latest {
            Some(mut c) if !c.completed => {
                c.attempts += 1;
                (c, true)
            }
            Some(c) => (Self::start(fingerprint, c.generation + 1, export_dir, now_ms), false),
            None => (Self::start(fingerprint, 1, export_dir, now_ms), false),
        }
    }
}

/// The fingerprint of an export: SHA-256 over each present file's kind, name and bytes, and the topic names
/// (the same files imported into other topics are another run).
pub fn fingerprint(dir: &ExportDir, topics: &[&str]) -> Result<String, Error> {
    let mut h = Sha256::new();
    for kind in ExportKind::ALL {
        let Some(path) = dir.path(kind) else { continue };
        h.update(kind.as_str().as_bytes());
        h.update(dir.display_name(kind).as_bytes());
        let mut f = std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    for t in topics {
        h.update(b"\0topic\0");
        h.update(t.as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

/// Reads and writes checkpoints on the compacted checkpoint topic.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    kafka: KafkaConfig,
    topic: String,
    producer: Producer,
}

impl CheckpointStore {
    pub fn new(kafka: &KafkaConfig, topic: &str, producer: Producer) -> Self {
        Self { kafka: kafka.clone(), topic: topic.to_owned(), producer }
    }

    /// The latest checkpoint of `fingerprint`, if any.
    /// `admin` is the caller's (already connected) client: on a first run the topic is empty, and seeing that
    /// from its watermarks spares a reader's connection and start-up, a fifth of a second the import waits for.
    pub async fn latest(&self, admin: &Admin, fingerprint: &str) -> Result<Option<RunCheckpoint>, KafkaError> {
        let found: Arc<Mutex<Option<RunCheckpoint>>> = Arc::new(Mutex::new(None));
        let sink = found.clone();
        let want = fingerprint.to_owned();
        read_range_with(admin, &self.kafka, &self.topic, None, Start::Earliest, move |r| {
            if r.key_str() == Some(want.as_str())
                && let Some(c) = r.payload.as_deref().and_then(|p| serde_json::from_slice::<RunCheckpoint>(p).ok())
                && let Ok(mut f) = sink.lock()
            {
                // One partition, read in offset order: the last one wins.
                *f = Some(c);
            }
            true
        })
        .await?;
        Ok(found.lock().ok().and_then(|mut f| f.take()))
    }

    /// Writes a checkpoint and waits for the acknowledgement.
    pub async fn write(&self, c: &RunCheckpoint) -> Result<(), KafkaError> {
        // Plain data with string keys: serializing cannot fail.
        let payload = serde_json::to_vec(c).unwrap_or_default();
        self.producer
            .send(&self.topic, Outgoing { key: c.fingerprint.as_bytes(), payload: &payload, headers: &[] })
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_or_next_generation() {
        let (first, resumed) = RunCheckpoint::next(None, "abcdef0123456789ff", "/x", 5);
        assert!(!resumed);
        assert_eq!(first.generation, 1);
        assert_eq!(first.run_id, "abcdef0123456789-1");
        let mut partial = first.clone();
        partial.produced.insert("t".into(), 10);
        let (again, resumed) = RunCheckpoint::next(Some(partial.clone()), "abcdef0123456789ff", "/x", 9);
        assert!(resumed);
        assert_eq!(again.attempts, 2);
        assert_eq!(again.produced.get("t"), Some(&10));
        assert_eq!(again.started_at_ms, 5);
        partial.completed = true;
        let (rerun, resumed) = RunCheckpoint::next(Some(partial), "abcdef0123456789ff", "/x", 9);
        assert!(!resumed);
        assert_eq!(rerun.generation, 2);
        assert!(rerun.produced.is_empty());
    }
}

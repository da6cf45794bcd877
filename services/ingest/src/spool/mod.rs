//! The durable spool of IM callbacks: IM never re-sends a callback, so ingest answers it only after the event
//! is fsynced here, and a background task ([`forwarder`]) produces the spooled events to Kafka and forgets them
//! only after Kafka acknowledged. Modelled on Vector's disk buffers (at-least-once through a sink outage).
//!
//! Invariants:
//! 1. **"OK" means on disk.** [`Spool::append`] returns only after the record and every record before it were
//!    written and `fdatasync`ed. One writer thread owns the files; concurrent appends that arrive while an fsync
//!    runs are written and synced together by the next one (group commit), so a burst costs a few fsyncs, not
//!    one per callback.
//! 2. **Bounded.** The segment files never exceed `spool_max_bytes` together: an append that does not fit is
//!    refused with [`SpoolError::Full`] (ingest answers IM with an error; it never accepts and loses), counted
//!    and logged at error level once per episode.
//! 3. **Arrival order.** Records get increasing sequence numbers in the order the writer wrote them; the
//!    forwarder produces them in that order on one idempotent producer, so Kafka keeps it per conversation.
//! 4. **Forgotten only after Kafka acknowledged.** The forwarder advances the acknowledged watermark (the
//!    `acked` file, written after each acknowledged window) over a contiguous prefix only, and deletes a segment
//!    once every record in it is at or below that watermark. A crash anywhere re-produces at most what was not
//!    yet marked: duplicates, which the deterministic event ids and idempotent consumers absorb.
//! 5. **Bounded in memory too.** Only the head of the unacknowledged records, up to `memory_bytes`, is held
//!    in memory for the forwarder; once that is full, later records are on disk only ("spilled") and are read
//!    back from their segments, in order, as the head drains. A backlog costs disk, not memory.
//! 6. **Crash recovery.** [`Spool::open`] scans every segment; a torn tail of the newest one (a write cut short
//!    by a crash, never acknowledged to IM) is truncated away; records above the watermark are queued again.
//!    New records go to a fresh segment. A lock file keeps two processes off one directory.

pub mod forwarder;
pub mod segment;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{error, info, warn};

/// Why a record could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full ({used_bytes} of {max_bytes} bytes): Kafka has not taken the spooled callbacks")]
    Full { used_bytes: u64, max_bytes: u64 },
    #[error("spool i/o on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("spool directory {0} is in use by another process")]
    Locked(PathBuf),
    #[error("the spool writer stopped")]
    Closed,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_owned(), source }
}

/// Sizes of a spool.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    pub dir: PathBuf,
    /// Upper bound of all segment files together.
    pub max_bytes: u64,
    /// A segment is closed and a new one started once it is this big.
    pub segment_bytes: u64,
    /// Most bytes (payload and key) of unacknowledged records held in memory; the rest waits on disk.
    pub memory_bytes: u64,
}

/// One spooled record waiting for Kafka.
#[derive(Debug, Clone)]
pub struct Pending {
    pub seq: u64,
    /// Kafka key (the conversation).
    pub key: Arc<str>,
    pub payload: Arc<[u8]>,
}

impl Pending {
    /// What it costs the in-memory head, in bytes (payload and key).
    fn size(&self) -> u64 {
        self.payload.len() as u64 + self.key.len() as u64
    }
}

/// The spool's metrics: fill level, high-water mark, what went through it, fsync latency.
#[derive(Debug, Clone)]
pub struct SpoolMetrics {
    /// Bytes of segment files on disk.
    pub bytes: IntGauge,
    /// Highest `bytes` seen since start.
    pub high_water_bytes: IntGauge,
    /// Records not yet acknowledged by Kafka.
    pub pending: IntGauge,
    /// Payload bytes of the unacknowledged records held in memory (the rest is read back from disk).
    pub memory_bytes: IntGauge,
    /// 1 while appends are refused because the spool is full.
    pub full: IntGauge,
    /// Records by `event`: `appended`, `forwarded`, `recovered`, `refused_full`, `torn_tail_bytes`.
    pub records: IntCounterVec,
    /// Produce attempts of a spooled window that Kafka did not acknowledge.
    pub produce_failures: prometheus::IntCounter,
    /// One group-commit fsync.
    pub fsync_seconds: Histogram,
    /// Appends written by one fsync.
    pub batch_records: Histogram,
}

impl SpoolMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let bytes = IntGauge::new("imbridge_ingest_spool_bytes", "bytes of spool segment files on disk")?;
        let high_water_bytes =
            IntGauge::new("imbridge_ingest_spool_high_water_bytes", "highest spool size seen since start")?;
        let pending =
            IntGauge::new("imbridge_ingest_spool_pending_records", "spooled records kafka has not acknowledged")?;
        let memory_bytes = IntGauge::new(
            "imbridge_ingest_spool_memory_bytes",
            "payload bytes of unacknowledged spooled records held in memory (the rest waits on disk)",
        )?;
        let full =
            IntGauge::new("imbridge_ingest_spool_full", "1 while callbacks are refused because the spool is full")?;
        let records = IntCounterVec::new(
            Opts::new(
                "imbridge_ingest_spool_records_total",
                "spooled records by event (appended, forwarded, recovered, refused_full)",
            ),
            &["event"],
        )?;
        let produce_failures = prometheus::IntCounter::new(
            "imbridge_ingest_spool_produce_failures_total",
            "windows of spooled records kafka did not acknowledge (retried)",
        )?;
        let fsync_seconds = Histogram::with_opts(
            HistogramOpts::new("imbridge_ingest_spool_fsync_seconds", "one group-commit write and fsync")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
        )?;
        let batch_records = Histogram::with_opts(
            HistogramOpts::new("imbridge_ingest_spool_batch_records", "appends written by one fsync")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(high_water_bytes.clone()))?;
        registry.register(Box::new(pending.clone()))?;
        registry.register(Box::new(memory_bytes.clone()))?;
        registry.register(Box::new(full.clone()))?;
        registry.register(Box::new(records.clone()))?;
        registry.register(Box::new(produce_failures.clone()))?;
        registry.register(Box::new(fsync_seconds.clone()))?;
        registry.register(Box::new(batch_records.clone()))?;
        Ok(Self {
            bytes,
            high_water_bytes,
            pending,
            memory_bytes,
            full,
            records,
            produce_failures,
            fsync_seconds,
            batch_records,
        })
    }
}

/// The unacknowledged records: a head held in memory, in sequence order, and — once that reached its bound —
/// everything from `spilled_from` on, on disk only.
#[derive(Debug, Default)]
struct Queue {
    head: VecDeque<Pending>,
    /// Payload bytes of `head`.
    head_bytes: u64,
    /// The first record not in `head`; every later written record is on disk only too.
    spilled_from: Option<u64>,
    /// Highest sequence number written and synced.
    written: u64,
}

impl Queue {
    /// Appends a synced record to the head when it fits (and nothing is spilled before it), else spills it.
    fn offer(&mut self, record: Pending, memory_bytes: u64) {
        self.written = self.written.max(record.seq);
        if self.spilled_from.is_none() && (self.head.is_empty() || self.head_bytes + record.size() <= memory_bytes) {
            self.push(record);
        } else {
            self.spilled_from.get_or_insert(record.seq);
        }
    }

    fn push(&mut self, record: Pending) {
        self.head_bytes += record.size();
        self.head.push_back(record);
    }

    fn pop(&mut self) -> Option<Pending> {
        let p = self.head.pop_front()?;
        self.head_bytes -= p.size();
        Some(p)
    }

    /// Records not yet acknowledged (sequence numbers are contiguous from the head on).
    fn len(&self) -> u64 {
        match self.spilled_from {
            Some(from) => self.head.len() as u64 + (self.written + 1).saturating_sub(from),
            None => self.head.len() as u64,
        }
    }
}

/// A segment on disk: its first sequence number, path and size.
#[derive(Debug)]
struct SegmentFile {
    first_seq: u64,
    path: PathBuf,
    bytes: u64,
}

/// State shared by the writer thread, the forwarder and the handles.
#[derive(Debug)]
pub(crate) struct State {
    settings: SpoolSettings,
    /// Records written and synced, not yet acknowledged by Kafka: the head in memory, the rest on disk.
    queue: Mutex<Queue>,
    /// Woken when the queue grows.
    pub(crate) notify: Notify,
    /// Segments, oldest first; the last is the one being written.
    segments: Mutex<VecDeque<SegmentFile>>,
    used_bytes: AtomicU64,
    /// Highest sequence number Kafka acknowledged (with everything before it).
    acked: AtomicU64,
    full: AtomicBool,
    /// Set by [`Spool::close`]: appends are refused and the directory lock is released.
    closed: AtomicBool,
    metrics: SpoolMetrics,
    /// Held (with its OS lock) as long as any handle lives.
    _lock: File,
}

struct Append {
    key: Arc<str>,
    payload: Arc<[u8]>,
    reply: oneshot::Sender<Result<u64, SpoolError>>,
}

/// A handle to an open spool; clones share it.
#[derive(Debug, Clone)]
pub struct Spool {
    state: Arc<State>,
    tx: mpsc::UnboundedSender<Append>,
}

const ACKED_FILE: &str = "acked";
const LOCK_FILE: &str = "lock";

impl Spool {
    /// Opens (creating) the spool directory, recovers what a previous run left unacknowledged, and starts the
    /// writer thread. The recovered records are queued for the forwarder first, in their original order.
    pub fn open(settings: SpoolSettings, metrics: SpoolMetrics) -> Result<Self, SpoolError> {
        let dir = settings.dir.clone();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io(&lock_path))?;
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(SpoolError::Locked(dir));
        }
        let acked = read_acked(&dir);
        let mut queue = Queue::default();
        let mut segments = VecDeque::new();
        let mut next_seq = acked + 1;
        let listed = segment::list(&dir).map_err(io(&dir))?;
        let newest = listed.last().map(|(s, _)| *s);
        let (mut recovered, mut used) = (0u64, 0u64);
        for (first_seq, path) in listed {
            let scan = segment::scan(&path).map_err(io(&path))?;
            let mut bytes = scan.valid_bytes + scan.bad_bytes;
            if scan.bad_bytes > 0 {
                if Some(first_seq) == newest {
                    // A write cut short by a crash: its callers never heard "stored", so nothing is lost.
                    warn!(path = %path.display(), bytes = scan.bad_bytes, "spool: truncating a torn tail");
                    segment::truncate(&path, scan.valid_bytes).map_err(io(&path))?;
                    bytes = scan.valid_bytes;
                } else {
                    error!(path = %path.display(), bytes = scan.bad_bytes, "spool: corrupt records in an older segment are skipped");
                }
                metrics.records.with_label_values(&["torn_tail_bytes"]).inc_by(scan.bad_bytes);
            }
            for (seq, payload) in scan.records {
                next_seq = next_seq.max(seq + 1);
                if seq <= acked {
                    continue;
                }
                let Some((key, payload)) = split_record(&payload) else {
                    error!(path = %path.display(), seq, "spool: a record without a key is skipped");
                    continue;
                };
                recovered += 1;
                queue.offer(Pending { seq, key, payload }, settings.memory_bytes);
            }
            used += bytes;
            segments.push_back(SegmentFile { first_seq, path, bytes });
        }
        // New records always go to a new segment: a recovered one is never appended to.
        let path = dir.join(segment::segment_name(next_seq));
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        segment::sync_dir(&dir).map_err(io(&dir))?;
        segments.push_back(SegmentFile { first_seq: next_seq, path: path.clone(), bytes: 0 });
        if recovered > 0 {
            info!(dir = %dir.display(), records = recovered, bytes = used, "spool: recovered records kafka had not acknowledged");
        }
        metrics.records.with_label_values(&["recovered"]).inc_by(recovered);
        queue.written = next_seq - 1;
        metrics.pending.set(queue.len() as i64);
        metrics.memory_bytes.set(queue.head_bytes as i64);
        metrics.bytes.set(used as i64);
        metrics.high_water_bytes.set(used as i64);
        let state = Arc::new(State {
            settings,
            queue: Mutex::new(queue),
            notify: Notify::new(),
            segments: Mutex::new(segments),
            used_bytes: AtomicU64::new(used),
            acked: AtomicU64::new(acked),
            full: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            metrics,
            _lock: lock,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let w = Writer { state: state.clone(), file, path, next_seq };
        std::thread::Builder::new().name("ingest-spool".into()).spawn(move || w.run(rx)).map_err(io(&dir))?;
        Ok(Self { state, tx })
    }

    /// Failed attempts to produce spooled records since the spool was opened (Kafka unavailable).
    pub fn produce_failures(&self) -> u64 {
        self.state.metrics.produce_failures.get()
    }

    /// The spool's directory (ingest keeps its heartbeat file beside the segments).
    pub fn dir(&self) -> &Path {
        &self.state.settings.dir
    }

    /// Stores one record durably; returns its sequence number once it (and everything before it) is fsynced.
    pub async fn append(&self, key: &str, payload: Vec<u8>) -> Result<u64, SpoolError> {
        if self.state.closed.load(Ordering::Acquire) {
            return Err(SpoolError::Closed);
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Append { key: key.into(), payload: payload.into(), reply }).map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Stops accepting appends and releases the directory lock at once (shutdown), so a new process — or a new
    /// spool in this process — can open the directory even while stray handles of this one still exist.
    pub fn close(&self) {
        if !self.state.closed.swap(true, Ordering::AcqRel)
            && let Err(e) = rustix::fs::flock(&self.state._lock, rustix::fs::FlockOperation::Unlock)
        {
            warn!(error = %e, "spool: cannot release the directory lock");
        }
    }

    /// Records not yet acknowledged by Kafka.
    pub fn pending(&self) -> usize {
        self.state.queue.lock().map(|q| q.len() as usize).unwrap_or_default()
    }

    /// Bytes of segment files on disk.
    pub fn used_bytes(&self) -> u64 {
        self.state.used_bytes.load(Ordering::Acquire)
    }

    pub(crate) fn state(&self) -> &Arc<State> {
        &self.state
    }
}

/// A record's body on disk: `key length: u16 LE | key | payload`.
fn join_record(key: &str, payload: &[u8]) -> Vec<u8> {
    let k = &key.as_bytes()[..key.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(2 + k.len() + payload.len());
    out.extend_from_slice(&(k.len() as u16).to_le_bytes());
    out.extend_from_slice(k);
    out.extend_from_slice(payload);
    out
}

fn split_record(body: &[u8]) -> Option<(Arc<str>, Arc<[u8]>)> {
    let len = u16::from_le_bytes([*body.first()?, *body.get(1)?]) as usize;
    let key = std::str::from_utf8(body.get(2..2 + len)?).ok()?;
    Some((Arc::from(key), Arc::from(&body[2 + len..])))
}

/// The highest sequence number Kafka acknowledged in the spool at `dir` (with everything before it), as the
/// spool last recorded it; 0 when nothing was. Spools number their records from 1, so for a spool filled from
/// empty it is the count forwarded.
pub fn acknowledged(dir: &Path) -> u64 {
    read_acked(dir)
}

fn read_acked(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join(ACKED_FILE)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

impl State {
    /// Up to `max` records from the head of the queue, in order.
    pub(crate) fn window(&self, max: usize) -> Vec<Pending> {
        self.queue.lock().map(|q| q.head.iter().take(max).cloned().collect()).unwrap_or_default()
    }

    /// Whether spilled records wait on disk and the head has drained below half its bound.
    pub(crate) fn wants_refill(&self) -> bool {
        self.queue.lock().is_ok_and(|q| q.spilled_from.is_some() && q.head_bytes < self.settings.memory_bytes / 2)
    }

    /// Reads spilled records back from their segments into the head, in order, up to the memory bound. Blocking
    /// file reads: run it off the async workers. Only the forwarder calls it, so `spilled_from` moves only here
    /// and in the writer, which spills (never queues) while it is set.
    pub(crate) fn refill(&self) {
        // Everything up to `synced` is on disk before the scan starts: what of it the scan does not find is lost
        // to corruption and is skipped rather than waited for.
        let (from, room, synced) = match self.queue.lock() {
            Ok(q) => match q.spilled_from {
                Some(from) => (from, self.settings.memory_bytes.saturating_sub(q.head_bytes), q.written),
                None => return,
            },
            Err(_) => return,
        };
        // Segment k holds the sequence numbers from its first up to the next one's first.
        let paths: Vec<PathBuf> = match self.segments.lock() {
            Ok(segs) => {
                let firsts: Vec<u64> = segs.iter().map(|s| s.first_seq).collect();
                segs.iter()
                    .enumerate()
                    .filter(|(i, _)| firsts.get(i + 1).is_none_or(|next| *next > from))
                    .map(|(_, s)| s.path.clone())
                    .collect()
            }
            Err(_) => return,
        };
        let mut read: Vec<Pending> = Vec::new();
        let (mut bytes, mut full, mut last_seen) = (0u64, false, from.saturating_sub(1));
        'segments: for path in paths {
            let scan = match segment::scan(&path) {
                Ok(scan) => scan,
                // Deleted meanwhile: every record in it was acknowledged, so none is wanted.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "spool: cannot read spilled records back; retrying");
                    return;
                }
            };
            for (seq, body) in scan.records {
                if seq < from {
                    continue;
                }
                let Some((key, payload)) = split_record(&body) else {
                    error!(path = %path.display(), seq, "spool: a record without a key is skipped");
                    last_seen = last_seen.max(seq);
                    continue;
                };
                let record = Pending { seq, key, payload };
                if !read.is_empty() && bytes + record.size() > room {
                    full = true;
                    break 'segments;
                }
                bytes += record.size();
                last_seen = last_seen.max(seq);
                read.push(record);
            }
        }
        let Ok(mut q) = self.queue.lock() else { return };
        // Records past `written` were not yet synced when read: the writer decides about them (it spills them,
        // as `spilled_from` is still set, or queues them once it is cleared below). The writer appends in order,
        // so whatever the scan did not reach comes after everything it did.
        read.retain(|p| p.seq <= q.written);
        let next = match read.last() {
            Some(p) if full => p.seq + 1,
            _ => last_seen.min(q.written).max(synced) + 1,
        };
        for p in read {
            q.push(p);
        }
        q.spilled_from = (next <= q.written).then_some(next);
        self.metrics.memory_bytes.set(q.head_bytes as i64);
    }

    /// Kafka acknowledged the first `n` queued records: forget them, move the watermark, delete spent segments.
    pub(crate) fn acknowledge(&self, n: usize) {
        let last = {
            let Ok(mut q) = self.queue.lock() else { return };
            let mut last = None;
            for _ in 0..n {
                last = q.pop().map(|p| p.seq).or(last);
            }
            self.metrics.pending.set(q.len() as i64);
            self.metrics.memory_bytes.set(q.head_bytes as i64);
            last
        };
        let Some(last) = last else { return };
        self.acked.store(last, Ordering::Release);
        self.metrics.records.with_label_values(&["forwarded"]).inc_by(n as u64);
        // Not fsynced on purpose: a stale watermark after a crash only re-produces acknowledged records.
        let tmp = self.settings.dir.join("acked.tmp");
        if let Err(e) = std::fs::write(&tmp, last.to_string())
            .and_then(|()| std::fs::rename(&tmp, self.settings.dir.join(ACKED_FILE)))
        {
            warn!(error = %e, "spool: cannot record the acknowledged watermark");
        }
        self.delete_spent();
    }

    /// Deletes every segment but the newest whose records are all acknowledged.
    pub(crate) fn delete_spent(&self) {
        let acked = self.acked.load(Ordering::Acquire);
        let Ok(mut segs) = self.segments.lock() else { return };
        let mut deleted = false;
        // Segment k holds seqs below segment k+1's first: it is spent when that first seq - 1 is acknowledged.
        while segs.len() > 1 && segs[1].first_seq <= acked + 1 {
            let Some(s) = segs.pop_front() else { break };
            match std::fs::remove_file(&s.path) {
                Ok(()) => {
                    deleted = true;
                    let used = self.used_bytes.fetch_sub(s.bytes, Ordering::AcqRel) - s.bytes;
                    self.metrics.bytes.set(used as i64);
                }
                Err(e) => {
                    warn!(path = %s.path.display(), error = %e, "spool: cannot delete a spent segment");
                    segs.push_front(s);
                    break;
                }
            }
        }
        if deleted {
            let _ = segment::sync_dir(&self.settings.dir);
        }
    }
}

/// The one thread that writes segment files.
struct Writer {
    state: Arc<State>,
    file: File,
    path: PathBuf,
    next_seq: u64,
}

/// Most appends one fsync covers; more wait for the next.
const MAX_GROUP: usize = 1024;

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Append>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(a) => batch.push(a),
                    Err(_) => break,
                }
            }
            self.write_batch(batch);
        }
    }

    fn write_batch(&mut self, batch: Vec<Append>) {
        if self.state.closed.load(Ordering::Acquire) {
            for a in batch {
                let _ = a.reply.send(Err(SpoolError::Closed));
            }
            return;
        }
        if let Err(e) = self.maybe_rotate() {
            error!(error = %e, "spool cannot start a new segment; refusing this batch");
            for a in batch {
                let _ = a.reply.send(Err(SpoolError::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other(e.to_string()),
                }));
            }
            return;
        }
        let s = self.state.clone();
        let max = s.settings.max_bytes;
        let mut used = s.used_bytes.load(Ordering::Acquire);
        let mut buf = Vec::new();
        let mut accepted = Vec::with_capacity(batch.len());
        for a in batch {
            let body = join_record(&a.key, &a.payload);
            let framed = segment::framed_len(body.len());
            if used + framed > max {
                s.metrics.records.with_label_values(&["refused_full"]).inc();
                if !s.full.swap(true, Ordering::AcqRel) {
                    s.metrics.full.set(1);
                    error!(used_bytes = used, max_bytes = max, dir = %s.settings.dir.display(),
                        "spool full: refusing IM callbacks until kafka takes the spooled ones");
                }
                let _ = a.reply.send(Err(SpoolError::Full { used_bytes: used, max_bytes: max }));
                continue;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            segment::encode(&mut buf, seq, &body);
            used += framed;
            accepted.push((seq, a));
        }
        if accepted.is_empty() {
            return;
        }
        if s.full.swap(false, Ordering::AcqRel) {
            s.metrics.full.set(0);
            info!(used_bytes = used, "spool accepts callbacks again");
        }
        let started = Instant::now();
        let before = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        let written = self.file.write_all(&buf).and_then(|()| self.file.sync_data());
        s.metrics.fsync_seconds.observe(started.elapsed().as_secs_f64());
        if let Err(e) = written {
            // Nothing of this batch was acknowledged: cut it off again so a later batch does not follow garbage.
            error!(path = %self.path.display(), error = %e, "spool write failed; refusing this batch");
            let _ = self.file.set_len(before);
            self.next_seq = accepted.first().map(|(seq, _)| *seq).unwrap_or(self.next_seq);
            let kind = e.kind();
            for (_, a) in accepted {
                let _ = a.reply.send(Err(SpoolError::Io {
                    path: self.path.clone(),
                    source: std::io::Error::new(kind, e.to_string()),
                }));
            }
            return;
        }
        s.metrics.batch_records.observe(accepted.len() as f64);
        s.metrics.records.with_label_values(&["appended"]).inc_by(accepted.len() as u64);
        let added = buf.len() as u64;
        if let Ok(mut segs) = s.segments.lock()
            && let Some(last) = segs.back_mut()
        {
            last.bytes += added;
        }
        let used = s.used_bytes.fetch_add(added, Ordering::AcqRel) + added;
        s.metrics.bytes.set(used as i64);
        if used as i64 > s.metrics.high_water_bytes.get() {
            s.metrics.high_water_bytes.set(used as i64);
        }
        if let Ok(mut q) = s.queue.lock() {
            for (seq, a) in &accepted {
                q.offer(Pending { seq: *seq, key: a.key.clone(), payload: a.payload.clone() }, s.settings.memory_bytes);
            }
            s.metrics.pending.set(q.len() as i64);
            s.metrics.memory_bytes.set(q.head_bytes as i64);
        }
        s.notify.notify_one();
        for (seq, a) in accepted {
            let _ = a.reply.send(Ok(seq));
        }
    }

    /// Starts a new segment once the current one reached `segment_bytes`.
    fn maybe_rotate(&mut self) -> Result<(), SpoolError> {
        let len = self.file.metadata().map_err(io(&self.path))?.len();
        if len < self.state.settings.segment_bytes {
            return Ok(());
        }
        let dir = &self.state.settings.dir;
        let path = dir.join(segment::segment_name(self.next_seq));
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        segment::sync_dir(dir).map_err(io(dir))?;
        if let Ok(mut segs) = self.state.segments.lock() {
            segs.push_back(SegmentFile { first_seq: self.next_seq, path: path.clone(), bytes: 0 });
        }
        self.file = file;
        self.path = path;
        // The previous segment may be spent already.
        self.state.delete_spent();
        Ok(())
    }
}

//! The ordered consumer runner.
//!
//! Invariants (the reason this module exists):
//! 1. **Order per key.** Records of one key (one conversation) in one partition are handled strictly one after
//!    another, in offset order: each key has one serial lane (a task with a bounded queue). Different keys run
//!    concurrently, bounded by `max_in_flight` records received and not yet finished.
//! 2. **At-least-once, never skipping.** An offset is stored (`enable.auto.offset.store=false`) only for the
//!    contiguous prefix of finished records (handled or dead-lettered), see [`tracker`]. Auto-commit commits only
//!    what was stored; revoke and shutdown commit synchronously after draining.
//! 3. **Drain on revoke.** With cooperative-sticky rebalancing only the revoked partitions stop: records of
//!    theirs still queued are skipped (the next owner gets them from the committed offset), running ones get
//!    up to `drain_timeout_ms` (kept below the session timeout) to finish, then the prefix is committed.
//! 4. **Poison never blocks.** A record that can never apply goes to the DLQ with the reason; with
//!    `park_after_dead_letter`, later records of that key follow it there (kind `parked`) so nothing of that
//!    conversation is applied out of order.
//!
//! 5. **Waiting is not failing.** A handler that waits for records of its key not yet arrived (a resequencer
//!    holding a gap open) answers `Outcome::Wait`: the lane pauses, tops its batch up with what arrived, and offers
//!    it again; no attempt is counted and nothing is dead-lettered for it.
//!
//! The poll loop must keep calling `recv` (librdkafka's `max.poll.interval.ms`, 300 s by default): it only
//! ever waits on bounded queues whose consumers make progress, and retries are bounded by the retry policy.

pub mod tracker;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use imbridge_core::{Failure, TimestampMs};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::config::{ConsumerConfig, KafkaConfig};
use crate::dlq::{self, DlqProducer};
use crate::error::KafkaError;
use crate::metrics::ConsumerMetrics;
use crate::record::{BatchOutcome, Outcome, Record};
use tracker::{Tp, Tracker};

/// Applies records. Implemented by each consumer service (to-im, to-legacy, tests).
pub trait Handler: Send + Sync + 'static {
    /// Handles one record; called at most once at a time per key, in offset order.
    fn handle(&self, record: &Record) -> impl Future<Output = Outcome> + Send;

    /// How many queued records of one key may be offered to [`handle_batch`](Self::handle_batch) at once.
    /// 1 (the default) means no batching.
    fn batch_limit(&self) -> usize {
        1
    }

    /// Handles a prefix of `records` (consecutive records of one key, in offset order, at most
    /// `batch_limit`). The default handles only the first. Records after the reported prefix are offered
    /// again in the next call, so a handler may take just the records it can combine into one API call.
    fn handle_batch(&self, records: &[&Record]) -> impl Future<Output = BatchOutcome> + Send {
        async move {
            match records.first() {
                Some(r) => BatchOutcome { done: 0, next: Some(self.handle(r).await) },
                None => BatchOutcome { done: 0, next: None },
            }
        }
    }

    /// Partitions were assigned to this instance (called from the rebalance callback: keep it quick).
    fn partitions_assigned(&self, _partitions: &[(String, i32)]) {}

    /// Partitions were revoked, after their in-flight records were drained and committed.
    fn partitions_revoked(&self, _partitions: &[(String, i32)]) {}
}

/// Where a running member stands on each partition it holds: the offset below which every record is finished
/// (handled or dead-lettered) — the offset it will commit next. Partitions it holds but has received nothing of
/// are absent.
#[derive(Debug, Clone)]
pub struct Progress {
    tracker: Arc<Tracker>,
}

impl Progress {
    /// `((topic, partition), offset)` for each partition held with anything received.
    pub fn positions(&self) -> Vec<((String, i32), i64)> {
        self.tracker.positions(&self.tracker.assigned())
    }
}

/// Totals of one run, for tests and final reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    pub finished: u64,
    pub dead_lettered: u64,
}

/// A consumer-group member that feeds records to a [`Handler`] with the guarantees above.
pub struct OrderedConsumer<H: Handler> {
    consumer: Arc<StreamConsumer<Ctx<H>>>,
    shared: Arc<Shared<H>>,
    cfg: ConsumerConfig,
}

impl<H: Handler> std::fmt::Debug for OrderedConsumer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderedConsumer").field("group", &self.shared.group).finish_non_exhaustive()
    }
}

struct Shared<H> {
    group: String,
    handler: Arc<H>,
    tracker: Arc<Tracker>,
    dlq: DlqProducer,
    metrics: ConsumerMetrics,
    cfg: ConsumerConfig,
    /// Keys whose later records are parked behind a dead-lettered one, with the id of that first record.
    parked: std::sync::Mutex<HashMap<Vec<u8>, String>>,
    /// Cancelled when lanes must stop taking new jobs (shutdown past its drain deadline).
    stop: CancellationToken,
    kafka: KafkaConfig,
    topics: Vec<String>,
    finished: AtomicUsize,
    dead_lettered: AtomicUsize,
}

struct Ctx<H> {
    shared: Arc<Shared<H>>,
}

impl<H: Handler> ClientContext for Ctx<H> {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        warn!(group = %self.shared.group, error = %error, reason, "kafka client error");
    }

    /// librdkafka's periodic statistics (`statistics.interval.ms`) carry each assigned partition's lag behind
    /// the committed offset, from the watermarks its fetches already return: the lag gauge costs no extra
    /// request. Partitions this instance no longer owns are removed, so summing the gauge over instances
    /// gives the group's lag.
    fn stats(&self, stats: rdkafka::Statistics) {
        for (name, topic) in &stats.topics {
            if !self.shared.topics.contains(name) {
                continue;
            }
            for (p, part) in &topic.partitions {
                // -1 is librdkafka's internal "unassigned" partition.
                if *p < 0 {
                    continue;
                }
                let label = p.to_string();
                // Before the group's first commit on a partition librdkafka reports -1: everything retained is
                // still to do then.
                let lag = match part.consumer_lag {
                    l if l >= 0 => Some(l),
                    _ if part.hi_offset >= 0 && part.lo_offset >= 0 => Some(part.hi_offset - part.lo_offset),
                    _ => None,
                };
                if let (true, Some(lag)) = (part.desired, lag) {
                    self.shared.metrics.lag.with_label_values(&[name.as_str(), label.as_str()]).set(lag);
                } else if !part.desired {
                    let _ = self.shared.metrics.lag.remove_label_values(&[name.as_str(), label.as_str()]);
                }
            }
        }
    }
}

impl<H: Handler> ConsumerContext for Ctx<H> {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let tps = tps_of(tpl);
                let added = self.shared.tracker.assign(tps.clone());
                self.shared.metrics.rebalances.with_label_values(&["assign"]).inc();
                info!(group = %self.shared.group, partitions = ?tps, added, "partitions assigned");
                self.shared.handler.partitions_assigned(&tps);
            }
            Rebalance::Revoke(tpl) => {
                let tps = tps_of(tpl);
                self.shared.metrics.rebalances.with_label_values(&["revoke"]).inc();
                self.shared.drain_and_commit(consumer, &tps, "revoke");
                self.shared.tracker.remove(&tps);
                for (t, p) in &tps {
                    let _ = self.shared.metrics.lag.remove_label_values(&[t.as_str(), p.to_string().as_str()]);
                }
                self.shared.handler.partitions_revoked(&tps);
            }
            Rebalance::Error(e) => warn!(group = %self.shared.group, error = %e, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => debug!(group = %self.shared.group, offsets = ?tps_offsets(offsets), "offsets committed"),
            // No-offset is the normal answer when nothing new was stored since the last commit.
            Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => warn!(group = %self.shared.group, error = %e, "offset commit failed"),
        }
    }
}

fn tps_of(tpl: &TopicPartitionList) -> Vec<Tp> {
    tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect()
}

fn tps_offsets(tpl: &TopicPartitionList) -> Vec<(String, i32, Offset)> {
    tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition(), e.offset())).collect()
}

fn tpl_of(positions: &[(Tp, i64)]) -> Result<TopicPartitionList, rdkafka::error::KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in positions {
        tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
    }
    Ok(tpl)
}

impl<H: Handler> Shared<H> {
    /// Waits (bounded) for running records of `tps`, then stores and synchronously commits their positions.
    /// Runs inside librdkafka's rebalance callback, i.e. on the thread polling the consumer: it must block,
    /// so on a multi-thread runtime it tells tokio to move other tasks off this worker first.
    fn drain_and_commit<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, tps: &[Tp], why: &str) {
        let timeout = Duration::from_millis(self.cfg.drain_timeout_ms);
        let started = Instant::now();
        let drained = if !self.tracker.any_running(tps) {
            true
        } else {
            match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                    tokio::task::block_in_place(|| self.tracker.wait_idle(tps, timeout))
                }
                // On a current-thread runtime the lanes cannot run while we block: commit what is done.
                Ok(_) => false,
                Err(_) => self.tracker.wait_idle(tps, timeout),
            }
        };
        let positions = self.tracker.positions(tps);
        match tpl_of(&positions) {
            Ok(tpl) if tpl.count() > 0 => {
                if let Err(e) = consumer.store_offsets(&tpl) {
                    warn!(group = %self.group, error = %e, "storing offsets on {why} failed");
                }
                if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                    warn!(group = %self.group, error = %e, "committing offsets on {why} failed");
                }
            }
            Ok(_) => {}
            Err(e) => warn!(group = %self.group, error = %e, "bad offsets on {why}"),
        }
        info!(
            group = %self.group, partitions = ?tps, ?positions, drained,
            waited_ms = started.elapsed().as_millis() as u64, "drained and committed on {why}"
        );
    }

    fn parked_behind(&self, key: &[u8]) -> Option<String> {
        self.parked.lock().ok().and_then(|m| m.get(key).cloned())
    }

    /// The operator re-drove this key from the DLQ (`imbridge dlq replay`): its records apply again.
    fn unpark(&self, key: &[u8]) {
        if let Ok(mut m) = self.parked.lock()
            && m.remove(key).is_some()
        {
            info!(group = %self.group, conversation = %String::from_utf8_lossy(key), "conversation unparked by a re-driven record");
            self.metrics.parked_conversations.set(m.len() as i64);
        }
    }

    fn park(&self, key: &[u8], behind: String) {
        if let Ok(mut m) = self.parked.lock() {
            m.entry(key.to_vec()).or_insert(behind);
            self.metrics.parked_conversations.set(m.len() as i64);
        }
    }
}

/// One record waiting in a lane.
struct Job {
    record: Record,
    tp: Tp,
    generation: u64,
    _permit: OwnedSemaphorePermit,
}

/// A lane: a serial queue for one key, and how many of its jobs are queued or running (for idle cleanup).
struct Lane {
    tx: mpsc::Sender<Job>,
    busy: Arc<AtomicUsize>,
}

/// A job a lane has taken out of its queue. Dropping it ends the job in the tracker: finished only if marked,
/// so a lane aborted mid-handler (a killed consumer) never lets a revoke wait for a job that no longer exists.
struct Active<H: Handler> {
    job: Job,
    shared: Arc<Shared<H>>,
    busy: Arc<AtomicUsize>,
    finished: bool,
}

impl<H: Handler> Drop for Active<H> {
    fn drop(&mut self) {
        self.shared.tracker.end(&self.job.tp, self.job.generation, self.job.record.offset, self.finished);
        self.shared.metrics.in_flight.dec();
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<H: Handler> OrderedConsumer<H> {
    /// Creates the group member; nothing is consumed until [`run`](Self::run).
    pub fn new(
        kafka: &KafkaConfig,
        group_id: &str,
        topics: &[&str],
        cfg: ConsumerConfig,
        handler: Arc<H>,
        dlq: DlqProducer,
        metrics: ConsumerMetrics,
    ) -> Result<Self, KafkaError> {
        cfg.validate()?;
        let shared = Arc::new(Shared {
            group: group_id.to_owned(),
            handler,
            tracker: Arc::new(Tracker::default()),
            dlq,
            metrics,
            cfg: cfg.clone(),
            parked: std::sync::Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
            kafka: kafka.clone(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            finished: AtomicUsize::new(0),
            dead_lettered: AtomicUsize::new(0),
        });
        let consumer: StreamConsumer<Ctx<H>> =
            kafka.consumer_config(group_id, &cfg)?.create_with_context(Ctx { shared: shared.clone() })?;
        consumer.subscribe(topics)?;
        Ok(Self { consumer: Arc::new(consumer), shared, cfg })
    }

    /// A view of which offsets this member has finished, before they are committed: a caller waiting for a
    /// topic to be fully handled need not wait out the auto-commit interval. Valid for the member's life.
    pub fn progress(&self) -> Progress {
        Progress { tracker: self.shared.tracker.clone() }
    }

    /// Consumes until `shutdown` fires, then drains (up to `drain_timeout_ms`), commits and leaves the group.
    /// Dropping the returned future instead is a crash: nothing more is committed beyond what was stored.
    pub async fn run(self, shutdown: CancellationToken) -> Result<RunStats, KafkaError> {
        let Self { consumer, shared, cfg } = self;
        if cfg.park_after_dead_letter {
            // Conversations parked before a restart (or by another instance) stay parked: the DLQ says which.
            let state = dlq::scan(&shared.kafka, shared.dlq.topic()).await?;
            let topics: Vec<&str> = shared.topics.iter().map(String::as_str).collect();
            let parked = state.parked_keys(&topics);
            if !parked.is_empty() {
                warn!(group = %shared.group, conversations = parked.len(), "conversations parked behind dead-lettered records");
            }
            if let Ok(mut m) = shared.parked.lock() {
                m.extend(parked);
                shared.metrics.parked_conversations.set(m.len() as i64);
            }
        }
        let permits = Arc::new(Semaphore::new(cfg.max_in_flight));
        // Declared after `consumer`, so dropped first: a crashed run's lanes die before the consumer closes.
        let mut lane_tasks: JoinSet<()> = JoinSet::new();
        let mut lanes: HashMap<(Tp, Vec<u8>), Lane> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    store_positions(&consumer, &shared);
                    lanes.retain(|_, l| l.busy.load(Ordering::Acquire) > 0);
                    while let Some(r) = lane_tasks.try_join_next() {
                        if let Err(e) = r && e.is_panic() {
                            error!(group = %shared.group, "a lane panicked; its record will be redelivered");
                        }
                    }
                }
                msg = consumer.recv() => {
                    let record = match msg {
                        Ok(m) => Record::from_message(&m),
                        Err(e) => {
                            // Broker unreachable and similar: librdkafka reconnects by itself.
                            warn!(group = %shared.group, error = %e, "consumer poll error");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    };
                    let tp: Tp = (record.topic.clone(), record.partition);
                    let Some(generation) = shared.tracker.generation(&tp) else {
                        // Fetched before a revoke took effect: the partition's next owner will get it.
                        continue;
                    };
                    let wait_started = Instant::now();
                    let permit = match permits.clone().try_acquire_owned() {
                        Ok(p) => p,
                        Err(_) => match permits.clone().acquire_owned().await {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                    };
                    if !shared.tracker.dispatched(&tp, generation, record.offset) {
                        continue;
                    }
                    shared.metrics.in_flight.inc();
                    let key = record.key.clone().unwrap_or_default();
                    let lane = lanes.entry((tp.clone(), key)).or_insert_with(|| {
                        let (tx, rx) = mpsc::channel(cfg.lane_capacity);
                        let busy = Arc::new(AtomicUsize::new(0));
                        lane_tasks.spawn(run_lane(shared.clone(), rx, busy.clone()));
                        Lane { tx, busy }
                    });
                    lane.busy.fetch_add(1, Ordering::AcqRel);
                    let job = Job { record, tp, generation, _permit: permit };
                    if let Err(mpsc::error::SendError(job)) = lane.tx.send(job).await {
                        // The lane task is gone (it panicked): nothing ran, so the offset stays outstanding and
                        // is redelivered after a restart. Count it loudly.
                        error!(group = %shared.group, offset = job.record.offset, "lane closed; record left outstanding");
                        shared.metrics.in_flight.dec();
                    }
                    let waited = wait_started.elapsed();
                    if waited > Duration::from_millis(1) {
                        shared.metrics.backpressure_seconds.inc_by(waited.as_secs_f64());
                    }
                }
            }
        }

        // Graceful shutdown: stop polling, let lanes finish what they hold, commit the finished prefix.
        info!(group = %shared.group, outstanding = shared.tracker.outstanding(), "draining before shutdown");
        drop(lanes);
        let deadline = tokio::time::sleep(Duration::from_millis(cfg.drain_timeout_ms));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                joined = lane_tasks.join_next() => if joined.is_none() { break },
                _ = &mut deadline => {
                    warn!(group = %shared.group, "drain deadline passed; unfinished records will be redelivered");
                    shared.stop.cancel();
                    // Give running handlers a moment to notice, then abort them (their offsets stay uncommitted).
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    lane_tasks.shutdown().await;
                    break;
                }
            }
        }
        let assigned = shared.tracker.assigned();
        let positions = shared.tracker.positions(&assigned);
        store_positions(&consumer, &shared);
        if let Ok(tpl) = tpl_of(&positions)
            && tpl.count() > 0
        {
            // A refused final commit costs a redelivery of everything finished since the last auto-commit, so
            // it is worth a few tries (coordinator moving, a rebalance just starting) before leaving.
            for attempt in 1..=FINAL_COMMIT_ATTEMPTS {
                match consumer.commit(&tpl, CommitMode::Sync) {
                    Ok(()) => break,
                    Err(e) if attempt < FINAL_COMMIT_ATTEMPTS => {
                        warn!(group = %shared.group, error = %e, attempt, "final commit failed; retrying");
                        tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
                    }
                    Err(e) => warn!(group = %shared.group, error = %e, "final commit failed; finished records since \
                        the last commit will be redelivered"),
                }
            }
        }
        info!(group = %shared.group, ?positions, "consumer stopped");
        consumer.unsubscribe();
        // Closing leaves the group and joins librdkafka's threads, which blocks for up to a poll interval: off the
        // runtime's workers, so consumers stopping together close together instead of one after another.
        if let Err(e) = tokio::task::spawn_blocking(move || drop(consumer)).await {
            warn!(group = %shared.group, error = %e, "closing the consumer failed");
        }
        Ok(RunStats {
            finished: shared.finished.load(Ordering::Relaxed) as u64,
            dead_lettered: shared.dead_lettered.load(Ordering::Relaxed) as u64,
        })
    }
}

/// How often the graceful shutdown tries its final commit.
const FINAL_COMMIT_ATTEMPTS: u32 = 3;

fn store_positions<H: Handler>(consumer: &StreamConsumer<Ctx<H>>, shared: &Shared<H>) {
    let changed = shared.tracker.take_unstored();
    if changed.is_empty() {
        return;
    }
    match tpl_of(&changed) {
        Ok(tpl) => {
            if let Err(e) = consumer.store_offsets(&tpl) {
                // ERR__STATE: the partition was revoked in between; its drain already committed.
                debug!(group = %shared.group, error = %e, "store offsets failed");
            }
        }
        Err(e) => warn!(group = %shared.group, error = %e, "bad offsets"),
    }
}

async fn run_lane<H: Handler>(shared: Arc<Shared<H>>, mut rx: mpsc::Receiver<Job>, busy: Arc<AtomicUsize>) {
    let mut active: std::collections::VecDeque<Active<H>> = std::collections::VecDeque::new();
    let limit = shared.handler.batch_limit().max(1);
    loop {
        if active.is_empty() {
            match rx.recv().await {
                Some(job) => take(&shared, &busy, &mut active, job),
                None => break,
            }
        }
        while active.len() < limit {
            match rx.try_recv() {
                Ok(job) => take(&shared, &busy, &mut active, job),
                Err(_) => break,
            }
        }
        if active.is_empty() {
            continue;
        }
        let Some(first) = active.front() else { continue };
        let span = info_span!(
            "record",
            topic = %first.job.tp.0, partition = first.job.tp.1, offset = first.job.record.offset,
            conversation = first.job.record.key_str().unwrap_or("")
        );
        if !process(&shared, &mut active, &mut rx, &busy, limit).instrument(span).await {
            // Interrupted (revoke or shutdown): everything taken stays unfinished and is redelivered.
            active.clear();
        }
    }
}

/// Moves a queued job into the lane's working set, unless its partition is no longer ours.
fn take<H: Handler>(
    shared: &Arc<Shared<H>>,
    busy: &Arc<AtomicUsize>,
    active: &mut std::collections::VecDeque<Active<H>>,
    job: Job,
) {
    let live = !shared.stop.is_cancelled() && shared.tracker.start(&job.tp, job.generation);
    if live {
        active.push_back(Active { job, shared: shared.clone(), busy: busy.clone(), finished: false });
    } else {
        // Revoked (or shutting down past the deadline): not finished, so never committed past.
        shared.metrics.in_flight.dec();
        busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Per-record retry bookkeeping for the record at the front of a lane.
#[derive(Default)]
struct Attempts {
    count: u32,
    first_failure_ms: Option<i64>,
}

/// Runs the lane's working set until it is empty. Returns `false` if interrupted (revoke or shutdown) before
/// that; the caller then drops the rest unfinished, so their offsets are not committed.
async fn process<H: Handler>(
    shared: &Arc<Shared<H>>,
    active: &mut std::collections::VecDeque<Active<H>>,
    rx: &mut mpsc::Receiver<Job>,
    busy: &Arc<AtomicUsize>,
    limit: usize,
) -> bool {
    let mut attempts = Attempts::default();
    loop {
        // Records of this key that arrived while the last call ran (or waited) join the batch, so a handler
        // waiting for a missing record (Outcome::Wait) sees it as soon as it is here.
        while active.len() < limit {
            match rx.try_recv() {
                Ok(job) => take(shared, busy, active, job),
                Err(_) => break,
            }
        }
        let Some(front) = active.front() else { break };
        let key = front.job.record.key.clone().unwrap_or_default();
        if front.job.record.header(dlq::REDRIVEN_FROM).is_some() {
            shared.unpark(&key);
        }
        if shared.cfg.park_after_dead_letter
            && let Some(behind) = shared.parked_behind(&key)
        {
            let f = Failure::new(dlq::KIND_PARKED, format!("parked behind dead-lettered record {behind}"));
            if !dead_letter(shared, &front.job, &f, 0, TimestampMs::now().as_millis(), "parked").await {
                return false;
            }
            finish(active);
            attempts = Attempts::default();
            continue;
        }
        let started = Instant::now();
        let outcome = {
            let records: Vec<&Record> = active.iter().map(|a| &a.job.record).collect();
            shared.handler.handle_batch(&records).await
        };
        shared.metrics.handle_seconds.observe(started.elapsed().as_secs_f64());
        let done = outcome.done.min(active.len());
        for _ in 0..done {
            mark_done(shared, active);
        }
        if done > 0 {
            attempts = Attempts::default();
        }
        let Some(next) = outcome.next else {
            if done == 0 {
                // A handler that neither finished nor failed anything would spin: treat it as a bug, retry.
                warn!("handler made no progress on a batch; retrying");
                if !pause_front(shared, active, shared.cfg.retry.backoff(1)).await {
                    return false;
                }
            }
            continue;
        };
        let Some(front) = active.front() else {
            warn!("handler reported an outcome past the end of its batch; ignored");
            break;
        };
        match next {
            Outcome::Done => {
                mark_done(shared, active);
                attempts = Attempts::default();
            }
            Outcome::Wait(d) => {
                shared.metrics.waits.inc();
                if !pause_front(shared, active, d.clamp(Duration::from_millis(5), Duration::from_secs(5))).await {
                    return false;
                }
            }
            Outcome::DeadLetter(f) => {
                attempts.count += 1;
                let first = *attempts.first_failure_ms.get_or_insert_with(|| TimestampMs::now().as_millis());
                if !dead_letter(shared, &front.job, &f, attempts.count, first, "dead_letter").await {
                    return false;
                }
                finish(active);
                attempts = Attempts::default();
            }
            Outcome::Retry(f) => {
                attempts.count += 1;
                let first = *attempts.first_failure_ms.get_or_insert_with(|| TimestampMs::now().as_millis());
                if attempts.count >= shared.cfg.retry.max_attempts {
                    let f = Failure::new(
                        dlq::KIND_RETRIES_EXHAUSTED,
                        format!("{} attempts failed; last: {}: {}", attempts.count, f.kind, f.reason),
                    );
                    if !dead_letter(shared, &front.job, &f, attempts.count, first, "dead_letter").await {
                        return false;
                    }
                    finish(active);
                    attempts = Attempts::default();
                    continue;
                }
                shared.metrics.retries.inc();
                let backoff = shared.cfg.retry.backoff(attempts.count);
                debug!(attempt = attempts.count, kind = %f.kind, reason = %f.reason, backoff_ms = backoff.as_millis() as u64, "retrying");
                if !pause_front(shared, active, backoff).await {
                    return false;
                }
            }
        }
    }
    true
}

fn mark_done<H: Handler>(shared: &Shared<H>, active: &mut std::collections::VecDeque<Active<H>>) {
    if let Some(a) = active.front() {
        shared.metrics.records.with_label_values(&["done"]).inc();
        observe_age(shared, &a.job.record, "done");
        shared.finished.fetch_add(1, Ordering::Relaxed);
    }
    finish(active);
}

/// Pops the front job as finished: its offset may now be committed past.
fn finish<H: Handler>(active: &mut std::collections::VecDeque<Active<H>>) {
    if let Some(mut a) = active.pop_front() {
        a.finished = true;
    }
}

async fn pause_front<H: Handler>(
    shared: &Shared<H>,
    active: &std::collections::VecDeque<Active<H>>,
    d: Duration,
) -> bool {
    match active.front() {
        Some(a) => pause(shared, &a.job, d).await,
        None => true,
    }
}

/// Sleeps unless the partition is revoked or shutdown passes its deadline; false if interrupted.
async fn pause<H: Handler>(shared: &Shared<H>, job: &Job, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => shared.tracker.generation(&job.tp) == Some(job.generation),
        _ = shared.stop.cancelled() => false,
    }
}

/// Writes the job's record to the DLQ (retrying the write until it succeeds or the lane is interrupted);
/// the caller then finishes the job.
async fn dead_letter<H: Handler>(
    shared: &Shared<H>,
    job: &Job,
    f: &Failure,
    attempts: u32,
    first_failure_ms: i64,
    outcome: &'static str,
) -> bool {
    let r = &job.record;
    let mut tries = 0u32;
    loop {
        match shared.dlq.send(r, f, attempts, first_failure_ms).await {
            Ok(d) => {
                error!(
                    kind = %f.kind, reason = %f.reason, attempts, dlq_partition = d.partition, dlq_offset = d.offset,
                    "record dead-lettered"
                );
                shared.metrics.records.with_label_values(&[outcome]).inc();
                observe_age(shared, r, outcome);
                shared.dead_lettered.fetch_add(1, Ordering::Relaxed);
                if shared.cfg.park_after_dead_letter {
                    let id = format!("{}/{}@{}", r.topic, r.partition, r.offset);
                    shared.park(r.key.as_deref().unwrap_or_default(), id);
                }
                return true;
            }
            Err(e) => {
                // The DLQ write must succeed before the offset moves, or the record would be lost.
                tries += 1;
                warn!(error = %e, tries, "dead-letter write failed; retrying");
                if !pause(shared, job, shared.cfg.retry.backoff(tries.min(10))).await {
                    return false;
                }
            }
        }
    }
}

fn observe_age<H: Handler>(shared: &Shared<H>, r: &Record, outcome: &str) {
    if let Some(ts) = r.timestamp_ms {
        let age = (TimestampMs::now().as_millis() - ts).max(0) as f64 / 1000.0;
        shared.metrics.record_age_seconds.with_label_values(&[outcome]).observe(age);
    }
}

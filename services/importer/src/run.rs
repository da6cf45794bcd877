//! `imbridge import DIR`: validate → survey → topics → `importing` states → produce ∥ apply → wait → report.
//!
//! The steps, and what makes each one safe to interrupt at any moment (kill -9 included):
//!
//! 1. **Validate** the export ([`crate::check_export`]); `--dry-run` stops here, `--strict` refuses a dirty one.
//! 2. **Survey** the plan ([`crate::survey`]): conversations with history and the calls per API, hence the
//!    quota-bound lower bound printed at the end.
//! 3. **Topics**: the four import topics (partitions from `[topics]`), the DLQ, the compacted conversation
//!    states and the compacted checkpoint topic are created when missing.
//! 4. **Checkpoint**: the export's fingerprint names its latest [`RunCheckpoint`]; an unfinished one is
//!    resumed, a finished one starts the next generation (a re-run), none starts generation 1.
//! 5. **States**: `importing` for every conversation and group with history, acknowledged before any history
//!    is produced (once per run: the checkpoint remembers).
//! 6. **Produce** the four streams concurrently ([`crate::produce`]), each skipping what the checkpoint says was
//!    acknowledged, the checkpoint rewritten every `checkpoint_interval_ms`.
//! 7. **Apply** with one consumer per topic ([`crate::apply`]): accounts at once; users, c2c and
//!    groups as soon as the accounts topic is fully applied (its group's committed offsets reached its end
//!    offsets after all accounts were produced). Committed offsets are the apply's durable progress.
//! 8. **Wait** until every stream is produced and every group's committed offsets reach the end offsets, then
//!    stop the consumers (drain, commit), mark the checkpoint completed and build the [`ImportReport`].

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::apply::{ApplyContext, ApplyStats, ConsumerTask, ConversationStates, RecordOutcome, headers};
use imbridge_core::state::Phase;
use imbridge_core::topics::{ImportPhase, Topic, TopicNames};
use imbridge_core::{EventKind, TimestampMs};
use imbridge_im::{Api, ImClient, ImConfig, Priority};
use imbridge_kafka::Producer;
use imbridge_kafka::admin::{Admin, PartitionOffsets};
use imbridge_kafka::consumer::Progress as ConsumerProgress;
use imbridge_kafka::dlq::{self, DlqProducer};
use imbridge_kafka::metrics::ConsumerMetrics;
use imbridge_kafka::reader::{Start, read_range_with};
use imbridge_runtime::Deps;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::checkpoint::{CheckpointStore, RunCheckpoint, fingerprint};
use crate::config::ImportConfig;
use crate::export::ExportKind;
use crate::outcome::{FailureGroup, ImportReport, KindOutcome};
use crate::produce::{produce_topic, topic_stream};
use crate::progress::{Progress, ProgressMode, Say};
use crate::survey::{LowerBound, Survey, survey};
use crate::{Error, ImportPlan, Report, ValidateOptions};

/// One invocation's options.
#[derive(Clone)]
pub struct RunOptions {
    pub dir: PathBuf,
    pub strict: bool,
    pub dry_run: bool,
    pub validate: ValidateOptions,
    pub progress: ProgressMode,
    /// Where text goes (the binary prints to stdout).
    pub say: Say,
    /// When the command started (the wall time is measured from here).
    pub started: Instant,
    /// Apply counters to use instead of registering new ones (benchmarks sample them while the run goes).
    pub stats: Option<ApplyStats>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions").field("dir", &self.dir).field("dry_run", &self.dry_run).finish_non_exhaustive()
    }
}

/// How a run ended.
#[derive(Debug)]
pub enum RunResult {
    /// `--dry-run`: the validation report and what an import would take.
    DryRun { report: Box<Report>, lower_bound: LowerBound, survey_calls: crate::survey::CallPlan },
    /// `--strict` and invalid records: nothing imported.
    Refused { report: Box<Report> },
    /// Imported (possibly with failed records; see the report).
    Imported(Box<ImportReport>),
}

/// The configured name of each import phase's topic.
pub fn topic_name(topics: &TopicNames, which: ImportPhase) -> &str {
    topics.name(which.topic())
}

/// The event kinds one topic carries (for progress totals).
fn kinds_of(which: ImportPhase) -> &'static [EventKind] {
    match which {
        ImportPhase::Accounts => &[EventKind::ImportAccount],
        ImportPhase::Users => &[EventKind::ImportProfile, EventKind::ImportFriendship],
        ImportPhase::C2c => &[EventKind::ImportC2cMessage, EventKind::ImportC2cRead],
        ImportPhase::Groups => &[
            EventKind::ImportGroup,
            EventKind::ImportGroupMember,
            EventKind::ImportGroupMessage,
            EventKind::ImportMemberUnread,
        ],
    }
}

/// Every apply kind in report order.
pub const REPORT_KINDS: [EventKind; 10] = EventKind::IMPORT;

/// The export kind whose invalid lines would have become records of `kind`.
fn export_kind_of(kind: EventKind) -> Option<ExportKind> {
    match kind {
        EventKind::ImportAccount => Some(ExportKind::Accounts),
        EventKind::ImportProfile => Some(ExportKind::Profiles),
        EventKind::ImportFriendship => Some(ExportKind::Friends),
        EventKind::ImportC2cMessage => Some(ExportKind::C2cMessages),
        EventKind::ImportC2cRead => Some(ExportKind::C2cReads),
        EventKind::ImportGroup => Some(ExportKind::Groups),
        EventKind::ImportGroupMember => Some(ExportKind::GroupMembers),
        EventKind::ImportGroupMessage => Some(ExportKind::GroupMessages),
        _ => None,
    }
}

/// The quota the client runs each API at (`None` = unlimited).
pub fn client_rate(im: &ImConfig, api: Api) -> Option<f64> {
    im.rate_for(api).per_sec()
}

/// Runs `imbridge import` with `[import]` and the shared dependencies every part gets (Kafka, `[topics]`, `[im]`).
/// Metrics (client, consumers, apply) are registered on `deps.registry`; `deps.shutdown` (Ctrl-C / SIGTERM)
/// stops the run, leaving everything resumable.
pub async fn run(import: &ImportConfig, deps: &Deps, options: RunOptions) -> Result<RunResult, Error> {
    import.validate()?;
    let say = options.say.clone();
    let prepare_started = Instant::now();
    let (plan, report) = {
        let dir = options.dir.clone();
        let validate = options.validate.clone();
        let strict = options.strict;
        blocking(move || crate::check_export(&dir, &validate, strict)).await?
    };
    say(&report.to_text());
    if !report.may_import() {
        return Ok(RunResult::Refused { report: Box::new(report) });
    }
    let survey = {
        let plan = plan.clone();
        blocking(move || survey(&plan)).await?
    };
    let bound = survey.calls.lower_bound(|api| client_rate(&deps.im, api));
    if options.dry_run {
        return Ok(RunResult::DryRun { report: Box::new(report), lower_bound: bound, survey_calls: survey.calls });
    }
    let prepare_secs = prepare_started.elapsed().as_secs_f64();
    let mut run = Run::new(import, deps, &options, plan, survey, report).await?;
    let outcome = run.execute().await;
    let report = match outcome {
        Ok(()) => run.report(bound, prepare_secs).await?,
        Err(e) => {
            run.abort().await;
            return Err(e);
        }
    };
    Ok(RunResult::Imported(Box::new(report)))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Run(format!("background task failed: {e}")))?
}

/// Dead-lettered records by (kind, error): count and the first reason.
type FailureTally = BTreeMap<(String, String), (u64, String)>;

/// One run in progress.
struct Run<'a> {
    import: &'a ImportConfig,
    deps: &'a Deps,
    options: &'a RunOptions,
    plan: ImportPlan,
    survey: Survey,
    export_report: Report,
    admin: Admin,
    producer: Producer,
    im: ImClient,
    stats: ApplyStats,
    checkpoints: CheckpointStore,
    checkpoint: RunCheckpoint,
    acked: BTreeMap<ImportPhase, Arc<AtomicU64>>,
    consumers: Vec<(ImportPhase, ConsumerTask)>,
    /// Each running consumer's finished positions, ahead of its commits.
    progress: BTreeMap<ImportPhase, ConsumerProgress>,
    /// Each fully produced topic's partitions as last asked of the broker, and when: their end offsets no longer
    /// move, so the broker is asked again only every [`OFFSETS_REFRESH`].
    offsets: BTreeMap<ImportPhase, (Instant, Vec<PartitionOffsets>)>,
    consumers_stop: CancellationToken,
    produce_stop: CancellationToken,
    /// This run's share of IM's quotas, as history (lowest priority); held for the run's lifetime.
    _quota: Option<imbridge_runtime::quota::Coordination>,
}

/// How long the end and committed offsets of a fully produced topic are trusted before they are asked again.
/// The end no longer moves; the commits only matter for partitions this run's consumer has received nothing of.
const OFFSETS_REFRESH: Duration = Duration::from_secs(1);

/// The IM APIs an import calls (its apply and verify), whose quotas it shares with the other parts.
pub const IMPORT_APIS: [Api; 15] = [
    Api::MultiAccountImport,
    Api::AccountCheck,
    Api::PortraitSet,
    Api::PortraitGet,
    Api::FriendImport,
    Api::FriendGet,
    Api::ImportMsg,
    Api::AdminSetMsgRead,
    Api::ImportGroup,
    Api::ImportGroupMember,
    Api::ImportGroupMsg,
    Api::SetUnreadMsgNum,
    Api::GetGroupInfo,
    Api::GroupMsgGetSimple,
    Api::AdminGetRoamMsg,
];

impl<'a> Run<'a> {
    async fn new(
        import: &'a ImportConfig,
        deps: &'a Deps,
        options: &'a RunOptions,
        plan: ImportPlan,
        survey: Survey,
        export_report: Report,
    ) -> Result<Self, Error> {
        let admin = Admin::new(&deps.kafka)?;
        let producer = Producer::new(&deps.kafka)?;
        let im = ImClient::new(&deps.im, &deps.registry)?;
        let quota = imbridge_runtime::quota::coordinate(deps, &im, "import", Priority::History, &IMPORT_APIS)?;
        let stats = match &options.stats {
            Some(s) => s.clone(),
            None => ApplyStats::new(&deps.registry).map_err(|e| Error::Run(format!("metrics: {e}")))?,
        };
        let t = &deps.topics;
        let checkpoints = CheckpointStore::new(&deps.kafka, &t.import_checkpoints, producer.clone());
        let topics: Vec<Topic> =
            Topic::IMPORT.into_iter().chain([Topic::Dlq, Topic::Conversations, Topic::ImportCheckpoints]).collect();
        let topics_started = Instant::now();
        imbridge_kafka::topology::ensure(&admin, t, &topics).await?;
        info!(elapsed_ms = topics_started.elapsed().as_millis() as u64, "topics ready");

        let names: Vec<String> = ImportPhase::ALL.iter().map(|w| topic_name(t, *w).to_owned()).collect();
        let dir = crate::ExportDir::open(&options.dir)?;
        let fp = blocking(move || fingerprint(&dir, &names.iter().map(String::as_str).collect::<Vec<_>>())).await?;
        let checkpoint_started = Instant::now();
        let latest = checkpoints.latest(&admin, &fp).await?;
        info!(elapsed_ms = checkpoint_started.elapsed().as_millis() as u64, "checkpoint read");
        let export_dir = options.dir.display().to_string();
        let (checkpoint, resumed) = RunCheckpoint::next(latest, &fp, &export_dir, TimestampMs::now().as_millis());
        if resumed {
            (options.say)(&format!(
                "resuming run {} (attempt {}): {} records already produced",
                checkpoint.run_id,
                checkpoint.attempts,
                checkpoint.produced.values().sum::<u64>()
            ));
        } else {
            (options.say)(&format!("starting run {} (generation {})", checkpoint.run_id, checkpoint.generation));
        }
        info!(run = %checkpoint.run_id, attempt = checkpoint.attempts, resumed, "import run starting");
        let acked = ImportPhase::ALL.iter().map(|w| (*w, Arc::new(AtomicU64::new(0)))).collect();
        Ok(Self {
            import,
            deps,
            options,
            plan,
            survey,
            export_report,
            admin,
            producer,
            im,
            stats,
            checkpoints,
            checkpoint,
            acked,
            consumers: Vec::new(),
            progress: BTreeMap::new(),
            offsets: BTreeMap::new(),
            consumers_stop: CancellationToken::new(),
            produce_stop: CancellationToken::new(),
            _quota: quota,
        })
    }

    fn topic(&self, which: ImportPhase) -> &str {
        topic_name(&self.deps.topics, which)
    }

    fn produced_total(&self) -> u64 {
        self.acked.values().map(|a| a.load(Ordering::Acquire)).sum()
    }

    fn refresh_checkpoint(&mut self) {
        for w in ImportPhase::ALL {
            let n = self.acked.get(&w).map_or(0, |a| a.load(Ordering::Acquire));
            self.checkpoint.produced.insert(self.topic(w).to_owned(), n);
        }
    }

    async fn execute(&mut self) -> Result<(), Error> {
        // Accounts depend on nothing, and joining the group takes a while: the consumer joins while the run
        // records its checkpoint and the conversations' states (which only the later phases' records need).
        self.start_consumer(ImportPhase::Accounts)?;
        self.checkpoints.write(&self.checkpoint).await?;
        if !self.checkpoint.states_written {
            let keys: Vec<_> = self.survey.c2c.keys().chain(self.survey.groups.keys()).cloned().collect();
            let states = ConversationStates::new(self.producer.clone(), &self.deps.topics.conversations);
            states.set_many(&keys, Phase::Importing, Some(&self.checkpoint.run_id)).await?;
            self.checkpoint.states_written = true;
            self.checkpoints.write(&self.checkpoint).await?;
            info!(conversations = keys.len(), "importing recorded for every conversation with history");
        }

        // Producers: one task per topic, each resuming at its checkpointed position.
        let mut producers: Vec<(ImportPhase, JoinHandle<Result<u64, Error>>)> = Vec::new();
        for which in ImportPhase::ALL {
            let topic = self.topic(which).to_owned();
            let skip = self.checkpoint.produced.get(&topic).copied().unwrap_or(0);
            let markers = match which {
                ImportPhase::C2c => &self.survey.c2c,
                _ => &self.survey.groups,
            };
            let stream = topic_stream(&self.plan, which, markers, &self.checkpoint.run_id);
            let producer = self.producer.clone();
            let window = self.import.produce_window;
            let acked = self.acked.get(&which).cloned().unwrap_or_default();
            let stop = self.produce_stop.clone();
            producers.push((
                which,
                tokio::spawn(async move {
                    tokio::select! {
                        r = produce_topic(&producer, &topic, stream, skip, window, acked) => r,
                        _ = stop.cancelled() => Err(Error::Interrupted("producing stopped".into())),
                    }
                }),
            ));
        }

        let mut totals: Vec<(EventKind, u64)> = Vec::new();
        for w in ImportPhase::ALL {
            for k in kinds_of(w) {
                totals.push((*k, self.plan.counts().get(k).copied().unwrap_or(0)));
            }
        }
        totals.push((EventKind::ImportConversationDone, (self.survey.c2c.len() + self.survey.groups.len()) as u64));
        let produce_total: u64 =
            self.plan.counts().values().sum::<u64>() + (self.survey.c2c.len() + self.survey.groups.len()) as u64;
        let mut progress = Progress::new(
            self.options.progress,
            produce_total,
            &totals,
            self.options.say.clone(),
            Duration::from_secs(self.import.progress_interval_secs),
        );

        let poll = Duration::from_millis(self.import.poll_interval_ms);
        let checkpoint_every = Duration::from_millis(self.import.checkpoint_interval_ms);
        let mut last_checkpoint = Instant::now();
        let mut produced_done: HashSet<ImportPhase> = HashSet::new();
        let mut applied_done: HashSet<ImportPhase> = HashSet::new();
        let mut dependents_started = false;
        let mut last_lag_check = Instant::now() - poll;
        // The loop wakes as often as the lag is checked (the check is in memory between broker refreshes), so
        // the dependent phases start, and the run ends, within a poll interval of the work.
        let mut tick = tokio::time::interval(poll.min(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.deps.shutdown.cancelled() => {
                    progress.finish(self.produced_total(), &self.stats);
                    return Err(Error::Interrupted("stopped by a signal; run the same command again to continue".into()));
                }
                _ = tick.tick() => {}
            }
            // Producers that finished (or failed).
            for (which, task) in &mut producers {
                if produced_done.contains(which) || !task.is_finished() {
                    continue;
                }
                match task.await {
                    Ok(Ok(n)) => {
                        info!(topic = topic_name(&self.deps.topics, *which), records = n, "topic produced");
                        produced_done.insert(*which);
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(Error::Run(format!("producer task failed: {e}"))),
                }
            }
            if produced_done.len() == ImportPhase::ALL.len() && !self.checkpoint.produce_complete {
                self.checkpoint.produce_complete = true;
                last_checkpoint -= checkpoint_every;
            }
            if last_checkpoint.elapsed() >= checkpoint_every {
                self.refresh_checkpoint();
                self.checkpoints.write(&self.checkpoint).await?;
                last_checkpoint = Instant::now();
            }
            for (which, task) in &self.consumers {
                if task.is_finished() {
                    return Err(Error::Run(format!("the {} consumer stopped unexpectedly", which.as_str())));
                }
            }
            // Committed offsets against end offsets, for topics fully produced and not yet confirmed applied.
            if last_lag_check.elapsed() >= poll {
                last_lag_check = Instant::now();
                for which in ImportPhase::ALL {
                    let started = self.consumers.iter().any(|(w, _)| *w == which);
                    if !started || applied_done.contains(&which) || !produced_done.contains(&which) {
                        continue;
                    }
                    if self.lag(which).await? == 0 {
                        info!(topic = self.topic(which), "topic fully applied");
                        applied_done.insert(which);
                    }
                }
            }
            if !dependents_started && applied_done.contains(&ImportPhase::Accounts) {
                dependents_started = true;
                for which in [ImportPhase::Users, ImportPhase::C2c, ImportPhase::Groups] {
                    self.start_consumer(which)?;
                }
                info!("accounts applied; users, c2c and groups started");
            }
            progress.update(self.produced_total(), &self.stats);
            if applied_done.len() == ImportPhase::ALL.len() {
                break;
            }
        }
        progress.finish(self.produced_total(), &self.stats);
        self.stop_consumers().await;
        self.refresh_checkpoint();
        self.checkpoint.completed = true;
        self.checkpoint.completed_at_ms = Some(TimestampMs::now().as_millis());
        self.checkpoints.write(&self.checkpoint).await?;
        info!(run = %self.checkpoint.run_id, "import run completed");
        Ok(())
    }

    fn start_consumer(&mut self, which: ImportPhase) -> Result<(), Error> {
        let t = &self.deps.topics;
        let ctx = Arc::new(ApplyContext {
            im: self.im.clone(),
            stats: self.stats.clone(),
            states: ConversationStates::new(self.producer.clone(), &t.conversations),
            config: self.import.apply.clone(),
        });
        let metrics = ConsumerMetrics::new(&self.deps.registry, &format!("import_{}", which.as_str()))
            .map_err(|e| Error::Run(format!("metrics: {e}")))?;
        let group = self.import.group_of(which);
        // Static membership: an import restarted after a crash takes its partitions back at once instead of
        // waiting out the dead member's session (45 s), and a second concurrent import of the same groups is
        // fenced rather than splitting the partitions.
        let mut kafka = self.deps.kafka.clone();
        kafka.client.entry("group.instance.id".to_owned()).or_insert_with(|| format!("{group}.importer"));
        let (task, progress) = crate::apply::spawn_consumer(
            which,
            &kafka,
            &group,
            topic_name(t, which),
            self.import.consumer.clone(),
            ctx,
            DlqProducer::new(self.producer.clone(), &t.dlq),
            metrics,
            self.consumers_stop.clone(),
        )?;
        self.consumers.push((which, task));
        self.progress.insert(which, progress);
        Ok(())
    }

    /// Records of a fully produced topic not yet finished by its consumer: the end offsets against the furthest of
    /// the group's committed offsets and the running consumer's finished positions, so the end is seen as soon as
    /// the last record is handled, not an auto-commit later.
    async fn lag(&mut self, which: ImportPhase) -> Result<i64, Error> {
        let known = self.offsets.get(&which).map(|(at, _)| *at);
        if known.is_none_or(|at| at.elapsed() >= OFFSETS_REFRESH) {
            // The first look needs only the end offsets (the shared client answers at once); the group's commits,
            // which need a client of their own, matter only for partitions this run received nothing of, as on a
            // resumed run, and are asked from the first refresh on.
            let group = known.map(|_| self.import.group_of(which));
            let offsets = self.admin.offsets(self.topic(which), group.as_deref()).await?;
            self.offsets.insert(which, (Instant::now(), offsets));
        }
        let finished: BTreeMap<i32, i64> = self
            .progress
            .get(&which)
            .map(|p| p.positions().into_iter().map(|((_, partition), pos)| (partition, pos)).collect())
            .unwrap_or_default();
        let offsets = self.offsets.get(&which).map(|(_, o)| o.as_slice()).unwrap_or_default();
        Ok(offsets.iter().map(|p| p.lag_after(finished.get(&p.partition).copied())).sum())
    }

    async fn stop_consumers(&mut self) {
        self.consumers_stop.cancel();
        for (which, task) in self.consumers.drain(..) {
            match task.await {
                Ok(Ok(stats)) => info!(topic = which.as_str(), finished = stats.finished, "consumer stopped"),
                Ok(Err(e)) => warn!(topic = which.as_str(), error = %e, "consumer stopped with an error"),
                Err(e) => warn!(topic = which.as_str(), error = %e, "consumer task failed"),
            }
        }
    }

    /// On interruption or failure: stop producing, record how far producing got, stop the consumers cleanly.
    async fn abort(&mut self) {
        self.produce_stop.cancel();
        self.refresh_checkpoint();
        if let Err(e) = self.checkpoints.write(&self.checkpoint).await {
            warn!(error = %e, "cannot write the checkpoint; a re-run re-produces from the previous one");
        }
        self.stop_consumers().await;
    }

    async fn report(&self, lower_bound: LowerBound, prepare_secs: f64) -> Result<ImportReport, Error> {
        let failures = self.failures().await?;
        let mut failed_by_kind: BTreeMap<String, u64> = BTreeMap::new();
        for f in &failures {
            *failed_by_kind.entry(f.kind.clone()).or_default() += f.count;
        }
        let kinds = REPORT_KINDS
            .iter()
            .map(|k| {
                let label = crate::progress::label(*k).to_owned();
                let records = match k {
                    EventKind::ImportConversationDone => (self.survey.c2c.len() + self.survey.groups.len()) as u64,
                    _ => self.plan.counts().get(k).copied().unwrap_or(0),
                };
                KindOutcome {
                    records,
                    imported: self.stats.get(*k, RecordOutcome::Imported),
                    already_present: self.stats.get(*k, RecordOutcome::AlreadyPresent),
                    failed: failed_by_kind.get(&label).copied().unwrap_or(0),
                    skipped_invalid: export_kind_of(*k).map_or(0, |e| self.plan.validation().summary(e).invalid),
                    kind: label,
                }
            })
            .collect();
        let m = self.im.metrics();
        let calls = Api::ALL
            .iter()
            .map(|a| {
                let n: u64 = ["ok", "retryable", "permanent"]
                    .iter()
                    .map(|o| m.calls.with_label_values(&[a.as_str(), o]).get())
                    .sum();
                (a.as_str().to_owned(), n)
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let frequency_limited = Api::ALL
            .iter()
            .flat_map(|a| ["60007", "60011", "60018", "60019"].map(|c| (a, c)))
            .map(|(a, c)| m.frequency_limited.with_label_values(&[a.as_str(), c]).get())
            .sum();
        let wall_secs = self.options.started.elapsed().as_secs_f64();
        let ratio = (lower_bound.secs > 0.0).then(|| wall_secs / lower_bound.secs);
        Ok(ImportReport {
            run_id: self.checkpoint.run_id.clone(),
            generation: self.checkpoint.generation,
            attempts: self.checkpoint.attempts,
            export: self.export_report.clone(),
            kinds,
            failures,
            planned_calls: self.survey.calls.clone(),
            calls,
            frequency_limited,
            lower_bound,
            wall_secs,
            prepare_secs,
            ratio,
        })
    }

    /// This run's dead-lettered records (all attempts), grouped by kind and error.
    async fn failures(&self) -> Result<Vec<FailureGroup>, Error> {
        let groups: Arc<std::sync::Mutex<FailureTally>> = Arc::default();
        let sink = groups.clone();
        let run_id = self.checkpoint.run_id.clone();
        let import_topics: HashSet<String> = ImportPhase::ALL.iter().map(|w| self.topic(*w).to_owned()).collect();
        // Only records dead-lettered since the run began can belong to it.
        let start = Start::Time(self.checkpoint.started_at_ms - 1_000);
        read_range_with(&self.admin, &self.deps.kafka, &self.deps.topics.dlq, None, start, move |r| {
            let ours = r.header_str(headers::RUN_ID) == Some(run_id.as_str())
                && r.header_str(dlq::ORIGINAL_TOPIC).is_some_and(|t| import_topics.contains(t));
            if ours {
                let kind = r.envelope().map(|e| crate::progress::label(e.kind()).to_owned()).unwrap_or_default();
                let error = r.header_str(dlq::ERROR_KIND).unwrap_or("unknown").to_owned();
                let reason = r.header_str(dlq::ERROR_REASON).unwrap_or("").to_owned();
                if let Ok(mut g) = sink.lock() {
                    let e = g.entry((kind, error)).or_insert((0, reason));
                    e.0 += 1;
                }
            }
            true
        })
        .await?;
        let groups = groups.lock().map(|g| g.clone()).unwrap_or_default();
        Ok(groups
            .into_iter()
            .map(|((kind, error), (count, example))| FailureGroup { kind, error, count, example })
            .collect())
    }
}

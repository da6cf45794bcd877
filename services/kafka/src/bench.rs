//! `imbridge bench kafka`: events/s through imbridge's producer and ordered consumer for 1 KB events, beside
//! Kafka's own `ProducerPerformance` / `ConsumerPerformance` run against the same broker in the same run.
//!
//! The machines are shared and noisy, so the figure that matters is the ratio to the baseline measured a
//! moment earlier on the same broker, not the absolute rate.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use imbridge_telemetry::bench::{CpuTimes, Latencies, LatencySummary, cpu_times, peak_rss_mib};
use tokio_util::sync::CancellationToken;

use crate::admin::{Admin, TopicSpec};
use crate::config::{ConsumerConfig, KafkaConfig};
use crate::consumer::{Handler, OrderedConsumer};
use crate::dlq::DlqProducer;
use crate::error::KafkaError;
use crate::metrics::ConsumerMetrics;
use crate::producer::{Outgoing, Producer};
use crate::record::{Outcome, Record};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub events: u64,
    pub event_bytes: usize,
    pub partitions: i32,
    /// Distinct conversation keys the events are spread over.
    pub keys: u64,
    /// Classpath of Kafka's jars for the baseline; `None` skips the baseline (and says so).
    pub kafka_classpath: Option<String>,
}

/// One measured phase.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    pub name: String,
    pub events: u64,
    pub secs: f64,
    /// `None` when /proc could not be read (shown as "-", never as 0).
    pub cpu_secs: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub latency: Option<LatencySummary>,
}

impl Phase {
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 { self.events as f64 / self.secs } else { 0.0 }
    }
}

/// The whole report.
#[derive(Debug, Clone, Default)]
pub struct BenchReport {
    pub ours_produce: Phase,
    pub ours_consume: Phase,
    pub java_produce: Option<Phase>,
    pub java_consume: Option<Phase>,
    pub notes: Vec<String>,
}

impl BenchReport {
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<34} {:>10} {:>9} {:>12} {:>9} {:>10}  latency",
            "phase", "events", "secs", "events/s", "cpu s", "peak MiB"
        );
        let mut row = |p: &Phase| {
            let rss = p.peak_rss_mib.map_or("-".to_owned(), |m| format!("{m:.0}"));
            let cpu = p.cpu_secs.map_or("-".to_owned(), |c| format!("{c:.2}"));
            let lat = p.latency.map_or("-".to_owned(), |l| l.to_string());
            let _ = writeln!(
                s,
                "{:<34} {:>10} {:>9.2} {:>12.0} {:>9} {:>10}  {lat}",
                p.name,
                p.events,
                p.secs,
                p.rate(),
                cpu,
                rss
            );
        };
        row(&self.ours_produce);
        if let Some(j) = &self.java_produce {
            row(j);
        }
        row(&self.ours_consume);
        if let Some(j) = &self.java_consume {
            row(j);
        }
        let ratio = |a: &Phase, b: &Option<Phase>| b.as_ref().filter(|b| b.rate() > 0.0).map(|b| a.rate() / b.rate());
        if let Some(r) = ratio(&self.ours_produce, &self.java_produce) {
            let _ = writeln!(s, "produce ratio (imbridge / kafka ProducerPerformance): {r:.2}");
        }
        if let Some(r) = ratio(&self.ours_consume, &self.java_consume) {
            let _ = writeln!(s, "consume ratio (imbridge ordered consumer / kafka ConsumerPerformance): {r:.2}");
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }
}

struct Counter {
    handled: AtomicU64,
}

impl Handler for Counter {
    async fn handle(&self, _record: &Record) -> Outcome {
        self.handled.fetch_add(1, Ordering::Relaxed);
        Outcome::Done
    }
}

/// This process's own CPU seconds since `before` (`None` when either reading failed).
fn own_cpu_since(before: Option<CpuTimes>) -> Option<f64> {
    Some(cpu_times(None)?.since(&before?).own_secs)
}

/// Runs the benchmark against the broker in `kafka`. Topics are created with unique names and left behind
/// (a benchmark broker is disposable). A phase that measured nothing (no events handled, a baseline tool's
/// output it cannot read) is an error: never a rate or a latency of 0.
pub async fn run(kafka: &KafkaConfig, opts: &BenchOptions) -> Result<BenchReport, KafkaError> {
    if opts.events == 0 {
        return Err(KafkaError::Bench("--events 0: nothing to measure".into()));
    }
    let stamp = format!("{}-{}", std::process::id(), Instant::now().elapsed().as_nanos() % 100_000);
    let topic = format!("imbridge-bench-{stamp}");
    let java_topic = format!("imbridge-bench-java-{stamp}");
    let admin = Admin::new(kafka)?;
    admin
        .ensure_topics(&[
            TopicSpec::new(&topic, opts.partitions),
            TopicSpec::new(&java_topic, opts.partitions),
            TopicSpec::new(format!("{topic}-dlq"), 1),
        ])
        .await?;
    let mut report = BenchReport::default();

    // Our producer: enqueue everything, record each acknowledgement's latency as it arrives.
    let producer = Producer::new(kafka)?;
    let payload = vec![b'x'; opts.event_bytes];
    let keys: Vec<String> = (0..opts.keys.max(1)).map(|i| format!("c2c:bench{i:06}:peer{i:06}")).collect();
    let cpu0 = cpu_times(None);
    let started = Instant::now();
    let mut pending = FuturesUnordered::new();
    let mut lat = Latencies::with_capacity(opts.events as usize);
    for i in 0..opts.events {
        let key = &keys[(i % keys.len() as u64) as usize];
        let f = producer.enqueue(&topic, Outgoing { key: key.as_bytes(), payload: &payload, headers: &[] }).await?;
        let t = Instant::now();
        pending.push(async move { (Producer::await_delivery("bench", f).await, t) });
        // Keep the set of outstanding futures bounded; librdkafka batches underneath anyway.
        while pending.len() >= 50_000 {
            if let Some((r, t)) = pending.next().await {
                r?;
                lat.record(t.elapsed());
            }
        }
    }
    while let Some((r, t)) = pending.next().await {
        r?;
        lat.record(t.elapsed());
    }
    report.ours_produce = Phase {
        name: "imbridge producer (acks=all, idem.)".into(),
        events: opts.events,
        secs: started.elapsed().as_secs_f64(),
        cpu_secs: own_cpu_since(cpu0),
        peak_rss_mib: peak_rss_mib(None),
        latency: Some(lat.summary().ok_or_else(|| KafkaError::Bench("no delivery was acknowledged".into()))?),
    };

    // Our ordered consumer, reading the backlog just produced.
    let counter = Arc::new(Counter { handled: AtomicU64::new(0) });
    let group = format!("imbridge-bench-{stamp}");
    let consumer = OrderedConsumer::new(
        kafka,
        &group,
        &[&topic],
        ConsumerConfig::default(),
        counter.clone(),
        DlqProducer::new(producer.clone(), format!("{topic}-dlq")),
        ConsumerMetrics::unregistered("bench"),
    )?;
    let stop = CancellationToken::new();
    let cpu0 = cpu_times(None);
    let started = Instant::now();
    let run = tokio::spawn(consumer.run(stop.clone()));
    let mut first_at = None;
    while counter.handled.load(Ordering::Relaxed) < opts.events {
        if first_at.is_none() && counter.handled.load(Ordering::Relaxed) > 0 {
            first_at = Some(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(600) {
            report.notes.push("ordered consumer did not finish within 600 s".into());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total = started.elapsed();
    let join_secs = first_at.unwrap_or_default().as_secs_f64();
    stop.cancel();
    let _ = run.await;
    if counter.handled.load(Ordering::Relaxed) == 0 {
        return Err(KafkaError::Bench(format!("the ordered consumer handled no event of {topic} within 600 s")));
    }
    report.ours_consume = Phase {
        name: "imbridge ordered consumer".into(),
        events: counter.handled.load(Ordering::Relaxed),
        // Group join is excluded, as ConsumerPerformance's fetch rate excludes its rebalance time.
        secs: (total.as_secs_f64() - join_secs).max(0.001),
        cpu_secs: own_cpu_since(cpu0),
        peak_rss_mib: peak_rss_mib(None),
        latency: None,
    };
    report.notes.push(format!("imbridge consumer group join took {join_secs:.2} s (excluded from its rate)"));

    match &opts.kafka_classpath {
        Some(cp) => {
            report.java_produce = Some(java_produce(cp, &kafka.bootstrap_servers, &java_topic, opts).await?);
            report.java_consume = Some(java_consume(cp, &kafka.bootstrap_servers, &java_topic, opts).await?);
            report.notes.push(
                "Kafka's ProducerPerformance sends unkeyed records (sticky partitioning); imbridge keys every event"
                    .into(),
            );
        }
        None => report.notes.push("no Kafka classpath given: baseline skipped".into()),
    }
    Ok(report)
}

/// Runs one of Kafka's tool classes, returning stdout, wall seconds, CPU seconds and peak RSS of the JVM.
async fn run_java(
    cp: &str,
    class: &str,
    args: &[String],
) -> Result<(String, f64, Option<f64>, Option<f64>), KafkaError> {
    let cpu0 = cpu_times(None);
    let started = Instant::now();
    let mut child = tokio::process::Command::new("java")
        .arg("-Xmx1g")
        .arg("-cp")
        .arg(cp)
        .arg(class)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| KafkaError::Config(format!("cannot run java for the baseline: {e}")))?;
    let pid = child.id();
    let peak = Arc::new(std::sync::Mutex::new(None::<f64>));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(m) = pid.and_then(|p| peak_rss_mib(Some(p)))
                    && let Ok(mut g) = peak.lock()
                {
                    *g = Some(m);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let stdout = child.stdout.take();
    let out = async {
        let mut s = String::new();
        if let Some(mut o) = stdout {
            use tokio::io::AsyncReadExt;
            let _ = o.read_to_string(&mut s).await;
        }
        s
    }
    .await;
    let status = child.wait().await.map_err(|e| KafkaError::Config(format!("java did not finish: {e}")))?;
    sampler.abort();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = e.read_to_string(&mut err).await;
        }
        return Err(KafkaError::Config(format!("{class} failed ({status}): {err}")));
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_times(None).zip(cpu0).map(|(now, before)| now.since(&before).children_secs);
    let peak = peak.lock().ok().and_then(|g| *g);
    Ok((out, secs, cpu, peak))
}

async fn java_produce(cp: &str, bootstrap: &str, topic: &str, opts: &BenchOptions) -> Result<Phase, KafkaError> {
    let args: Vec<String> = [
        "--topic",
        topic,
        "--num-records",
        &opts.events.to_string(),
        "--record-size",
        &opts.event_bytes.to_string(),
        "--throughput",
        "-1",
        "--producer-props",
        &format!("bootstrap.servers={bootstrap}"),
        "acks=all",
        "enable.idempotence=true",
        "linger.ms=5",
        "compression.type=lz4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The tool's own rate excludes its JVM start-up; our wall time would not.
    let (out, _wall, cpu, rss) = run_java(cp, "org.apache.kafka.tools.ProducerPerformance", &args).await?;
    let (rate, latency) = parse_producer_performance(&out)?;
    Ok(Phase {
        name: "kafka ProducerPerformance (java)".into(),
        events: opts.events,
        secs: opts.events as f64 / rate,
        cpu_secs: cpu,
        peak_rss_mib: rss,
        latency: Some(latency),
    })
}

/// Rate (records/s) and latency percentiles from ProducerPerformance's final line ("N records sent, R
/// records/sec (M MB/sec), A ms avg latency, X ms max latency, P50 ms 50th, P95 ms 95th, P99 ms 99th, …").
/// Anything missing or zero is an error naming the output: a baseline of 0 would make any ratio meaningless.
fn parse_producer_performance(out: &str) -> Result<(f64, LatencySummary), KafkaError> {
    let unreadable = |what: &str| {
        let tail: Vec<&str> = out.lines().rev().take(3).collect();
        KafkaError::Bench(format!(
            "cannot read {what} from ProducerPerformance's output (last lines: {:?})",
            tail.into_iter().rev().collect::<Vec<_>>()
        ))
    };
    let last = out.lines().rev().find(|l| l.contains("records sent")).ok_or_else(|| unreadable("the summary line"))?;
    let field = |marker: &str| number_before(last, marker).ok_or_else(|| unreadable(marker));
    let rate = field("records/sec")?;
    if rate <= 0.0 {
        return Err(unreadable("a positive records/sec"));
    }
    let latency = LatencySummary {
        p50_ms: field("ms 50th")?,
        p95_ms: field("ms 95th")?,
        p99_ms: field("ms 99th")?,
        max_ms: field("ms max latency")?,
    };
    Ok((rate, latency))
}

async fn java_consume(cp: &str, bootstrap: &str, topic: &str, opts: &BenchOptions) -> Result<Phase, KafkaError> {
    let args: Vec<String> = [
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--messages",
        &opts.events.to_string(),
        "--timeout",
        "60000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (out, _wall, cpu, rss) = run_java(cp, "org.apache.kafka.tools.ConsumerPerformance", &args).await?;
    let (events, rate) = parse_consumer_performance(&out)?;
    let secs = events as f64 / rate;
    Ok(Phase {
        name: "kafka ConsumerPerformance (java)".into(),
        events,
        secs,
        cpu_secs: cpu,
        peak_rss_mib: rss,
        latency: None,
    })
}

/// Events consumed and their rate from ConsumerPerformance's output: a header line of comma-separated names,
/// then one line of values. Missing fields, no events or a zero rate are errors, never a baseline of 0.
fn parse_consumer_performance(out: &str) -> Result<(u64, f64), KafkaError> {
    let unreadable = |what: &str| {
        let tail: Vec<&str> = out.lines().rev().take(3).collect();
        KafkaError::Bench(format!(
            "cannot read {what} from ConsumerPerformance's output (last lines: {:?})",
            tail.into_iter().rev().collect::<Vec<_>>()
        ))
    };
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let mut fields = HashMap::new();
    while let Some(l) = lines.next() {
        if l.contains("nMsg.sec") {
            if let Some(v) = lines.next() {
                for (k, v) in l.split(',').zip(v.split(',')) {
                    fields.insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
            break;
        }
    }
    let num = |k: &str| fields.get(k).and_then(|v| v.parse::<f64>().ok());
    let events = num("data.consumed.in.nMsg").ok_or_else(|| unreadable("data.consumed.in.nMsg"))? as u64;
    // fetch.nMsg.sec excludes the group's rebalance time, like our own figure.
    let rate = num("fetch.nMsg.sec").or(num("nMsg.sec")).ok_or_else(|| unreadable("fetch.nMsg.sec"))?;
    if events == 0 || rate <= 0.0 {
        return Err(unreadable("a positive event count and rate"));
    }
    Ok((events, rate))
}

/// The number right before `marker` in `s` ("123.4 records/sec" → 123.4).
fn number_before(s: &str, marker: &str) -> Option<f64> {
    let idx = s.find(marker)?;
    s[..idx].split_whitespace().last()?.trim_start_matches('(').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_producer_performance_summary() {
        let l = "200000 records sent, 61690.3 records/sec (60.24 MB/sec), 310.12 ms avg latency, 807.00 ms max latency, 288 ms 50th, 620 ms 95th, 701 ms 99th, 790 ms 99.9th.";
        assert_eq!(number_before(l, "records/sec"), Some(61690.3));
        assert_eq!(number_before(l, "ms 50th"), Some(288.0));
        assert_eq!(number_before(l, "ms 99th"), Some(701.0));
        assert_eq!(number_before(l, "ms max latency"), Some(807.0));
        let (rate, lat) = parse_producer_performance(&format!("1000 records sent, …\n{l}\n")).expect("parses");
        assert_eq!((rate, lat.p50_ms, lat.p95_ms, lat.p99_ms, lat.max_ms), (61690.3, 288.0, 620.0, 701.0, 807.0));
    }

    #[test]
    fn unreadable_producer_performance_output_is_an_error() {
        for out in ["", "Exception in thread main", "10 records sent, 0.0 records/sec (0.00 MB/sec), 1 ms avg latency"]
        {
            let err = parse_producer_performance(out).expect_err(out);
            assert!(matches!(err, KafkaError::Bench(_)), "{err}");
        }
        // A summary without the percentiles says nothing about latency.
        let partial = "10 records sent, 5.0 records/sec (0.01 MB/sec), 1 ms avg latency, 2 ms max latency.";
        assert!(parse_producer_performance(partial).is_err());
    }

    #[test]
    fn consumer_performance_output() {
        let out = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
                   rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n\
                   2024-01-01 00:00:00:000, 2024-01-01 00:00:05:000, 195.3, 39.06, 200000, 40000.0, 3000, 2000, \
                   97.6, 100000.0\n";
        assert_eq!(parse_consumer_performance(out).expect("parses"), (200_000, 100_000.0));
        for bad in ["", "WARN nothing consumed", "data.consumed.in.nMsg, nMsg.sec\n0, 0.0\n"] {
            assert!(matches!(parse_consumer_performance(bad), Err(KafkaError::Bench(_))), "{bad:?}");
        }
    }
}

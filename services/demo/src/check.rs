//! `imbridge demo check`: after the traffic, waits until nothing is in flight, then reports what the pipeline
//! did (events each way, end-to-end latency, echoes dropped, dead letters) from the services' own metrics and
//! Kafka, and compares every conversation the traffic touched on both systems — full history, imported and
//! live: the same messages in the same order, the same group profile and members, each message sent exactly
//! once. PASS or FAIL.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use imbridge_kafka::admin::Admin;
use serde::Serialize;

use crate::prom::{Page, quantile};
use crate::traffic::TrafficSummary;
use crate::{Msgs, Side, Systems, texts};

/// One direction of the pipeline, from its consumer's metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Direction {
    /// Events the service finished, by kind and outcome.
    pub events: BTreeMap<String, BTreeMap<String, u64>>,
    /// Events ingest accepted from the source system.
    pub ingested: u64,
    /// End-to-end latency (source event time → applied on the other side), seconds, from the histogram.
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Direction {
    fn from_page(page: &Page, events: &str, e2e: &str, ingest: &Page, source: &str) -> Self {
        let mut out = Direction::default();
        for s in page.select(events, &[]) {
            let (Some(kind), Some(outcome)) = (s.label("kind"), s.label("outcome")) else { continue };
            *out.events.entry(kind.to_owned()).or_default().entry(outcome.to_owned()).or_default() += s.value as u64;
        }
        out.ingested = ingest.sum("imbridge_ingest_events_total", &[("source", source)]) as u64;
        let h = page.histogram(e2e);
        (out.p50, out.p95, out.p99) = (quantile(&h, 0.5), quantile(&h, 0.95), quantile(&h, 0.99));
        out
    }

    fn count(&self, kinds: &[&str], outcome: &str) -> u64 {
        self.events
            .iter()
            .filter(|(k, _)| kinds.is_empty() || kinds.contains(&k.as_str()))
            .filter_map(|(_, o)| o.get(outcome))
            .sum()
    }

    fn applied(&self, kinds: &[&str]) -> u64 {
        // to-im counts a replayed event it found already applied as "skipped"/"recovered", to-legacy as
        // "duplicate": applied all the same.
        ["applied", "skipped", "recovered", "duplicate"].iter().map(|o| self.count(kinds, o)).sum()
    }

    fn line(&self, name: &str, service: &str) -> String {
        let all = self.applied(&[]);
        let c2c = self.applied(&["c2c.message"]);
        let gmsg = self.applied(&["group.message"]);
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |s| format!("{:.0} ms", s * 1000.0));
        format!(
            "{name} {service}: {all} events applied ({c2c} 1:1 messages, {gmsg} group messages, {} group \
             changes; ingest accepted {}); end to end p50 {} p95 {} p99 {}",
            all - c2c - gmsg,
            self.ingested,
            ms(self.p50),
            ms(self.p95),
            ms(self.p99)
        )
    }
}

/// One conversation compared.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    pub conversation: String,
    pub apps: String,
    pub messages_legacy: usize,
    pub messages_im: usize,
    /// Messages the traffic sent to it.
    pub live: usize,
    pub members: Option<usize>,
    pub identical: bool,
    /// What differs, when something does.
    pub problem: Option<String>,
}

/// The outcome of `imbridge demo check`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub quiet_after_secs: Option<f64>,
    pub not_quiet: Option<String>,
    pub to_im: Direction,
    pub to_legacy: Direction,
    /// Echoes ingest dropped, by `source/reason`.
    pub echoes_dropped: BTreeMap<String, u64>,
    pub dead_lettered: u64,
    /// Records on the DLQ topic; `None` when it could not be read (a failure, never "0 records").
    pub dlq_records: Option<i64>,
    pub conversations: Vec<Compared>,
    pub pass: bool,
    pub failures: Vec<String>,
}

/// Runs the check and prints the report; the caller exits non-zero unless `pass`.
pub async fn run(sys: Arc<Systems>, traffic: &TrafficSummary, timeout: Duration) -> anyhow::Result<CheckReport> {
    let admin = Admin::new(&sys.ep.kafka).context("kafka admin")?;
    let mut r = CheckReport::default();
    let mut out = String::new();

    match sys.wait_quiet(&admin, crate::LagCheck::Always, timeout).await {
        Ok(d) => {
            r.quiet_after_secs = Some(d.as_secs_f64());
            let _ = writeln!(
                out,
                "caught up {:.2} s after the traffic: no webhook or callback queued, every event applied, \
                 to-im and to-legacy committed (lag 0)",
                d.as_secs_f64()
            );
        }
        Err(e) => {
            r.failures.push(format!("the pipeline did not catch up: {e:#}"));
            r.not_quiet = Some(format!("{e:#}"));
        }
    }

    let ingest = page(&sys, "ingest", &sys.ep.ingest_metrics, &mut r.failures).await;
    let to_im = page(&sys, "to-im", &sys.ep.to_im_metrics, &mut r.failures).await;
    let to_legacy = page(&sys, "to-legacy", &sys.ep.to_legacy_metrics, &mut r.failures).await;
    r.to_im = Direction::from_page(
        &to_im,
        "imbridge_to_im_events_total",
        "imbridge_to_im_end_to_end_seconds",
        &ingest,
        "legacy",
    );
    r.to_legacy = Direction::from_page(
        &to_legacy,
        "imbridge_to_legacy_events_total",
        "imbridge_to_legacy_end_to_end_seconds",
        &ingest,
        "im",
    );
    let _ = writeln!(out, "{}", r.to_im.line("old app → new app", "(to-im)"));
    let _ = writeln!(out, "{}", r.to_legacy.line("new app → old app", "(to-legacy)"));
    let _ = writeln!(
        out,
        "  (end to end: the event's time on the source system → applied on the other; percentiles estimated from \
         the services' histogram buckets)"
    );
    for s in ingest.select("imbridge_ingest_echoes_dropped_total", &[]) {
        let key = format!("{}/{}", s.label("source").unwrap_or("?"), s.label("reason").unwrap_or("?"));
        *r.echoes_dropped.entry(key).or_default() += s.value as u64;
    }
    let echoes: u64 = r.echoes_dropped.values().sum();
    let detail: Vec<String> = r.echoes_dropped.iter().map(|(k, v)| format!("{}: {v}", echo_label(k))).collect();
    let _ = writeln!(
        out,
        "echoes dropped by ingest: {echoes} — imbridge's own writes offered back, never synced again{}",
        if detail.is_empty() { String::new() } else { format!("\n    {}", detail.join("\n    ")) }
    );
    r.dead_lettered = r.to_im.count(&[], "dead_letter") + r.to_legacy.count(&[], "dead_letter");
    let dlq = &sys.ep.topics.dlq;
    match admin.offsets(dlq, None).await {
        Ok(ps) => r.dlq_records = Some(ps.iter().map(|p| p.high - p.low).sum()),
        // A DLQ that cannot be read could hold anything: no PASS without it.
        Err(e) => r.failures.push(format!("cannot read the DLQ topic {dlq}: {e}")),
    }
    let records = r.dlq_records.map_or_else(|| "unreadable".to_owned(), |n| format!("{n} records"));
    let _ = writeln!(out, "dead letters: {} (DLQ topic {dlq}: {records})", r.dead_lettered);
    if r.dead_lettered > 0 || r.dlq_records.is_some_and(|n| n > 0) {
        r.failures.push(format!("{} dead letters, DLQ topic {dlq}: {records}", r.dead_lettered));
    }

    let _ = writeln!(out, "conversations the traffic touched, full history compared on both sides:");
    print!("{out}");
    out.clear();
    for p in &traffic.pairs {
        let key = format!("c2c:{}:{}", p.a, p.b);
        let sent = traffic.sent.get(&key).map(Vec::as_slice).unwrap_or_default();
        let (l, i, i_rev) =
            (sys.old_c2c(&p.a, &p.b).await?, sys.im_c2c(&p.a, &p.b).await?, sys.im_c2c(&p.b, &p.a).await?);
        let mut problem = diff("legacy", &l, "IM", &i);
        if problem.is_none() && i != i_rev {
            problem = Some(format!("IM shows {} to {} and {} to {}", i.len(), p.a, i_rev.len(), p.b));
        }
        problem = problem.or_else(|| once_each(&l, sent));
        let apps = format!("{}↔{}", short(p.a_side), short(p.b_side));
        r.conversations.push(compared(format!("1:1   {} ↔ {}", p.a, p.b), apps, &l, &i, sent.len(), None, problem));
        print_compared(r.conversations.last());
    }
    for g in &traffic.groups {
        let key = format!("group:{}", g.id);
        let sent = traffic.sent.get(&key).map(Vec::as_slice).unwrap_or_default();
        let (l, i) = (sys.old_group(&g.id).await?, sys.im_group(&g.id).await?);
        let apps = match (g.created_on, g.dismissed_on) {
            (_, Some(side)) => format!("created and dismissed on the {}", side.label()),
            (Some(side), None) => format!("created on the {}", side.label()),
            (None, None) => "imported".to_owned(),
        };
        let problem = match (&l, &i, g.dismissed_on) {
            (None, None, Some(_)) => None,
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                Some(format!("dismissed, but still exists on {}", if l.is_some() { "legacy" } else { "IM" }))
            }
            (Some(l), Some(i), None) => group_diff(l, i).or_else(|| once_each(&l.messages, sent)),
            (l, i, None) => Some(format!("exists on legacy: {}, on IM: {}", l.is_some(), i.is_some())),
        };
        let none = Msgs::new();
        let (lm, im) = (l.as_ref().map_or(&none, |s| &s.messages), i.as_ref().map_or(&none, |s| &s.messages));
        let members = l.as_ref().map(|s| s.members.len());
        r.conversations.push(compared(format!("group {}", g.id), apps, lm, im, sent.len(), members, problem));
        print_compared(r.conversations.last());
    }
    let differing = r.conversations.iter().filter(|c| !c.identical).count();
    if differing > 0 {
        r.failures.push(format!("{differing} of {} conversations differ", r.conversations.len()));
    }
    if !traffic.refused.is_empty() {
        let _ =
            writeln!(out, "operations a system refused (nothing happened on either side): {}", traffic.refused.len());
        for e in traffic.refused.iter().take(5) {
            let _ = writeln!(out, "  {e}");
        }
    }
    r.pass = r.failures.is_empty();
    for f in &r.failures {
        let _ = writeln!(out, "FAIL: {f}");
    }
    let _ = writeln!(
        out,
        "RESULT: {} — {} operations from both apps; {} conversations identical on both sides",
        if r.pass { "PASS" } else { "FAIL" },
        traffic.total_ops(),
        r.conversations.len() - differing
    );
    print!("{out}");
    Ok(r)
}

/// A service's metrics page; empty, with a failure noted, when it does not answer.
async fn page(sys: &Systems, name: &str, url: &str, failures: &mut Vec<String>) -> Page {
    match sys.scrape(url).await {
        Ok(text) => Page::parse(&text),
        Err(e) => {
            failures.push(format!("{name} /metrics ({url}) did not answer: {e:#}"));
            Page::default()
        }
    }
}

/// What an `imbridge_ingest_echoes_dropped_total{source,reason}` label pair means.
fn echo_label(key: &str) -> String {
    match key {
        "legacy/origin" => "legacy webhooks for changes imbridge applied there (\"origin\":\"im\")".to_owned(),
        "im/operator" => "IM callbacks for changes imbridge's admin identity made".to_owned(),
        "im/origin_marker" => "IM callbacks for messages carrying imbridge's origin marker".to_owned(),
        "im/rest_dismiss" => "IM callbacks for REST dismissals (rest_dismiss_is_echo)".to_owned(),
        "im/imbridge_dismissal" => "IM callbacks for group dismissals to-im announced".to_owned(),
        other => other.to_owned(),
    }
}

fn short(side: Side) -> &'static str {
    match side {
        Side::Legacy => "old",
        Side::Im => "new",
    }
}

fn compared(
    conversation: String,
    apps: String,
    l: &Msgs,
    i: &Msgs,
    live: usize,
    members: Option<usize>,
    problem: Option<String>,
) -> Compared {
    Compared {
        conversation,
        apps,
        messages_legacy: l.len(),
        messages_im: i.len(),
        live,
        members,
        identical: problem.is_none(),
        problem,
    }
}

fn print_compared(c: Option<&Compared>) {
    let Some(c) = c else { return };
    let members = c.members.map(|m| format!(", {m} members")).unwrap_or_default();
    let what = if c.messages_legacy == 0 && c.messages_im == 0 && c.members.is_none() {
        "gone on both sides".to_owned()
    } else {
        format!("{:>4} messages ({} sent now){members}", c.messages_legacy, c.live)
    };
    let verdict = match &c.problem {
        None => "identical".to_owned(),
        Some(p) => format!("DIFFERENT: {p}"),
    };
    println!("  {:<28} {:<38} {:<36} {verdict}", c.conversation, c.apps, what);
}

/// Where two message lists first differ.
fn diff(ln: &str, l: &Msgs, rn: &str, r: &Msgs) -> Option<String> {
    if l == r {
        return None;
    }
    let at = l.iter().zip(r).position(|(a, b)| a != b).unwrap_or(l.len().min(r.len()));
    let show = |m: Option<&(String, Vec<imbridge_core::Element>)>| match m {
        Some((from, body)) => format!("{from}: {}", serde_json::to_string(body).unwrap_or_default()),
        None => "(nothing)".to_owned(),
    };
    Some(format!(
        "{ln} has {} messages, {rn} {}; first difference at #{at}: {ln} {} / {rn} {}",
        l.len(),
        r.len(),
        show(l.get(at)),
        show(r.get(at))
    ))
}

fn group_diff(l: &crate::GroupSnap, i: &crate::GroupSnap) -> Option<String> {
    if l == i {
        return None;
    }
    let mut parts = Vec::new();
    for (what, a, b) in [
        ("type", &l.group_type, &i.group_type),
        ("name", &l.name, &i.name),
        ("introduction", &l.introduction, &i.introduction),
        ("notification", &l.notification, &i.notification),
        ("face", &l.face_url, &i.face_url),
        ("owner", &l.owner, &i.owner),
    ] {
        if a != b {
            parts.push(format!("{what} {a:?} on legacy, {b:?} on IM"));
        }
    }
    if l.members != i.members {
        parts.push(format!("members {:?} on legacy, {:?} on IM", l.members, i.members));
    }
    parts.extend(diff("legacy", &l.messages, "IM", &i.messages));
    Some(parts.join("; "))
}

/// Every message the traffic sent is there exactly once.
fn once_each(msgs: &Msgs, sent: &[String]) -> Option<String> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for t in texts(msgs) {
        *count.entry(t).or_default() += 1;
    }
    let bad: Vec<String> = sent
        .iter()
        .filter(|t| count.get(t.as_str()).copied().unwrap_or(0) != 1)
        .map(|t| format!("{t:?} ×{}", count.get(t.as_str()).copied().unwrap_or(0)))
        .collect();
    (!bad.is_empty()).then(|| format!("sent messages not there exactly once: {}", bad.join(", ")))
}

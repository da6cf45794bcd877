//! Server-rendered HTML: the page, its live panels (the script swaps them in every refresh), a lookup's answer,
//! and the lag charts as inline SVG. Everything a value could inject goes through [`esc`].

use std::fmt::Write as _;

use crate::collect::{GroupView, Snapshot};
use crate::trace::{Fate, TraceReport, fate_text};

pub const SCRIPT: &str = include_str!("assets/console.js");
pub const STYLE: &str = include_str!("assets/console.css");

/// HTML-escapes text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A duration for people: `42s`, `3m 05s`, `2h 10m`, `6d 3h`.
pub fn dur(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "–".into();
    }
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{secs:.1}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_owned(), |r| format!("{r:.1}/s"))
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |s| if s < 1.0 { format!("{:.0} ms", s * 1000.0) } else { format!("{s:.2} s") })
}

/// What the page was asked to look up, for the form and the answer.
#[derive(Debug, Clone, Default)]
pub struct LookupForm {
    pub q: String,
    pub conversation: String,
    pub since: String,
    pub until: String,
}

/// The whole page.
pub fn page(
    snap: Option<&Snapshot>,
    actions: bool,
    refresh_ms: u64,
    form: &LookupForm,
    answer: Option<Result<&TraceReport, String>>,
) -> String {
    let panels = snap.map_or_else(collecting, |s| panels(s, actions));
    let answer = answer.map(|a| match a {
        Ok(r) => trace_html(r),
        Err(e) => format!("<p class=\"bad\" id=\"trace-error\">{}</p>", esc(&e)),
    });
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>imbridge console</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/console.css"></head>
<body data-refresh-ms="{refresh_ms}" data-actions="{actions}">
<header><h1>imbridge console</h1><span class="mode">{mode}</span><span class="mode" id="live"></span></header>
<main>
<div id="panels">{panels}</div>
<section id="lookup"><h2>Where is my message?</h2>
<form id="trace-form" method="get" action="/">
<input name="q" id="q" size="44" placeholder="m-1 · 5_1005_1700000005 · group:team#42 · c2c:ann:bob@2026-01-31T12:00:00Z" value="{q}">
<input name="conversation" size="22" placeholder="conversation (optional)" value="{c}">
<input name="since" size="22" placeholder="since (optional)" value="{since}">
<input name="until" size="22" placeholder="until (optional)" value="{until}">
<button type="submit">Look up</button></form>
<p class="hint">Same lookup as <code>imbridge trace</code>. Reads only the conversation's partition when the id names it (group messages) or a conversation is given.</p>
<div id="trace">{answer}</div></section>
</main>
<script src="/console.js"></script>
</body></html>
"#,
        mode = if actions { "actions unlocked (admin token configured)" } else { "read-only" },
        q = esc(&form.q),
        c = esc(&form.conversation),
        since = esc(&form.since),
        until = esc(&form.until),
        answer = answer.unwrap_or_default(),
    )
}

fn collecting() -> String {
    "<p id=\"collecting\">collecting the first numbers…</p>".into()
}

/// The live panels (swapped in by the script on every refresh).
pub fn panels(s: &Snapshot, actions: bool) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<p class=\"taken\" id=\"taken-at\">as of {} (read in {:.2}s)</p>",
        esc(&s.taken_at.to_rfc3339()),
        s.round_secs
    );
    if let Some(e) = &s.kafka_error {
        let _ = write!(
            o,
            "<p class=\"bad\" id=\"kafka-error\">Kafka could not be read: {} (numbers below are from the last good read)</p>",
            esc(e)
        );
    }
    // Import progress.
    o.push_str("<section id=\"import\"><h2>Import</h2>");
    let i = &s.import;
    let elapsed = i.elapsed_secs.map_or_else(|| "no import run recorded".to_owned(), |e| format!("elapsed {}", dur(e)));
    let state = match (i.started_at, i.completed_at) {
        (_, Some(c)) => format!(", completed {}", c.to_rfc3339()),
        (Some(st), None) => format!(", started {}", st.to_rfc3339()),
        _ => String::new(),
    };
    let _ = write!(
        o,
        "<p id=\"import-elapsed\"><b>{}</b>{} · quota-bound lower bound <b id=\"import-lower-bound\">{}</b></p>",
        esc(&elapsed),
        esc(&state),
        dur(i.lower_bound_secs)
    );
    o.push_str("<table><tr><th>phase</th><th>records</th><th>applied</th><th></th><th>rate</th><th>ETA</th><th>lower bound</th></tr>");
    for p in &i.phases {
        let pct = if p.total > 0 { p.done as f64 * 100.0 / p.total as f64 } else { 0.0 };
        let eta = match p.eta_secs {
            Some(e) if e == 0.0 && p.total > 0 => "done".to_owned(),
            Some(e) => dur(e),
            None if p.total == 0 => "–".to_owned(),
            None => "stalled".to_owned(),
        };
        let _ = write!(
            o,
            "<tr data-phase=\"{ph}\"><td><b>{ph}</b><br><small>{kinds}</small></td><td class=\"num\">{total}</td>\
             <td class=\"num import-done\">{done}</td><td><div class=\"bar\"><div style=\"width:{pct:.1}%\"></div></div>{pct:.1}%</td>\
             <td class=\"num\">{rate}</td><td>{eta}</td><td title=\"{by}\">{lb}</td></tr>",
            ph = esc(&p.phase),
            kinds = esc(&p.kinds),
            total = p.total,
            done = p.done,
            rate = rate(p.rate_per_sec),
            by = esc(&p.bound_by),
            lb = dur(p.lower_bound_secs),
        );
    }
    o.push_str("</table></section>");
    // Directions.
    o.push_str("<section id=\"directions\"><h2>Real time</h2><div class=\"cards\">");
    for d in &s.directions {
        let _ = write!(
            o,
            "<div class=\"card\" data-direction=\"{n}\"><h3>{n}</h3><dl>\
             <dt>accepted by ingest</dt><dd>{acc}</dd><dt>applied</dt><dd class=\"applied-rate\">{app}</dd>\
             <dt>latency p50</dt><dd class=\"p50\">{p50}</dd><dt>latency p99</dt><dd class=\"p99\">{p99}</dd>\
             <dt>consumer lag</dt><dd class=\"lag\">{lag}</dd></dl><small>latency: event on the source → applied, {over}; group {g}</small></div>",
            n = esc(&d.name),
            acc = rate(d.accepted_per_sec),
            app = rate(d.applied_per_sec),
            p50 = ms(d.p50_secs),
            p99 = ms(d.p99_secs),
            lag = d.lag,
            over = esc(&d.latency_over),
            g = esc(&d.group),
        );
    }
    if let Some(l) = s.frequency_limited_per_sec {
        let _ = write!(
            o,
            "<div class=\"card\"><h3>IM frequency limits</h3><dl><dt>60007… answers</dt><dd id=\"limited\">{l:.2}/s</dd></dl></div>"
        );
    }
    o.push_str("</div></section>");
    // Lag per group.
    o.push_str("<section id=\"lag\"><h2>Consumer lag</h2><table><tr><th>group</th><th>topic</th><th>members</th><th>lag</th><th>history</th></tr>");
    for g in &s.groups {
        let members = if !g.topic_exists {
            "topic not created yet".to_owned()
        } else if g.members.is_empty() {
            "stopped".to_owned()
        } else {
            format!("{} running", g.members.len())
        };
        let _ = write!(
            o,
            "<tr data-group=\"{gr}\"><td>{gr}</td><td>{t}</td><td>{m}</td><td class=\"num lag\">{lag}</td><td>{svg}</td></tr>",
            gr = esc(&g.group),
            t = esc(&g.topic),
            m = esc(&members),
            lag = g.lag,
            svg = sparkline(g),
        );
    }
    o.push_str("</table></section>");
    // Phases.
    let _ = write!(
        o,
        "<section id=\"phases\"><h2>Conversations</h2><p><b id=\"phase-importing\">{}</b> importing their history · \
         <b id=\"phase-live\">{}</b> live (with a record; conversations without one are live too){}</p></section>",
        s.phases.importing,
        s.phases.live,
        if s.phases.importing_sample.is_empty() {
            String::new()
        } else {
            format!("<br><small>importing: {}</small>", esc(&s.phases.importing_sample.join(", ")))
        }
    );
    // DLQ and parked.
    let _ = write!(
        o,
        "<section id=\"parked\"><h2>Dead letters and parked conversations</h2><p>{}: <b id=\"dlq-depth\">{}</b> records, \
         <b id=\"dlq-unresolved\">{}</b> unresolved, <b id=\"parked-count\">{}</b> conversation(s) parked</p>",
        esc(&s.dlq.topic),
        s.dlq.depth,
        s.dlq.unresolved,
        s.dlq.parked.len()
    );
    if !s.dlq.parked.is_empty() {
        o.push_str(
            "<table><tr><th>conversation</th><th>from</th><th>records</th><th>first error</th><th>to resolve</th></tr>",
        );
        for p in &s.dlq.parked {
            let cmds: String = p.commands.iter().map(|c| format!("<code>{}</code><br>", esc(c))).collect();
            let buttons = if actions {
                format!(
                    "<button data-action=\"replay\" data-conversation=\"{c}\" data-records=\"{n}\">re-drive</button> \
                     <button data-action=\"drop\" data-conversation=\"{c}\" data-records=\"{n}\">drop</button>",
                    c = esc(&p.conversation),
                    n = p.records
                )
            } else {
                String::new()
            };
            let _ = write!(
                o,
                "<tr class=\"parked-row\" data-conversation=\"{c}\"><td>{c}</td><td>{t}</td><td class=\"num\">{n}</td>\
                 <td><b>{k}</b>: {r}</td><td>{cmds}{buttons}</td></tr>",
                c = esc(&p.conversation),
                t = esc(&p.topic),
                n = p.records,
                k = esc(&p.first_kind),
                r = esc(&p.first_reason),
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</section>");
    // Reconciliation.
    o.push_str("<section id=\"reconcile\"><h2>Reconciliation</h2>");
    if s.reconcile.running {
        let total: f64 = s.reconcile.differences.values().sum();
        let _ = write!(o, "<p>differences found: <b>{total}</b>");
        if let Some(r) = s.reconcile.repaired {
            let _ = write!(o, " · repaired: <b>{r}</b>");
        }
        o.push_str("</p><ul>");
        for (k, v) in &s.reconcile.differences {
            let _ = write!(o, "<li>{}: {v}</li>", esc(k));
        }
        o.push_str("</ul>");
    } else {
        o.push_str("<p id=\"reconcile-state\">not running — no watched service exports <code>imbridge_reconcile_differences_total</code></p>");
    }
    o.push_str("</section>");
    // Health.
    o.push_str("<section id=\"health\"><h2>Services</h2>");
    if s.health.is_empty() {
        o.push_str("<p>no services configured (<code>[[console.services]]</code>)</p>");
    } else {
        o.push_str("<table><tr><th>service</th><th>kind</th><th>/readyz</th><th>checks</th></tr>");
        for h in &s.health {
            let _ = write!(
                o,
                "<tr data-service=\"{n}\" class=\"{cls}\"><td>{n}<br><small>{u}</small></td><td>{k}</td><td class=\"ready\">{st}</td><td><pre>{d}</pre></td></tr>",
                n = esc(&h.name),
                cls = if h.ready { "ok" } else { "bad" },
                u = esc(&h.url),
                k = esc(&h.kind),
                st = if h.ready { "ready".to_owned() } else { format!("NOT READY ({})", esc(&h.status)) },
                d = esc(&h.detail),
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</section>");
    o
}

/// A small lag chart: the lag of one group over the kept history, as an inline SVG polyline.
fn sparkline(g: &GroupView) -> String {
    const W: f64 = 220.0;
    const H: f64 = 40.0;
    if g.series.len() < 2 {
        return "<small>collecting…</small>".into();
    }
    let (t0, t1) = (g.series[0].0, g.series[g.series.len() - 1].0);
    let max = g.series.iter().map(|(_, l)| *l).max().unwrap_or(0).max(1) as f64;
    let span = (t1 - t0).max(1) as f64;
    let points: Vec<String> = g
        .series
        .iter()
        .map(|(t, l)| format!("{:.1},{:.1}", (t - t0) as f64 / span * W, H - (*l as f64 / max) * (H - 2.0) - 1.0))
        .collect();
    format!(
        "<svg class=\"chart\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"lag of {g} over {secs}s, max {max}\">\
         <polyline fill=\"none\" stroke=\"#2b6cb0\" stroke-width=\"1.5\" points=\"{p}\"/></svg><small> max {max} over {secs}s</small>",
        g = esc(&g.group),
        secs = (span / 1000.0).round(),
        p = points.join(" "),
    )
}

/// A lookup's answer.
pub fn trace_html(r: &TraceReport) -> String {
    let mut o = String::new();
    let _ = write!(o, "<div class=\"trace-answer\"><p>{} — {} record(s) read", esc(&r.understood), r.scanned);
    if r.truncated {
        o.push_str(" <b>(limit reached: give a conversation or a time)</b>");
    }
    o.push_str("</p><ul class=\"searched\">");
    for s in &r.searched {
        let _ = write!(o, "<li>{} partition(s) {:?} from {}</li>", esc(&s.topic), s.partitions, esc(&s.from));
    }
    o.push_str("</ul>");
    if r.hits.is_empty() {
        o.push_str("<p class=\"bad\" id=\"trace-none\">not found on the topics read</p>");
    }
    for h in &r.hits {
        let cls = match &h.fate {
            Fate::Applied { .. } => "ok",
            Fate::DeadLettered { .. } => "bad",
            Fate::Pending { .. } => "wait",
        };
        let _ = write!(
            o,
            "<div class=\"hit {cls}\" data-event-id=\"{id}\"><h3>{id}</h3><dl>\
             <dt>kind</dt><dd>{kind} ({src})</dd><dt>conversation</dt><dd>{conv}</dd>\
             <dt>where</dt><dd class=\"where\">{topic} partition {p} offset {off}</dd>\
             <dt>happened</dt><dd>{hap}</dd><dt>accepted</dt><dd class=\"accepted\">{acc}</dd>\
             <dt>fate</dt><dd class=\"fate\">{fate}</dd>",
            id = esc(&h.event_id),
            kind = esc(&h.kind),
            src = esc(&h.source),
            conv = esc(&h.conversation),
            topic = esc(&h.topic),
            p = h.partition,
            off = h.offset,
            hap = esc(&h.happened_at.to_rfc3339()),
            acc = h.accepted_at.map_or_else(|| "–".into(), |a| esc(&a.to_rfc3339())),
            fate = esc(&fate_text(&h.fate)),
        );
        if let Some(f) = &h.redriven_from {
            let _ = write!(o, "<dt>re-driven</dt><dd>from the DLQ ({})</dd>", esc(f));
        }
        if let Fate::DeadLettered { commands, .. } = &h.fate
            && !commands.is_empty()
        {
            let cmds: String = commands.iter().map(|c| format!("<code>{}</code><br>", esc(c))).collect();
            let _ = write!(o, "<dt>to resolve</dt><dd>{cmds}</dd>");
        }
        o.push_str("</dl></div>");
    }
    o.push_str("</div>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_durations() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(dur(5.25), "5.2s");
        assert_eq!(dur(125.0), "2m 05s");
        assert_eq!(dur(7300.0), "2h 01m");
        assert_eq!(dur(90_000.0), "1d 1h");
        assert_eq!(dur(f64::NAN), "–");
    }
}

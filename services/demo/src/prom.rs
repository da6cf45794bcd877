//! Just enough of Prometheus' text format to read counters and histograms off a `/metrics` page.

/// One sample line: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A parsed `/metrics` page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub samples: Vec<Sample>,
}

impl Page {
    pub fn parse(text: &str) -> Page {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (head, value) = l.rsplit_once(' ')?;
                let value: f64 = value.parse().ok()?;
                let (name, labels) = match head.split_once('{') {
                    Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
                    None => (head, Vec::new()),
                };
                Some(Sample { name: name.to_owned(), labels, value })
            })
            .collect();
        Page { samples }
    }

    /// Samples of `name` whose labels include every `(key, value)` of `labels`.
    pub fn select<'a>(&'a self, name: &'a str, labels: &'a [(&str, &str)]) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
    }

    /// The sum of `name` over the matching label sets (0 when absent).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.select(name, labels).map(|s| s.value).sum()
    }

    /// The histogram `name` summed over every label set: (upper bound, cumulative count), ascending.
    pub fn histogram(&self, name: &str) -> Vec<(f64, f64)> {
        let bucket = format!("{name}_bucket");
        let mut out: Vec<(f64, f64)> = Vec::new();
        for s in self.select(&bucket, &[]) {
            let Some(le) = s.label("le") else { continue };
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
            match out.iter_mut().find(|(b, _)| *b == le) {
                Some((_, c)) => *c += s.value,
                None => out.push((le, s.value)),
            }
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key.trim_start_matches(',').trim().to_owned(), value));
        rest = &after[end..];
    }
    out
}

/// The `q` quantile of a cumulative histogram, interpolated linearly inside the bucket like Prometheus'
/// `histogram_quantile`; `None` without observations.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = count - lower.1;
            let frac = if in_bucket > 0.0 { (rank - lower.1) / in_bucket } else { 1.0 };
            return Some(lower.0 + (le - lower.0) * frac);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP x_seconds latency
# TYPE x_seconds histogram
x_seconds_bucket{kind="a",le="0.01"} 2
x_seconds_bucket{kind="a",le="0.1"} 8
x_seconds_bucket{kind="a",le="+Inf"} 10
x_seconds_bucket{kind="b",le="0.01"} 0
x_seconds_bucket{kind="b",le="0.1"} 2
x_seconds_bucket{kind="b",le="+Inf"} 2
x_seconds_sum{kind="a"} 1.5
events_total{kind="c2c.message",outcome="applied"} 7
events_total{kind="group.message",outcome="applied"} 3
events_total{kind="group.message",outcome="dead_letter"} 1
up 1
"#;

    #[test]
    fn counters_sum_over_matching_labels() {
        let p = Page::parse(PAGE);
        assert_eq!(p.sum("events_total", &[("outcome", "applied")]), 10.0);
        assert_eq!(p.sum("events_total", &[]), 11.0);
        assert_eq!(p.sum("events_total", &[("kind", "group.message"), ("outcome", "dead_letter")]), 1.0);
        assert_eq!(p.sum("missing_total", &[]), 0.0);
        assert_eq!(p.sum("up", &[]), 1.0);
    }

    #[test]
    fn histograms_merge_label_sets_and_interpolate() {
        let p = Page::parse(PAGE);
        let h = p.histogram("x_seconds");
        assert_eq!(h, vec![(0.01, 2.0), (0.1, 10.0), (f64::INFINITY, 12.0)]);
        // rank 6 of 12: 4 of the 8 in (0.01, 0.1].
        let p50 = quantile(&h, 0.5).expect("p50");
        assert!((p50 - 0.055).abs() < 1e-9, "{p50}");
        // Beyond the last finite bound: that bound.
        assert_eq!(quantile(&h, 0.99), Some(0.1));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn label_values_may_hold_escapes_and_commas() {
        let p = Page::parse("m{a=\"x,y\",b=\"q\\\"r\"} 2\n");
        assert_eq!(p.samples[0].label("a"), Some("x,y"));
        assert_eq!(p.samples[0].label("b"), Some("q\"r"));
    }
}

//! Measurement helpers shared by the `imbridge bench …` commands: CPU time and peak memory of this process and
//! of child processes (read from `/proc`, Linux only), and latency percentiles.

use std::fmt;
use std::time::Duration;

/// Linux reports CPU times in clock ticks; 100 Hz is the value on every mainstream kernel build.
const CLK_TCK: f64 = 100.0;

/// CPU seconds (user + system) of a process, or of this process's waited-for children.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    pub own_secs: f64,
    pub children_secs: f64,
}

impl CpuTimes {
    /// CPU time spent since `earlier` (own and children).
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            own_secs: self.own_secs - earlier.own_secs,
            children_secs: self.children_secs - earlier.children_secs,
        }
    }
}

/// Reads `/proc/<pid>/stat` fields utime, stime, cutime, cstime; `None` when the file cannot be read or parsed
/// (not Linux, process gone) — never a zero that would read as "no CPU used".
pub fn cpu_times(pid: Option<u32>) -> Option<CpuTimes> {
    let path = pid.map_or_else(|| "/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may contain spaces; fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    let get = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok());
    Some(CpuTimes { own_secs: (get(11)? + get(12)?) / CLK_TCK, children_secs: (get(13)? + get(14)?) / CLK_TCK })
}

/// Peak resident memory (VmHWM) of a process in MiB, `None` if unreadable (process gone).
pub fn peak_rss_mib(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or_else(|| "/proc/self/status".to_owned(), |p| format!("/proc/{p}/status"));
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Latency samples and their percentiles.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    samples_us: Vec<u64>,
}

impl Latencies {
    pub fn with_capacity(n: usize) -> Self {
        Self { samples_us: Vec::with_capacity(n) }
    }

    pub fn record(&mut self, d: Duration) {
        self.samples_us.push(d.as_micros().min(u128::from(u64::MAX)) as u64);
    }

    pub fn len(&self) -> usize {
        self.samples_us.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples_us.is_empty()
    }

    /// Summary in milliseconds (sorts the samples once); `None` without samples — nothing was measured, and
    /// "0 ms" would say otherwise.
    pub fn summary(&mut self) -> Option<LatencySummary> {
        if self.samples_us.is_empty() {
            return None;
        }
        self.samples_us.sort_unstable();
        let pick = |q: f64| -> f64 {
            let i = ((self.samples_us.len() as f64 - 1.0) * q).round() as usize;
            self.samples_us[i] as f64 / 1000.0
        };
        Some(LatencySummary { p50_ms: pick(0.50), p95_ms: pick(0.95), p99_ms: pick(0.99), max_ms: pick(1.0) })
    }
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut l = Latencies::default();
        for i in 1..=100 {
            l.record(Duration::from_millis(i));
        }
        let s = l.summary().expect("samples");
        assert_eq!(s.max_ms, 100.0);
        assert!((s.p50_ms - 50.0).abs() <= 1.0);
        assert!((s.p99_ms - 99.0).abs() <= 1.0);
    }

    #[test]
    fn no_samples_is_no_summary() {
        assert_eq!(Latencies::default().summary(), None);
    }

    #[test]
    fn reads_own_process() {
        let before = cpu_times(None).expect("/proc/self/stat readable");
        // Burn CPU until the kernel's tick counter shows it (10 ms ticks), so a reading stuck at 0 fails.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let after = loop {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let now = cpu_times(None).expect("/proc/self/stat readable");
            if now.own_secs > before.own_secs || started.elapsed() > Duration::from_secs(5) {
                break now;
            }
        };
        assert!(after.since(&before).own_secs > 0.0, "5 s of busy loop and no CPU time counted");
        assert!(peak_rss_mib(None).is_some_and(|m| m > 0.0));
    }

    #[test]
    fn a_process_that_is_gone_has_no_figures() {
        // Above the kernel's pid_max ceiling (2^22): no such process can exist.
        assert_eq!(cpu_times(Some(5_000_000)), None);
        assert_eq!(peak_rss_mib(Some(5_000_000)), None);
    }
}

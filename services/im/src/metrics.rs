//! The client's Prometheus metrics, registered on a registry the caller passes in.
//!
//! Labels are bounded: `api` is an [`Api`] name, `outcome` one of three words, `code` one of IM's four
//! frequency-limit codes. A retry is counted as a retry, never as a failure; only the final outcome of a
//! call counts in `imbridge_im_calls_total`.

use prometheus::{CounterVec, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::api::Api;

/// Metrics of one [`crate::ImClient`] (and its clones).
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Every HTTP attempt, by api and outcome (`ok`, `retryable`, `permanent`).
    pub requests: IntCounterVec,
    /// Every call's final outcome, by api and outcome (`ok`, `retryable`, `permanent`).
    pub calls: IntCounterVec,
    /// Retries the client made, by api.
    pub retries: IntCounterVec,
    /// Frequency-limit answers (60007 and siblings), by api and code.
    pub frequency_limited: IntCounterVec,
    /// Seconds spent waiting for the client-side rate limiter, by api.
    pub rate_limit_wait: CounterVec,
    /// Duration of one HTTP attempt, by api.
    pub request_duration: HistogramVec,
    /// The client-side call rate in force, by api (0 = not limited): a scaled to-im instance shows its share
    /// of the app-wide quota here.
    pub rate_limit: GaugeVec,
}

impl Metrics {
    /// Registers the client's metrics on `registry`. Fails if they are already registered there.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new("imbridge_im_requests_total", "IM REST attempts by api and outcome"),
            &["api", "outcome"],
        )?;
        let calls = IntCounterVec::new(
            Opts::new("imbridge_im_calls_total", "IM REST calls (after retries) by api and final outcome"),
            &["api", "outcome"],
        )?;
        let retries = IntCounterVec::new(Opts::new("imbridge_im_retries_total", "IM REST retries by api"), &["api"])?;
        let frequency_limited = IntCounterVec::new(
            Opts::new("imbridge_im_frequency_limited_total", "IM frequency-limit errors (60007…) by api and code"),
            &["api", "code"],
        )?;
        let rate_limit_wait = CounterVec::new(
            Opts::new("imbridge_im_rate_limit_wait_seconds_total", "time spent waiting for the client rate limiter"),
            &["api"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new("imbridge_im_request_duration_seconds", "duration of one IM REST attempt")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["api"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(frequency_limited.clone()))?;
        registry.register(Box::new(rate_limit_wait.clone()))?;
        let rate_limit = GaugeVec::new(
            Opts::new("imbridge_im_rate_limit_per_second", "client-side call rate in force (0 = not limited)"),
            &["api"],
        )?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(rate_limit.clone()))?;
        Ok(Self { requests, calls, retries, frequency_limited, rate_limit_wait, request_duration, rate_limit })
    }

    pub(crate) fn frequency_limited(&self, api: Api, code: i64) {
        let code = match code {
            60007 => "60007",
            60011 => "60011",
            60018 => "60018",
            60019 => "60019",
            _ => return,
        };
        self.frequency_limited.with_label_values(&[api.as_str(), code]).inc();
    }
}

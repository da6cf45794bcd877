//! The one readiness loop: named checks run in turn, each result goes to its [`Readiness`] entry, and the
//! loop repeats — fast (every 500 ms at most) until every check passed, then at the configured interval — until
//! shutdown. `/readyz` turns 503 while Kafka or a target is unreachable and back when it answers again.
//!
//! The checks every service shares are here: [`kafka_topics`] (the broker answers and the topics exist) and
//! [`im_answers`] (an authenticated IM call succeeds); a service adds its own with [`Probe::check`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use imbridge_im::ImClient;
use imbridge_im::types::account::AccountCheckReq;
use imbridge_kafka::KafkaConfig;
use imbridge_kafka::admin::Admin;
use imbridge_telemetry::Readiness;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The readiness name of the Kafka check.
pub const READY_KAFKA: &str = "kafka";
/// The readiness name of the IM check.
pub const READY_IM: &str = "im";

/// How often a failing check is retried at most, whatever the configured interval.
const FAST: Duration = Duration::from_millis(500);

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// A service's readiness checks and how often they run.
#[derive(Clone)]
pub struct Probe {
    readiness: Readiness,
    every: Duration,
    checks: Vec<(&'static str, CheckFn)>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.checks.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Probe").field("every", &self.every).field("checks", &names).finish()
    }
}

impl Probe {
    /// A probe writing to `readiness`, re-checking every `every` once ready.
    pub fn new(readiness: Readiness, every: Duration) -> Self {
        Self { readiness, every: every.max(Duration::from_millis(100)), checks: Vec::new() }
    }

    /// Adds a check; it is registered at once as not ready.
    pub fn check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.readiness.set(name, false);
        self.checks.push((name, Arc::new(move || Box::pin(check()))));
        self
    }

    /// Runs the checks in the background until `shutdown` fires.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    async fn run(self, shutdown: CancellationToken) {
        loop {
            let mut all = true;
            for (name, check) in &self.checks {
                // A check stuck on an unreachable system must not hold shutdown up.
                let ok = tokio::select! {
                    ok = check() => ok,
                    _ = shutdown.cancelled() => return,
                };
                self.readiness.set(name, ok);
                all &= ok;
            }
            let wait = if all { self.every } else { self.every.min(FAST) };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Kafka answers and every one of `topics` exists.
pub fn kafka_topics(kafka: &KafkaConfig, topics: Vec<String>) -> impl Fn() -> BoxFuture<'static, bool> + use<> {
    let kafka = kafka.clone();
    let topics = Arc::new(topics);
    // One admin client for the probe's life; a failure to create it is retried on the next round.
    let admin: Arc<tokio::sync::Mutex<Option<Admin>>> = Arc::default();
    move || {
        let (kafka, topics, admin) = (kafka.clone(), topics.clone(), admin.clone());
        Box::pin(async move {
            let mut slot = admin.lock().await;
            if slot.is_none() {
                match Admin::new(&kafka) {
                    Ok(a) => *slot = Some(a),
                    Err(e) => {
                        warn!(error = %e, "cannot create the kafka admin client of the readiness probe");
                        return false;
                    }
                }
            }
            let Some(admin) = slot.as_ref() else { return false };
            for t in topics.iter() {
                match admin.partition_count(t).await {
                    Ok(n) if n > 0 => {}
                    Ok(_) => return false,
                    Err(e) => {
                        warn!(error = %e, topic = %t, "kafka readiness probe failed");
                        return false;
                    }
                }
            }
            true
        })
    }
}

/// IM answers an authenticated request (an account check of the admin identity).
pub fn im_answers(im: &ImClient) -> impl Fn() -> BoxFuture<'static, bool> + use<> {
    let im = im.clone();
    move || {
        let im = im.clone();
        Box::pin(async move {
            let check = AccountCheckReq::new([im.admin_identifier().to_owned()]);
            im.account_check(&check).await.is_ok()
        })
    }
}

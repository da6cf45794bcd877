//! The one ensure-topics helper: every part creates the topics it touches from the shared specs of
//! [`imbridge_core::topics::Topic`], and waits for them the same way.
//!
//! Kafka may still be starting beside a service, so an unreachable broker is retried with a capped backoff
//! until shutdown; a misconfiguration (a topic with fewer partitions than configured: ordering depends on the
//! count; a topic missing while the part may not create it) is an error at once, since waiting cannot fix it.

use std::collections::BTreeMap;
use std::time::Duration;

use imbridge_core::topics::{Topic, TopicNames, TopicSpec};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::KafkaConfig;
use crate::admin::Admin;
use crate::error::KafkaError;

/// Longest wait between two attempts while Kafka does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Creates whichever of `topics` are missing, all with the shared specs.
pub async fn ensure(admin: &Admin, names: &TopicNames, topics: &[Topic]) -> Result<(), KafkaError> {
    let specs: Vec<TopicSpec> = topics.iter().map(|t| t.spec(names)).collect();
    admin.ensure_topics(&specs).await
}

/// Creates `topics` when `create` (else only checks they exist) and returns each one's partition count, retrying
/// while Kafka is unreachable. `Ok(None)` when `shutdown` fired first. See the module docs for what is fatal.
pub async fn ensure_ready(
    kafka: &KafkaConfig,
    names: &TopicNames,
    topics: &[Topic],
    create: bool,
    shutdown: &CancellationToken,
) -> Result<Option<BTreeMap<Topic, i32>>, KafkaError> {
    let mut attempt = 0u32;
    loop {
        let round = async {
            let admin = Admin::new(kafka)?;
            if create {
                ensure(&admin, names, topics).await?;
            }
            let mut counts = BTreeMap::new();
            for t in topics {
                let n = admin.partition_count(names.name(*t)).await?;
                if n == 0 {
                    return Err(KafkaError::Topic { topic: names.name(*t).to_owned(), reason: MISSING.to_owned() });
                }
                counts.insert(*t, n);
            }
            Ok(counts)
        };
        let result = tokio::select! {
            r = round => r,
            _ = shutdown.cancelled() => return Ok(None),
        };
        match result {
            Ok(counts) => {
                info!(topics = ?topics.iter().map(|t| names.name(*t)).collect::<Vec<_>>(), "topics ready");
                return Ok(Some(counts));
            }
            Err(e) if is_misconfiguration(&e) => return Err(e),
            Err(e) => {
                attempt += 1;
                warn!(error = %e, attempt, "cannot prepare the topics yet; retrying");
                let backoff = Duration::from_millis(250u64 << attempt.min(5)).min(MAX_BACKOFF);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return Ok(None),
                }
            }
        }
    }
}

/// Why a topic this part may not create is refused.
const MISSING: &str = "does not exist (create it, or let imbridge create it)";

/// Errors no retry can fix: a partition count below the configured one, or a topic that is missing while this
/// part may not create it.
pub fn is_misconfiguration(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Topic { reason, .. } if reason.contains("configured") || reason == MISSING)
}

//! IM quota coordination over Kafka: the im crate's [`AllocationSource`] on a [`Board`] on the `quota` topic.
//!
//! Every part that calls IM calls [`coordinate`] once after building its client; with `[im.quota] coordinate`
//! on, the part's calls to its APIs are paced at the share every instance computes alike (`docs/quotas.md`).

use std::sync::Arc;

use imbridge_core::topics::Topic;
use imbridge_im::quota::{Announcement, Coordinator, Seen, instance_name};
use imbridge_im::{AllocationSource, Api, ImClient, Priority};
use imbridge_kafka::KafkaError;
use imbridge_kafka::board::Board;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::Deps;

/// Announcements as JSON on a [`Board`], keyed by instance.
#[derive(Debug, Clone)]
pub struct KafkaAllocation {
    board: Board,
}

impl KafkaAllocation {
    /// Follows the `quota` topic of `deps` (created if missing) until its shutdown.
    pub fn start(deps: &Deps) -> Result<Self, KafkaError> {
        let spec = Topic::Quota.spec(&deps.topics);
        let board = Board::start(&deps.kafka, spec, deps.im.quota.expire(), deps.shutdown.clone())?;
        Ok(Self { board })
    }
}

impl AllocationSource for KafkaAllocation {
    fn announce(&self, a: &Announcement) {
        match serde_json::to_vec(a) {
            Ok(payload) => self.board.post(a.instance.as_bytes(), payload),
            Err(e) => debug!(error = %e, "quota announcement not serialisable"),
        }
    }

    fn caught_up(&self) -> bool {
        self.board.caught_up()
    }

    fn seen(&self) -> Option<Vec<Seen>> {
        let notices = self.board.notices()?;
        // Someone else's garbage on the topic is skipped, never fatal.
        Some(
            notices
                .into_iter()
                .filter_map(|n| {
                    serde_json::from_slice(&n.payload).ok().map(|announcement| Seen { announcement, age: n.age })
                })
                .collect(),
        )
    }
}

/// A running coordination; it stops (and its announcements expire) when this is dropped or at shutdown.
#[derive(Debug)]
pub struct Coordination {
    stop: CancellationToken,
}

impl Drop for Coordination {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// With `[im.quota] coordinate` on, paces `im`'s calls to `apis` at this instance's share of each quota (as
/// `part`, at `priority`) until the returned handle is dropped or `deps.shutdown` fires. Off: `None`, and `im`
/// keeps its static rates.
pub fn coordinate(
    deps: &Deps,
    im: &ImClient,
    part: &str,
    priority: Priority,
    apis: &[Api],
) -> Result<Option<Coordination>, KafkaError> {
    if !deps.im.quota.coordinate {
        return Ok(None);
    }
    let stop = deps.shutdown.child_token();
    let source = Arc::new(KafkaAllocation::start(&Deps { shutdown: stop.clone(), ..deps.clone() })?);
    let coordinator = Coordinator::new(im, &deps.im, priority, apis, instance_name(part), source);
    tokio::spawn(coordinator.run(stop.clone().cancelled_owned()));
    Ok(Some(Coordination { stop }))
}

//! to-legacy against a recording legacy endpoint (a real axum server on 127.0.0.1:0) that answers per
//! conversation as the test scripts it: what one request holds (one conversation, consecutive, in order, signed,
//! `Idempotency-Key` = the first event's id, `"origin":"im"`, ids from the envelope), and what each answer makes
//! to-legacy do — 2xx applied, 409 applied, 400 naming an event (prefix confirmed, event dead-lettered, the rest
//! parked), 422 naming none (one-by-one to find it), 503 with `Retry-After` (retried no sooner than asked), and a
//! poison record that is not an envelope at all.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{APPLY_SECRET, c2c, config, created, deps, group_msg, produce, produce_raw, topics};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use imbridge_core::{ConversationKey, Envelope};
use imbridge_kafka::dlq::DeadLetterInfo;
use imbridge_legacy::{ContractEvent, Origin, parse_batch, signature};
use imbridge_testkit::eventually;
use imbridge_testkit::prom::sample;
use parking_lot::Mutex;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    idempotency_key: String,
    events: Vec<ContractEvent>,
    status: u16,
}

#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Requests per conversation so far (to script "the first two fail").
    calls: Arc<Mutex<HashMap<String, usize>>>,
}

impl Recorder {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }

    /// Ids legacy "has": everything in a 2xx answer, in arrival order per conversation.
    fn applied(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in self.seen() {
            if (200..300).contains(&s.status) {
                for e in &s.events {
                    out.entry(e.conversation().as_str().to_owned()).or_default().push(e.id.clone());
                }
            }
        }
        out
    }
}

/// The script: how legacy answers a batch of one conversation, on its `n`-th request.
fn answer(conv: &str, n: usize, events: &[ContractEvent]) -> Response {
    let pos = |needle: &str| events.iter().position(|e| e.id.contains(needle));
    match conv {
        // Already applied everything (a replay): 409 every time.
        "c2c:dup-a:dup-b" => (StatusCode::CONFLICT, "already applied").into_response(),
        // Event "m4" can never apply; legacy applies the ones before it and names it, as the contract says.
        "c2c:bad-a:bad-b" => match pos("_1004_") {
            Some(index) => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"errors":[{"index": index, "error": "body too weird for legacy"}]})),
            )
                .into_response(),
            None => StatusCode::OK.into_response(),
        },
        // Busy for the first two requests, asking for a one-second pause.
        "c2c:busy-a:busy-b" if n < 2 => {
            (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")], "busy").into_response()
        }
        // Refuses the whole batch without naming the event when the group message seq 3 is in it.
        "group:vague" => match pos(":3") {
            Some(_) => (StatusCode::UNPROCESSABLE_ENTITY, "something in there is wrong").into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
        _ => StatusCode::OK.into_response(),
    }
}

async fn apply(State(r): State<Recorder>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = signature::verify(&[APPLY_SECRET], &headers, &body, signature::now_secs(), 300) {
        return (StatusCode::UNAUTHORIZED, e.to_string()).into_response();
    }
    let events = match parse_batch(&body) {
        Ok(e) => e,
        Err(e) => return (StatusCode::BAD_REQUEST, axum::Json(e.to_body())).into_response(),
    };
    let conv = events[0].conversation().as_str().to_owned();
    let n = {
        let mut calls = r.calls.lock();
        let c = calls.entry(conv.clone()).or_default();
        *c += 1;
        *c - 1
    };
    let resp = answer(&conv, n, &events);
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    r.seen.lock().push(Seen { at: Instant::now(), idempotency_key: key, events, status: resp.status().as_u16() });
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_hold_one_conversation_in_order_and_answers_are_classified() {
    imbridge_testkit::require_kafka!();
    let rec = Recorder::default();
    let app = Router::new().route("/v1/apply", post(apply)).with_state(rec.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/v1/apply", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let topics = topics();
    let mut envs: Vec<Envelope> = Vec::new();
    for i in 0..30 {
        envs.push(c2c("ok-a", "ok-b", 1 + i, &format!("ok {i}")));
        if i < 10 {
            envs.push(c2c("dup-a", "dup-b", 1 + i, &format!("dup {i}")));
            envs.push(c2c("bad-a", "bad-b", i, &format!("bad {i}")));
            envs.push(c2c("busy-b", "busy-a", 1 + i, &format!("busy {i}")));
        }
        if i < 6 {
            if i == 0 {
                envs.push(created("vague", "ann", &[], 1_700_000_000_000));
            } else {
                envs.push(group_msg("vague", "ann", u64::from(i), &format!("vague {i}")));
            }
        }
    }
    produce(&topics.im_events, &envs).await;
    // A record that is not an envelope at all, in a conversation of its own.
    let poison_key = ConversationKey::parse("c2c:poison-a:poison-b").expect("key");
    produce_raw(&topics.im_events, &poison_key, b"\x00not json").await;
    produce(&topics.im_events, &[c2c("poison-a", "poison-b", 1, "after the poison")]).await;

    let cfg = imbridge_to_legacy::ToLegacyConfig { batch_max_events: 8, ..config(&url) };
    let (d, _registry) = deps(&topics);
    let stop = CancellationToken::new();
    let running = imbridge_to_legacy::start(cfg, d, stop.clone()).await.expect("to-legacy starts");
    let ops = format!("http://{}", running.ops_addr);
    // Everything finishes: applied, or dead-lettered / parked.
    // bad: the named event + 5 parked; vague: 1 + 2 parked; poison: itself + the event parked behind it.
    let want_dlq = 1 + 5 + 1 + 2 + 1 + 1;
    eventually("every record finished", Duration::from_secs(90), || {
        let dlq = topics.dlq.clone();
        let applied = rec.applied();
        async move {
            let done = applied.get("c2c:ok-a:ok-b").map_or(0, Vec::len) == 30
                && applied.get("c2c:busy-a:busy-b").map_or(0, Vec::len) == 10;
            done && crate::common::records(&dlq).await.len() >= want_dlq
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = reqwest::get(format!("{ops}/metrics")).await.expect("metrics").text().await.expect("text");
    stop.cancel();
    let stats = running.wait().await.expect("clean stop");

    let seen = rec.seen();
    let by_id: HashMap<&str, &Envelope> = envs.iter().map(|e| (e.id.as_str(), e)).collect();
    for s in &seen {
        // One conversation per request, every event marked as imbridge's, ids exactly the envelope ids.
        let conv = s.events[0].conversation();
        assert!(s.events.iter().all(|e| e.conversation() == conv), "a request mixes conversations: {s:?}");
        assert!(s.events.iter().all(|e| e.origin == Some(Origin::Im)));
        assert_eq!(s.idempotency_key, s.events[0].id, "Idempotency-Key is the first event's id");
        for e in &s.events {
            let env = by_id.get(e.id.as_str()).unwrap_or_else(|| panic!("unknown id {}", e.id));
            assert_eq!(e.time, env.time);
        }
        assert!(s.events.len() <= 8, "batch_max_events respected");
    }
    // Order: within each conversation, what legacy received in 2xx answers is the production order, once each.
    let applied = rec.applied();
    let produced_order = |conv: &str| -> Vec<String> {
        envs.iter().filter(|e| e.conversation.as_str() == conv).map(|e| e.id.as_str().to_owned()).collect()
    };
    assert_eq!(applied["c2c:ok-a:ok-b"], produced_order("c2c:ok-a:ok-b"));
    assert!(seen.iter().any(|s| s.events.len() > 1), "queued events of one conversation are batched");
    // 409 is applied: no retries, no dead letters, every dup event finished.
    let dup_requests = seen.iter().filter(|s| s.events[0].conversation().as_str() == "c2c:dup-a:dup-b").count();
    let dup_events: usize =
        seen.iter().filter(|s| s.events[0].conversation().as_str() == "c2c:dup-a:dup-b").map(|s| s.events.len()).sum();
    assert_eq!(dup_events, 10, "each dup event sent once ({dup_requests} requests)");
    // 503 + Retry-After: 1, twice: retried, never sooner than asked, then applied in order.
    assert_eq!(applied["c2c:busy-a:busy-b"], produced_order("c2c:busy-a:busy-b"));
    let busy: Vec<&Seen> = seen.iter().filter(|s| s.events[0].conversation().as_str() == "c2c:busy-a:busy-b").collect();
    assert_eq!((busy[0].status, busy[1].status), (503, 503));
    assert!(
        busy[1].at - busy[0].at >= Duration::from_millis(990),
        "Retry-After honoured: {:?}",
        busy[1].at - busy[0].at
    );
    assert!(
        busy[2].at - busy[1].at >= Duration::from_millis(990),
        "Retry-After honoured: {:?}",
        busy[2].at - busy[1].at
    );
    // 400 naming event m4: m0..m3 confirmed applied, m4 dead-lettered with the reason, m5..m9 parked.
    let bad = produced_order("c2c:bad-a:bad-b");
    assert_eq!(applied["c2c:bad-a:bad-b"], bad[..4].to_vec());
    // 422 naming nothing: one by one, created + seq 1, 2 apply, seq 3 is dead-lettered, 4 and 5 parked.
    let vague = produced_order("group:vague");
    assert_eq!(applied["group:vague"], vague[..3].to_vec());

    let dlq = crate::common::records(&topics.dlq).await;
    assert_eq!(dlq.len(), want_dlq, "{dlq:#?}");
    let mut per_key: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for r in &dlq {
        let info = DeadLetterInfo::from_record(r).expect("dlq headers");
        assert_eq!(info.original_topic, topics.im_events);
        assert_eq!(r.key_str(), info.original_key.as_deref());
        let id = r.envelope().map(|e| e.id.as_str().to_owned()).unwrap_or_else(|_| "<poison>".into());
        per_key.entry(info.original_key.clone().unwrap_or_default()).or_default().push((id, info.kind, info.reason));
    }
    let bad_dlq = &per_key["c2c:bad-a:bad-b"];
    let ids: Vec<&str> = bad_dlq.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, bad[4..].iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(bad_dlq[0].1, "legacy_http_400");
    assert!(bad_dlq[0].2.contains("body too weird for legacy"), "the reason is legacy's answer: {}", bad_dlq[0].2);
    assert!(bad_dlq[1..].iter().all(|(_, kind, _)| kind == "parked"));
    let vague_dlq = &per_key["group:vague"];
    assert_eq!(
        vague_dlq.iter().map(|(id, _, _)| id.as_str()).collect::<Vec<_>>(),
        vague[3..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(vague_dlq[0].1, "legacy_http_422");
    // The poison record is dead-lettered without blocking; order stays strict, so the event behind it is parked
    // (never applied before the poison is resolved) like behind any other dead letter.
    let poison = &per_key["c2c:poison-a:poison-b"];
    assert_eq!(poison.len(), 2);
    assert_eq!((poison[0].0.as_str(), poison[0].1.as_str()), ("<poison>", "malformed"));
    assert_eq!(poison[1].1, "parked");
    assert!(!applied.contains_key("c2c:poison-a:poison-b"));
    assert_eq!(stats.dead_lettered as usize, want_dlq);

    // Metrics moved with what happened.
    assert_eq!(sample(&m, r#"imbridge_to_legacy_events_total{kind="c2c.message",outcome="duplicate"}"#), 10.0, "{m}");
    assert_eq!(sample(&m, r#"imbridge_to_legacy_events_total{kind="c2c.message",outcome="rejected"}"#), 1.0);
    assert_eq!(sample(&m, r#"imbridge_to_legacy_events_total{kind="group.message",outcome="rejected"}"#), 1.0);
    assert_eq!(sample(&m, r#"imbridge_to_legacy_events_total{kind="unknown",outcome="malformed"}"#), 1.0);
    assert!(sample(&m, r#"imbridge_to_legacy_apply_retries_total{reason="legacy_http_503"}"#) >= 2.0, "{m}");
    assert!(sample(&m, r#"imbridge_to_legacy_apply_seconds_count{outcome="rejected"}"#) >= 2.0);
    assert!(sample(&m, r#"imbridge_to_legacy_apply_seconds_count{outcome="duplicate"}"#) >= 1.0);
    assert_eq!(sample(&m, r#"imbridge_to_legacy_records_total{outcome="parked"}"#), 8.0);
}

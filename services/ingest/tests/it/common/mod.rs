//! Shared pieces of ingest's tests: a real ingest on 127.0.0.1:0 against the test broker with topics of its own,
//! signed requests built with the contract's and IM's own signing functions, and reading back what reached Kafka.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use imbridge_core::Envelope;
use imbridge_core::topics::TopicNames;
use imbridge_ingest::{IngestConfig, RunningIngest};
use imbridge_kafka::reader::{Start, read_range};
use imbridge_kafka::{KafkaConfig, Record};
use imbridge_legacy::SigningSecret;
use imbridge_legacy::signature::{now_secs, signature_headers};
use imbridge_runtime::Deps;
use serde_json::Value;

pub const LEGACY_SECRET: &str = "legacy-webhook-secret";
pub const CALLBACK_TOKEN: &str = "im-callback-token";
pub const SDKAPPID: u64 = 1_400_000_000;
/// The emulator's default admin: callbacks it causes are imbridge's echoes.
pub const ADMIN: &str = "administrator";

pub fn kafka() -> KafkaConfig {
    KafkaConfig::for_bootstrap(imbridge_testkit::kafka_bootstrap())
}

/// Topic names no other test uses.
pub fn topics() -> TopicNames {
    TopicNames {
        legacy_events: imbridge_testkit::unique("ingest-legacy"),
        im_events: imbridge_testkit::unique("ingest-im"),
        status: imbridge_testkit::unique("ingest-status"),
        partitions: 3,
        ..TopicNames::default()
    }
}

/// A spool directory of its own, kept for the whole test run (tests restart ingest on it).
pub fn spool_dir() -> std::path::PathBuf {
    let dir = tempfile::Builder::new().prefix("ingest-spool").tempdir().expect("tempdir");
    dir.keep()
}

pub fn config() -> IngestConfig {
    IngestConfig {
        spool_dir: spool_dir(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        legacy_secret: SigningSecret::new(LEGACY_SECRET),
        im_callback_token: Some(CALLBACK_TOKEN.to_owned()),
        readiness_interval_ms: 200,
        ..IngestConfig::default()
    }
}

/// An ingest on the test broker with fresh topics.
pub struct Ingest {
    pub running: RunningIngest,
    pub topics: TopicNames,
    pub kafka: KafkaConfig,
    pub http: reqwest::Client,
}

impl Ingest {
    pub async fn start(config: IngestConfig) -> Ingest {
        Self::start_with(config, kafka(), topics()).await
    }

    pub async fn start_with(config: IngestConfig, kafka: KafkaConfig, topics: TopicNames) -> Ingest {
        Self::start_old_side(config, kafka, topics, imbridge_runtime::OldSideConfig::default()).await
    }

    /// An ingest whose old side is `old_side` (the new app is always [`SDKAPPID`] with [`ADMIN`]).
    pub async fn start_old_side(
        config: IngestConfig,
        kafka: KafkaConfig,
        topics: TopicNames,
        old_side: imbridge_runtime::OldSideConfig,
    ) -> Ingest {
        let im = imbridge_im::ImConfig { sdkappid: SDKAPPID, admin_identifier: ADMIN.into(), ..Default::default() };
        let deps = Deps::new(kafka.clone(), topics.clone(), im).with_old_side(old_side);
        let running = imbridge_ingest::spawn(config, deps).await.expect("ingest starts");
        Ingest { running, topics, kafka, http: reqwest::Client::new() }
    }

    /// Waits until `/readyz` says ready (topics created, Kafka answering).
    pub async fn wait_ready(&self) {
        let url = format!("{}/readyz", self.running.url());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.http.get(&url).send().await.expect("readyz answers");
            if r.status() == 200 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "ingest never became ready: {}",
                r.text().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the spool's forwarder has every accepted callback on Kafka.
    pub async fn settled(&self) {
        let spool = self.running.service().spool().clone();
        imbridge_testkit::eventually("the spool is forwarded to kafka", Duration::from_secs(30), || {
            let spool = spool.clone();
            async move { spool.pending() == 0 }
        })
        .await;
    }

    /// POSTs `body` to the legacy endpoint signed with `secret` at `ts`.
    pub async fn post_legacy_signed(
        &self,
        body: &[u8],
        secret: &str,
        ts: i64,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self.http.post(self.running.legacy_url()).header("content-type", "application/json");
        for (k, v) in signature_headers(secret, ts, body) {
            req = req.header(k, v);
        }
        answer(req.body(body.to_vec()).send().await.expect("request sent")).await
    }

    /// POSTs a correctly signed batch `{"events": events}`.
    pub async fn post_legacy(&self, events: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(&serde_json::json!({ "events": events })).expect("json");
        let (s, v, _) = self.post_legacy_signed(&body, LEGACY_SECRET, now_secs()).await;
        (s, v)
    }

    /// POSTs a callback body with the query IM would send (signed with the test token, now).
    pub async fn post_callback(&self, body: &Value) -> (u16, Value) {
        let command = body["CallbackCommand"].as_str().unwrap_or_default().to_owned();
        let rt = now_secs().to_string();
        let sign = imbridge_im::callback::sign(CALLBACK_TOKEN, rt.parse().expect("secs"));
        let q = [
            ("SdkAppid", SDKAPPID.to_string()),
            ("CallbackCommand", command),
            ("contenttype", "json".into()),
            ("ClientIP", "127.0.0.1".into()),
            ("OptPlatform", "iOS".into()),
            ("Sign", sign),
            ("RequestTime", rt),
        ];
        self.post_callback_query(&q, body.to_string().into_bytes()).await
    }

    /// POSTs a raw callback with an explicit query.
    pub async fn post_callback_query(&self, query: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
        let url = reqwest::Url::parse_with_params(&self.running.callback_url(), query).expect("url");
        let (s, v, _) = answer(self.http.post(url).body(body).send().await.expect("request sent")).await;
        (s, v)
    }

    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.running.url());
        self.http.get(url).send().await.expect("metrics").text().await.expect("text")
    }

    /// Every record on `topic` so far, in offset order per partition.
    pub async fn records(&self, topic: &str) -> Vec<Record> {
        records(&self.kafka, topic).await
    }

    /// Every envelope on `topic`, each checked to be keyed by its own conversation.
    pub async fn envelopes(&self, topic: &str) -> Vec<Envelope> {
        self.records(topic)
            .await
            .iter()
            .map(|r| {
                let env = r.envelope().expect("an envelope");
                assert_eq!(r.key_str(), Some(env.conversation.as_str()), "keyed by conversation");
                env
            })
            .collect()
    }
}

pub async fn records(kafka: &KafkaConfig, topic: &str) -> Vec<Record> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    read_range(kafka, topic, None, Start::Earliest, move |r| {
        sink.lock().expect("lock").push(r);
        true
    })
    .await
    .expect("read topic");
    out.lock().expect("lock").clone()
}

async fn answer(resp: reqwest::Response) -> (u16, Value, reqwest::header::HeaderMap) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v, headers)
}

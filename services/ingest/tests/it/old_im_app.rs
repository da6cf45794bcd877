//! An IM app as the old side (`[old_side] kind = "im"`): both apps call back the one endpoint. Callbacks are told
//! apart by `SdkAppid` and each is checked with its own token; the old app's become old-side events (source
//! `legacy`, ids under `legacy:`) on the legacy events topic, the new app's stay IM events; each app's own admin
//! identity makes an echo on that app. No legacy webhook secret is needed then.

use crate::common::{CALLBACK_TOKEN, Ingest, SDKAPPID, config, kafka, topics};
use imbridge_core::{Event, Source};
use imbridge_ingest::IngestConfig;
use imbridge_legacy::SigningSecret;
use imbridge_legacy::signature::now_secs;
use imbridge_runtime::{OldSideConfig, OldSideKind};
use imbridge_testkit::prom::sample;
use serde_json::{Value, json};

const OLD_APP: u64 = 1_400_000_001;
const OLD_TOKEN: &str = "old-app-token";
const OLD_ADMIN: &str = "old-admin";

fn old_side() -> OldSideConfig {
    let im = imbridge_im::ImConfig {
        sdkappid: OLD_APP,
        admin_identifier: OLD_ADMIN.into(),
        secret_key: "k".into(),
        ..Default::default()
    };
    OldSideConfig { kind: OldSideKind::Im, im: Some(im), im_callback_token: Some(OLD_TOKEN.into()) }
}

fn c2c(from: &str, key: &str, text: &str) -> Value {
    json!({"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":from,"To_Account":"bob",
        "MsgSeq":1,"MsgRandom":2,"MsgTime":1_700_000_000,"MsgKey":key,"SendMsgResult":0,
        "MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":text}}],"EventTime":"1700000000123"})
}

async fn post(ing: &Ingest, app: u64, token: &str, body: &Value) -> u16 {
    let rt = now_secs().to_string();
    let q = [
        ("SdkAppid", app.to_string()),
        ("CallbackCommand", body["CallbackCommand"].as_str().unwrap_or_default().to_owned()),
        ("contenttype", "json".into()),
        ("OptPlatform", "iOS".into()),
        ("Sign", imbridge_im::callback::sign(token, rt.parse().expect("secs"))),
        ("RequestTime", rt),
    ];
    ing.post_callback_query(&q, body.to_string().into_bytes()).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_apps_call_back_one_endpoint_each_with_its_own_token() {
    imbridge_testkit::require_kafka!();
    // No legacy webhook secret: with an IM old side no legacy webhook is expected.
    let cfg = IngestConfig { legacy_secret: SigningSecret::default(), ..config() };
    let ing = Ingest::start_old_side(cfg, kafka(), topics(), old_side()).await;
    ing.wait_ready().await;

    assert_eq!(post(&ing, OLD_APP, OLD_TOKEN, &c2c("ann", "1_2_1700000000", "from the old app")).await, 200);
    assert_eq!(post(&ing, SDKAPPID, CALLBACK_TOKEN, &c2c("ann", "1_2_1700000000", "from the new app")).await, 200);
    // Each app's token is its own, and a third app is nobody's.
    assert_eq!(post(&ing, OLD_APP, CALLBACK_TOKEN, &c2c("ann", "9_9_1", "x")).await, 401);
    assert_eq!(post(&ing, SDKAPPID, OLD_TOKEN, &c2c("ann", "9_9_2", "x")).await, 401);
    assert_eq!(post(&ing, 1_400_000_009, OLD_TOKEN, &c2c("ann", "9_9_3", "x")).await, 401);
    // Each app's admin is an echo on that app only.
    assert_eq!(post(&ing, OLD_APP, OLD_TOKEN, &c2c(OLD_ADMIN, "3_3_1", "old echo")).await, 200);
    assert_eq!(post(&ing, SDKAPPID, CALLBACK_TOKEN, &c2c(crate::common::ADMIN, "3_3_2", "new echo")).await, 200);
    ing.settled().await;

    let old = ing.envelopes(&ing.topics.legacy_events).await;
    assert_eq!(old.len(), 1, "{old:?}");
    assert_eq!(old[0].source, Source::Legacy);
    assert_eq!(old[0].id.as_str(), "legacy:im:c2c:ann:1_2_1700000000", "the old app's ids never meet the new app's");
    assert!(matches!(&old[0].event, Event::C2cMessage(m) if m.from.as_str() == "ann"));
    let new = ing.envelopes(&ing.topics.im_events).await;
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!((new[0].source, new[0].id.as_str()), (Source::Im, "im:c2c:ann:1_2_1700000000"));
    let m = ing.metrics().await;
    assert_eq!(sample(&m, r#"imbridge_ingest_echoes_dropped_total{reason="operator",source="old_im"}"#), 1.0, "{m}");
    assert_eq!(sample(&m, r#"imbridge_ingest_echoes_dropped_total{reason="operator",source="im"}"#), 1.0, "{m}");
    ing.running.shutdown().await;
}

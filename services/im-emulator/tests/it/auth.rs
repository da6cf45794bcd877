//! The request gate: URL parameters, UserSig failures (each with its own code), admin-only access per service
//! family, unknown resources, body parsing, and 60007 frequency limits under a burst.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::{Im, assert_code, assert_ok, config};
use imbridge_im::usersig;
use imbridge_im_emulator::EmulatorConfig;
use serde_json::json;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

#[tokio::test]
async fn usersig_failures_have_distinct_codes() {
    let im = Im::start(config()).await;
    let cfg = im.running.emulator().config().clone();
    let admin = im.admin();
    let body = json!({"UserID": "u1"}).to_string();
    let api = "im_open_login_svc/account_import";

    // Valid signature: OK.
    let good = usersig::generate(cfg.sdkappid, &cfg.secret_key, &admin, 3600, now());
    assert_ok(&im.post_raw(&im.url(api, &admin, &good), body.clone()).await);

    // Expired: issued two days ago for one day.
    let expired = usersig::generate(cfg.sdkappid, &cfg.secret_key, &admin, 86_400, now() - 2 * 86_400);
    assert_code(&im.post_raw(&im.url(api, &admin, &expired), body.clone()).await, 70001);

    // Signed with another key.
    let wrong_key = usersig::generate(cfg.sdkappid, "not-the-key", &admin, 3600, now());
    assert_code(&im.post_raw(&im.url(api, &admin, &wrong_key), body.clone()).await, 70009);

    // Issued for another identifier.
    let other_user = usersig::generate(cfg.sdkappid, &cfg.secret_key, "someone", 3600, now());
    assert_code(&im.post_raw(&im.url(api, &admin, &other_user), body.clone()).await, 70013);

    // Issued for another app.
    let other_app = usersig::generate(cfg.sdkappid + 1, &cfg.secret_key, &admin, 3600, now());
    assert_code(&im.post_raw(&im.url(api, &admin, &other_app), body.clone()).await, 70014);

    // Garbage and missing.
    assert_code(&im.post_raw(&im.url(api, &admin, "not-a-usersig"), body.clone()).await, 70003);
    assert_code(&im.post_raw(&im.url(api, &admin, ""), body.clone()).await, 70003);
}

#[tokio::test]
async fn url_parameters_are_checked() {
    let im = Im::start(config()).await;
    let e = im.running.emulator();
    let admin = im.admin();
    let sig = e.usersig(&admin);
    let sdk = e.config().sdkappid;
    let base = im.base();
    let body = json!({"UserID": "u1"}).to_string();
    let path = "v4/im_open_login_svc/account_import";
    let cases = [
        (format!("{base}/{path}?identifier={admin}&usersig={sig}&random=1&contenttype=json"), 60012),
        (format!("{base}/{path}?sdkappid=abc&identifier={admin}&usersig={sig}&random=1&contenttype=json"), 60006),
        (
            format!("{base}/{path}?sdkappid=1400000001&identifier={admin}&usersig={sig}&random=1&contenttype=json"),
            70020,
        ),
        (format!("{base}/{path}?sdkappid={sdk}&identifier={admin}&usersig={sig}&contenttype=json"), 60002),
        (
            format!(
                "{base}/{path}?sdkappid={sdk}&identifier={admin}&usersig={sig}&random=99999999999&contenttype=json"
            ),
            60002,
        ),
        (format!("{base}/{path}?sdkappid={sdk}&identifier={admin}&usersig={sig}&random=1"), 60002),
        (format!("{base}/{path}?sdkappid={sdk}&identifier={admin}&usersig={sig}&random=1&contenttype=xml"), 60002),
    ];
    for (url, code) in cases {
        assert_code(&im.post_raw(&url, body.clone()).await, code);
    }
    // Non-POST: still HTTP 200 with an envelope.
    let url = im.url("im_open_login_svc/account_import", &admin, &sig);
    let resp = im.http.get(&url).send().await.expect("get sent");
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.expect("json");
    assert_code(&v, 60008);
}

#[tokio::test]
async fn only_admins_may_call_and_each_family_has_its_code() {
    let im = Im::start(config()).await;
    im.accounts(&["alice"]).await;
    let sig = im.running.emulator().usersig("alice");
    let cases = [
        ("im_open_login_svc/account_import", json!({"UserID": "x"}), 70403),
        ("profile/portrait_get", json!({"To_Account": ["alice"], "TagList": ["Tag_Profile_IM_Nick"]}), 40004),
        ("sns/friend_get", json!({"From_Account": "alice", "StartIndex": 0}), 30004),
        ("openim/sendmsg", json!({"To_Account": "alice", "MsgRandom": 1, "MsgBody": crate::common::text("x")}), 90009),
        ("group_open_http_svc/get_appid_group_list", json!({}), 10007),
        ("no_such_service/nope", json!({}), 60010),
    ];
    for (api, body, code) in cases {
        let v = im.post_raw(&im.url(api, "alice", &sig), body.to_string()).await;
        assert_code(&v, code);
    }
}

#[tokio::test]
async fn unknown_resources_and_bad_bodies() {
    let im = Im::start(config()).await;
    // Unknown command, and quit_group, which is not a REST API (reference §11.12).
    assert_code(&im.call("openim/no_such_command", json!({})).await, 60009);
    assert_code(&im.call("group_open_http_svc/quit_group", json!({"GroupId": "g"})).await, 60009);
    let v = im.post_raw(&format!("{}/v4/only_one_segment", im.base()), "{}").await;
    assert_code(&v, 60009);

    let admin = im.admin();
    let sig = im.running.emulator().usersig(&admin);
    let url = |api: &str| im.url(api, &admin, &sig);
    // Empty body, broken JSON per family, non-object JSON.
    assert_code(&im.post_raw(&url("openim/importmsg"), "").await, 60003);
    assert_code(&im.post_raw(&url("openim/importmsg"), "{not json").await, 90001);
    assert_code(&im.post_raw(&url("group_open_http_svc/create_group"), "{not json").await, 10011);
    assert_code(&im.post_raw(&url("profile/portrait_set"), "[1]").await, 40001);
    assert_code(&im.post_raw(&url("sns/friend_import"), "3").await, 30001);
    assert_code(&im.post_raw(&url("im_open_login_svc/account_import"), "null").await, 70402);
    // A positional array is refused with a reason, not read field by field.
    let v = im.post_raw(&url("im_open_login_svc/account_import"), r#"["ann","Ann",""]"#).await;
    assert_code(&v, 70402);
    assert_eq!(v["ErrorInfo"], "request body is an array, not a JSON object");
    // profile and sns answers carry ErrorDisplay.
    let v = im.post_raw(&url("profile/portrait_set"), "[1]").await;
    assert_eq!(v["ErrorDisplay"], "");
}

#[tokio::test]
async fn frequency_limit_answers_60007_under_a_burst() {
    let mut cfg = EmulatorConfig::default();
    assert!(cfg.rate_limits_enabled, "limits are on by default");
    cfg.rate_limit_overrides.insert("im_open_login_svc/account_check".into(), 5);
    let im = Im::start(cfg).await;
    let body = json!({"CheckItem": [{"UserID": "a"}]});
    let mut ok = 0;
    let mut limited = 0;
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let v = im.call("im_open_login_svc/account_check", body.clone()).await;
        match v["ErrorCode"].as_i64() {
            Some(0) => ok += 1,
            Some(60007) => limited += 1,
            other => panic!("unexpected answer {other:?}: {v}"),
        }
    }
    // A burst of one second's worth passes, plus what refills (5/s) while the burst runs; the rest is refused.
    let refilled = (started.elapsed().as_secs_f64() * 5.0).ceil() as u64;
    assert!(ok >= 5 && ok <= 5 + refilled, "ok = {ok}, refilled up to {refilled}");
    assert!(limited > 0);
    assert_eq!(ok + limited, 20);
    // Other APIs have their own buckets.
    im.ok("im_open_login_svc/account_import", json!({"UserID": "u"})).await;
    let stats = im.running.emulator().stats();
    assert_eq!(stats.rate_limited, limited);
    assert_eq!(stats.requests["im_open_login_svc/account_check"], 20);
    // The bucket refills.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_ok(&im.call("im_open_login_svc/account_check", body.clone()).await);

    // get_appid_group_list is documented at 1/s.
    let first = im.call("group_open_http_svc/get_appid_group_list", json!({})).await;
    assert_ok(&first);
    assert_code(&im.call("group_open_http_svc/get_appid_group_list", json!({})).await, 60007);

    // And the stats endpoint reports it over HTTP.
    let stats: serde_json::Value =
        im.http.get(format!("{}/emulator/stats", im.base())).send().await.expect("stats").json().await.expect("json");
    assert!(stats["rate_limited"].as_u64().expect("count") >= 1);
}

#[tokio::test]
async fn limits_can_be_turned_off() {
    let im = Im::start(config()).await;
    for _ in 0..5 {
        assert_ok(&im.call("group_open_http_svc/get_appid_group_list", json!({})).await);
    }
    assert_eq!(im.running.emulator().stats().rate_limited, 0);
}

#[tokio::test]
async fn healthz_and_config_validation() {
    let im = Im::start(config()).await;
    let resp = im.http.get(format!("{}/emulator/healthz", im.base())).send().await.expect("healthz");
    assert_eq!(resp.status(), 200);
    let bad = EmulatorConfig { admin_identifiers: vec![], ..EmulatorConfig::default() };
    assert!(imbridge_im_emulator::spawn(bad).await.is_err());
    let mut bad = EmulatorConfig::default();
    bad.rate_limit_overrides.insert("openim/nope".into(), 3);
    assert!(imbridge_im_emulator::spawn(bad).await.is_err());
}

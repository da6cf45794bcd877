//! The legacy emulator in process (real HTTP): started accepting [`crate::APPLY_SECRET`], its user API as an
//! old-app user calls it, and the messages it holds.

use imbridge_legacy::SigningSecret;
use imbridge_legacy_emulator::{LegacyEmulatorConfig, RunningLegacyEmulator};
use serde_json::Value;

/// A legacy emulator accepting [`crate::APPLY_SECRET`] on its apply endpoint.
pub async fn spawn_legacy() -> RunningLegacyEmulator {
    spawn_legacy_with(LegacyEmulatorConfig::default()).await
}

/// A legacy emulator with `config`, accepting [`crate::APPLY_SECRET`] on its apply endpoint.
pub async fn spawn_legacy_with(config: LegacyEmulatorConfig) -> RunningLegacyEmulator {
    imbridge_legacy_emulator::spawn(LegacyEmulatorConfig {
        apply_secrets: vec![SigningSecret::new(crate::APPLY_SECRET)],
        ..config
    })
    .await
    .expect("legacy emulator")
}

/// POSTs to legacy's user API (`/api/users`, `/api/messages`, …); fails the test unless it succeeds.
pub async fn legacy_api(legacy: &RunningLegacyEmulator, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new().post(format!("{}{path}", legacy.url())).json(&body).send().await.expect("legacy");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

/// The texts of the messages legacy holds at `path` (`/api/groups/G/messages`, `/api/c2c/A/B/messages`), in
/// its order; empty while it does not answer or has none.
pub async fn legacy_texts(legacy_url: &str, path: &str) -> Vec<String> {
    let Ok(r) = reqwest::get(format!("{legacy_url}{path}")).await else { return Vec::new() };
    if !r.status().is_success() {
        return Vec::new();
    }
    let v: Value = r.json().await.unwrap_or(Value::Null);
    // Group messages come as a plain array, a 1:1 conversation as {"messages": [...]}.
    let list = if v.is_array() { &v } else { &v["messages"] };
    list.as_array()
        .map(|a| a.iter().map(|m| m["body"][0]["text"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

/// Legacy knows group `g`.
pub async fn group_on_legacy(legacy_url: &str, g: &str) -> bool {
    reqwest::get(format!("{legacy_url}/api/groups/{g}")).await.is_ok_and(|r| r.status().is_success())
}

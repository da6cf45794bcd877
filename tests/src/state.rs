//! Whole-state snapshots of both emulators, and a readable diff of two snapshots: equal snapshots mean a
//! replay (or any re-delivery) changed nothing on either side.

use imbridge_im_emulator::RunningEmulator;
use imbridge_legacy_emulator::RunningLegacyEmulator;
use serde_json::Value;

/// IM's whole state as the emulator persists it (it needs a state file: [`crate::spawn_im_with_state`]).
pub fn im_state(im: &RunningEmulator) -> Value {
    im.emulator().save_state().expect("save im state");
    let path = im.emulator().config().state_file.clone().expect("state file configured");
    serde_json::from_slice(&std::fs::read(path).expect("read im state")).expect("im state json")
}

/// Legacy's whole state (users, conversations, groups, applied idempotency keys) without its request
/// counters, which count a repeated apply answered 409 as a request.
pub fn legacy_state(legacy: &RunningLegacyEmulator) -> Value {
    let mut v = legacy.emulator().read(|s| serde_json::to_value(s).expect("legacy state json"));
    if let Some(o) = v.as_object_mut() {
        o.remove("counters");
    }
    v
}

/// The paths where two JSON documents differ (with both values), for readable assertion messages.
pub fn json_diff(a: &Value, b: &Value) -> Vec<String> {
    fn walk(path: String, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                    let (va, vb) = (x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null));
                    walk(format!("{path}.{k}"), va, vb, out);
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                    walk(format!("{path}[{i}]"), va, vb, out);
                }
            }
            _ if a != b => {
                let short = |v: &Value| v.to_string().chars().take(300).collect::<String>();
                out.push(format!("{path}: {} → {}", short(a), short(b)));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(String::new(), a, b, &mut out);
    out
}

/// Asserts two state snapshots are equal, naming the differences.
pub fn assert_same_state(what: &str, before: &Value, after: &Value) {
    let diff = json_diff(before, after);
    assert!(diff.is_empty(), "{what}: {} difference(s): {:#?}", diff.len(), &diff[..diff.len().min(20)]);
}

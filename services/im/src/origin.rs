//! imbridge's origin marker in an IM message's `CloudCustomData`: how to-im labels what it copies from legacy,
//! how ingest recognises the callbacks IM fires for those copies (echoes), and how reconciliation tells a
//! legacy-origin message on IM from an IM user's own. One definition, so the three can never disagree.
//!
//! Without a legacy `custom_data` the marker is exactly `{"imbridge_origin":"legacy"}`. With one, the original
//! string is carried verbatim as a JSON string beside the marker — `{"imbridge_origin":"legacy","custom_data":
//! "<original>"}` — rather than merged into it: merging is lossy (the original need not be a JSON object; its key
//! order and spacing would change; its own keys could collide with ours).

/// The key of the origin marker in `CloudCustomData`.
pub const ORIGIN_KEY: &str = "imbridge_origin";
/// The marker's value for messages imbridge copied from legacy.
pub const ORIGIN_LEGACY: &str = "legacy";
/// The marker's value for messages imbridge copied from the new IM app to an old IM app.
pub const ORIGIN_IM: &str = "im";
/// Where a legacy `custom_data` travels inside the marked `CloudCustomData`.
pub const CUSTOM_DATA_KEY: &str = "custom_data";

/// The `CloudCustomData` of a message imbridge copies from legacy.
pub fn encode_cloud_custom_data(custom_data: Option<&str>) -> String {
    encode_cloud_custom_data_as(ORIGIN_LEGACY, custom_data)
}

/// The `CloudCustomData` of a message imbridge copies from the side named `origin` (`legacy`, or `im` on an old
/// IM app), the original `custom_data` carried beside the marker.
pub fn encode_cloud_custom_data_as(origin: &str, custom_data: Option<&str>) -> String {
    let marker = format!("{{\"{ORIGIN_KEY}\":\"{origin}\"");
    match custom_data {
        None => format!("{marker}}}"),
        // Serializing a &str cannot fail.
        Some(c) => format!("{marker},\"{CUSTOM_DATA_KEY}\":{}}}", serde_json::to_string(c).unwrap_or_default()),
    }
}

/// The inverse of [`encode_cloud_custom_data`]: `Some(original custom_data)` when `ccd` carries imbridge's
/// legacy-origin marker, `None` when it is someone else's `CloudCustomData` (or none).
pub fn decode_cloud_custom_data(ccd: &str) -> Option<Option<String>> {
    let v: serde_json::Value = serde_json::from_str(ccd.trim()).ok()?;
    let o = v.as_object()?;
    if o.get(ORIGIN_KEY).and_then(|x| x.as_str()) != Some(ORIGIN_LEGACY) {
        return None;
    }
    Some(o.get(CUSTOM_DATA_KEY).and_then(|x| x.as_str()).map(str::to_owned))
}

/// True when `CloudCustomData` is a JSON object carrying the marker key, whatever its value: ingest drops such
/// callbacks as echoes even if a future marker value is not one this build knows.
pub fn has_origin_marker(cloud_custom_data: Option<&str>) -> bool {
    let Some(s) = cloud_custom_data.map(str::trim).filter(|s| s.starts_with('{')) else { return false };
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s).is_ok_and(|m| m.contains_key(ORIGIN_KEY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_is_exact_and_lossless() {
        assert_eq!(encode_cloud_custom_data(None), r#"{"imbridge_origin":"legacy"}"#);
        let v: serde_json::Value = serde_json::from_str(&encode_cloud_custom_data(None)).expect("json");
        assert_eq!(v, serde_json::json!({"imbridge_origin": "legacy"}));
        for original in [r#"{"a":1, "b" : [2]}"#, "plain text", "", r#"{"imbridge_origin":"im"}"#, "\"q\"\n\u{1F600}"] {
            let enc = encode_cloud_custom_data(Some(original));
            let v: serde_json::Value = serde_json::from_str(&enc).expect("valid json");
            assert_eq!(v[ORIGIN_KEY], ORIGIN_LEGACY);
            assert_eq!(decode_cloud_custom_data(&enc), Some(Some(original.to_owned())), "{original:?}");
            assert!(has_origin_marker(Some(&enc)));
        }
        assert_eq!(decode_cloud_custom_data(&encode_cloud_custom_data(None)), Some(None));
        assert_eq!(
            decode_cloud_custom_data(r#" {"imbridge_origin":"legacy","custom_data":"x"}"#),
            Some(Some("x".into()))
        );
        assert_eq!(decode_cloud_custom_data(r#"{"x":1}"#), None);
        assert_eq!(decode_cloud_custom_data(r#"{"imbridge_origin":"im"}"#), None);
        assert_eq!(decode_cloud_custom_data("not json"), None);
    }

    #[test]
    fn marker_forms_ingest_recognises() {
        assert!(has_origin_marker(Some(r#"{"imbridge_origin":"legacy"}"#)));
        assert!(has_origin_marker(Some(r#" {"x":1,"imbridge_origin":"legacy"}"#)));
        assert!(!has_origin_marker(Some(r#"{"origin":"legacy"}"#)));
        assert!(!has_origin_marker(Some("imbridge_origin")));
        assert!(!has_origin_marker(Some("[\"imbridge_origin\"]")));
        assert!(!has_origin_marker(Some("{not json")));
        assert!(!has_origin_marker(None));
    }
}

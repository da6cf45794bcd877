//! Keeps the JSON Schemas under `schemas/` and the Rust event model in step.
//!
//! Every golden example must validate against the envelope schema AND round-trip through
//! [`imbridge_core::Envelope`]; every [`EventKind`] must have a payload schema and an example; every field a
//! schema defines must appear in some example; and a set of deliberately invalid events must be rejected by
//! both sides. The schemas are intentionally a little stricter than the Rust reader (byte limits, unknown
//! fields); `schema_is_stricter_than_the_reader` pins exactly where.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use imbridge_core::{Element, Envelope, EventKind};
use jsonschema::{Registry, Validator};
use serde_json::Value;

const BASE: &str = "https://imbridge.invalid/schemas/";

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The event schema documents, by path relative to `schemas/`.
fn schema_documents() -> BTreeMap<String, Value> {
    let dir = schemas_dir();
    let mut docs = BTreeMap::new();
    for name in ["common.schema.json", "body.schema.json", "envelope.schema.json"] {
        docs.insert(name.to_owned(), read_json(&dir.join(name)));
    }
    for entry in fs::read_dir(dir.join("events")).expect("schemas/events") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("utf-8 name").to_owned();
        docs.insert(format!("events/{name}"), read_json(&path));
    }
    docs
}

struct Schemas {
    docs: BTreeMap<String, Value>,
    envelope: Validator,
}

impl Schemas {
    fn load() -> Self {
        let docs = schema_documents();
        for (name, doc) in &docs {
            // Each document names itself by its path, so relative `$ref`s resolve the same way on disk and here.
            assert_eq!(doc["$id"], Value::String(format!("{BASE}{name}")), "{name}: $id must match its path");
            assert_eq!(doc["$schema"], "https://json-schema.org/draft/2020-12/schema", "{name}: draft 2020-12");
            if let Err(e) = jsonschema::meta::validate(doc) {
                panic!("{name} is not a valid JSON Schema: {e}");
            }
        }
        let registry = docs
            .iter()
            .try_fold(Registry::new(), |r, (name, doc)| r.add(format!("{BASE}{name}"), doc.clone()))
            .expect("schema uris")
            .prepare()
            .expect("registry");
        let envelope = jsonschema::options()
            .with_registry(&registry)
            .build(&docs["envelope.schema.json"])
            .expect("envelope schema compiles");
        Self { docs, envelope }
    }

    fn errors(&self, instance: &Value) -> Vec<String> {
        self.envelope.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
    }

    fn payload_properties(&self, kind: EventKind) -> BTreeSet<String> {
        let doc = &self.docs[&format!("events/{}.schema.json", kind.as_str())];
        doc["properties"].as_object().expect("properties").keys().cloned().collect()
    }
}

/// `(file stem, kind named by the file, document)` for each golden example.
fn examples() -> Vec<(String, String, Value)> {
    let dir = schemas_dir().join("examples");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).expect("schemas/examples") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("utf-8 name").to_owned();
        // `<kind>.json` or `<kind>--<variant>.json`.
        let kind = stem.split("--").next().unwrap_or_default().to_owned();
        out.push((stem, kind, read_json(&path)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_kind_has_a_schema_and_an_example() {
    let dir = schemas_dir();
    let names: BTreeSet<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    for kind in EventKind::ALL {
        let k = kind.as_str();
        assert!(dir.join(format!("events/{k}.schema.json")).is_file(), "no schema for {k}");
        assert!(dir.join(format!("examples/{k}.json")).is_file(), "no golden example for {k}");
    }
    // And nothing the Rust model does not know: a schema or an example for a kind that does not exist.
    for name in schema_documents().keys().filter_map(|n| n.strip_prefix("events/")) {
        let kind = name.trim_end_matches(".schema.json");
        assert!(names.contains(kind), "schemas/events/{name} is not an EventKind");
    }
    for (stem, kind, _) in examples() {
        assert!(names.contains(kind.as_str()), "schemas/examples/{stem}.json names no EventKind");
    }
    // The envelope's `kind` enum lists exactly the Rust kinds.
    let docs = schema_documents();
    let listed: BTreeSet<&str> = docs["envelope.schema.json"]["properties"]["kind"]["enum"]
        .as_array()
        .expect("kind enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(listed, names);
}

#[test]
fn golden_examples_validate_and_round_trip() {
    let schemas = Schemas::load();
    let all = examples();
    assert!(all.len() >= EventKind::ALL.len());
    for (stem, kind, doc) in all {
        let errors = schemas.errors(&doc);
        assert!(errors.is_empty(), "{stem}: schema rejects the golden example: {errors:#?}");

        let env: Envelope = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{stem}: rust rejects: {e}"));
        assert_eq!(env.kind().as_str(), kind, "{stem}: kind");
        assert_eq!(env.event.conversation(), env.conversation, "{stem}: conversation is not the payload's key");

        let bytes = env.to_json();
        let again: Value = serde_json::from_slice(&bytes).expect("re-serialized json");
        let errors = schemas.errors(&again);
        assert!(errors.is_empty(), "{stem}: schema rejects the re-serialized event: {errors:#?}");
        // Canonical output writes times as integer milliseconds, whatever the input used.
        assert!(again["time"].is_i64(), "{stem}: time is not written as integer ms");
        let reparsed = Envelope::from_json(&bytes).expect("re-parse");
        assert_eq!(reparsed, env, "{stem}: parse → serialize → parse changed the event");
        assert_eq!(reparsed.to_json(), bytes, "{stem}: serialization is not stable");
    }
}

#[test]
fn examples_cover_every_field_and_element_type() {
    let schemas = Schemas::load();
    let examples = examples();
    for kind in EventKind::ALL {
        let mut seen = BTreeSet::new();
        for (_, k, doc) in examples.iter().filter(|(_, k, _)| k == kind.as_str()) {
            assert_eq!(k, kind.as_str());
            seen.extend(doc["payload"].as_object().expect("payload object").keys().cloned());
        }
        let defined = schemas.payload_properties(kind);
        let missing: Vec<_> = defined.difference(&seen).collect();
        assert!(missing.is_empty(), "{}: no golden example has {missing:?}", kind.as_str());
    }
    let envelope_fields: BTreeSet<String> =
        examples.iter().flat_map(|(_, _, d)| d.as_object().expect("obj").keys().cloned()).collect();
    for field in schemas.docs["envelope.schema.json"]["properties"].as_object().expect("props").keys() {
        assert!(envelope_fields.contains(field), "no golden example has envelope field {field}");
    }

    // Every element type, and every field of every element type, appears in some example body.
    let body_schema = &schemas.docs["body.schema.json"]["$defs"];
    let mut seen_fields: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, _, doc) in &examples {
        for element in doc["payload"]["body"].as_array().into_iter().flatten() {
            let parsed: Element = serde_json::from_value(element.clone()).expect("element");
            let fields = seen_fields.entry(parsed.type_name().to_owned()).or_default();
            fields.extend(element.as_object().expect("element object").keys().cloned());
        }
    }
    let types: Vec<&str> = body_schema["lenient_element"]["properties"]["type"]["enum"]
        .as_array()
        .expect("type enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(types.len(), 8);
    for t in types {
        let defined: BTreeSet<String> =
            body_schema[t]["properties"].as_object().expect("props").keys().cloned().collect();
        let seen = seen_fields.get(t).unwrap_or_else(|| panic!("no golden example has a {t} element"));
        let missing: Vec<_> = defined.difference(seen).collect();
        assert!(missing.is_empty(), "{t} element: no golden example has {missing:?}");
    }
}

#[test]
fn invalid_examples_are_rejected_by_both() {
    let schemas = Schemas::load();
    let dir = schemas_dir().join("examples/invalid");
    let mut count = 0;
    for entry in fs::read_dir(&dir).expect("schemas/examples/invalid") {
        let path = entry.expect("dir entry").path();
        let doc = read_json(&path);
        let name = path.display().to_string();
        assert!(!schemas.errors(&doc).is_empty(), "{name}: the schema accepts it");
        assert!(serde_json::from_value::<Envelope>(doc).is_err(), "{name}: the rust type accepts it");
        count += 1;
    }
    assert!(count >= 10, "only {count} invalid examples");
}

/// Where the schema deliberately says more than the Rust reader checks. If one of these starts failing
/// because the reader became stricter, move the case into `schemas/examples/invalid/`.
#[test]
fn schema_is_stricter_than_the_reader() {
    let schemas = Schemas::load();
    let base = read_json(&schemas_dir().join("examples/c2c.message--rfc3339-time.json"));
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        // IM's UserID limit is 32 bytes; `UserId` deserializes transparently and checks only in `parse`.
        ("user id over 32 bytes", Box::new(|v| v["payload"]["to"] = Value::from("x".repeat(33)))),
        ("control character in a user id", Box::new(|v| v["payload"]["to"] = Value::from("bo\nb"))),
        // Producers must not add fields; readers ignore them so an added optional field is a compatible change.
        ("unknown payload field", Box::new(|v| v["payload"]["colour"] = Value::from("red"))),
        ("unknown envelope field", Box::new(|v| v["priority"] = Value::from(1))),
        // The schema ties the key's shape to the kind; the reader takes the key as given.
        ("group key on a c2c message", Box::new(|v| v["conversation"] = Value::from("group:alice"))),
    ];
    for (what, mutate) in cases {
        let mut doc = base.clone();
        mutate(&mut doc);
        assert!(!schemas.errors(&doc).is_empty(), "{what}: the schema accepts it");
        assert!(serde_json::from_value::<Envelope>(doc).is_ok(), "{what}: the reader now rejects it too");
    }
}

#[test]
fn times_accept_rfc3339_and_ms_strings() {
    let schemas = Schemas::load();
    let base = read_json(&schemas_dir().join("examples/group.dismissed.json"));
    for time in [
        Value::from("2023-11-14T22:13:20.123Z"),
        Value::from("2023-11-15T06:13:20+08:00"),
        Value::from("1700000000123"),
    ] {
        let mut doc = base.clone();
        doc["time"] = time.clone();
        assert!(schemas.errors(&doc).is_empty(), "schema rejects time {time}");
        assert!(serde_json::from_value::<Envelope>(doc).is_ok(), "reader rejects time {time}");
    }
}

//! Keeps `schemas/legacy/` and the Rust contract types in step: every golden example validates against its
//! JSON Schema AND parses with [`ContractEvent`]; what Rust writes validates too; and a set of bad events is
//! refused by both, so neither side is looser than the other for the cases the contract names.

use std::path::PathBuf;

use imbridge_legacy::{ContractEvent, ErrorsBody, parse_batch};
use jsonschema::{Retrieve, Uri, Validator};
use serde_json::{Value, json};

const BASE: &str = "https://imbridge.invalid/schemas/legacy/";
const TYPES: [&str; 7] = [
    "c2c.message",
    "group.message",
    "group.created",
    "group.updated",
    "group.dismissed",
    "group.members_joined",
    "group.members_left",
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/legacy")
}

fn read(rel: &str) -> Value {
    let path = dir().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Resolves the schemas' relative `$ref`s (`common.schema.json#/…`) to the files beside them, offline.
struct LocalSchemas;

impl Retrieve for LocalSchemas {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri.as_str().strip_prefix(BASE).ok_or_else(|| format!("unexpected $ref {}", uri.as_str()))?;
        Ok(read(name))
    }
}

fn validator(schema_file: &str) -> Validator {
    let schema = read(schema_file);
    assert_eq!(schema["$id"], format!("{BASE}{schema_file}"), "{schema_file}: $id must match its file name");
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    jsonschema::options()
        .with_retriever(LocalSchemas)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{schema_file} is not a valid schema: {e}"))
}

fn errors(v: &Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

#[test]
fn every_golden_example_validates_and_parses() {
    for t in TYPES {
        let v = validator(&format!("{t}.schema.json"));
        let example = read(&format!("examples/{t}.json"));
        assert_eq!(errors(&v, &example), Vec::<String>::new(), "{t} golden example against its schema");
        let parsed = ContractEvent::from_value(&example).unwrap_or_else(|e| panic!("{t} golden example: {e}"));
        assert_eq!(parsed.data.type_name(), t);
        // What Rust writes back is valid too, and reads back to the same event.
        let written = serde_json::to_value(&parsed).expect("serialize");
        assert_eq!(errors(&v, &written), Vec::<String>::new(), "{t} as written by Rust");
        assert_eq!(ContractEvent::from_value(&written).expect("reparse"), parsed);
        // Only the time's form may differ between the example and what Rust writes (ms always).
        let (mut a, mut b) = (example.clone(), written.clone());
        a.as_object_mut().expect("object").remove("time");
        b.as_object_mut().expect("object").remove("time");
        assert_eq!(a, b, "{t}: Rust drops or renames a field");
    }
}

#[test]
fn golden_batch_validates_and_parses() {
    let v = validator("batch.schema.json");
    let batch = read("examples/batch.json");
    assert_eq!(errors(&v, &batch), Vec::<String>::new());
    let events = parse_batch(&serde_json::to_vec(&batch).expect("ser")).expect("parses");
    assert_eq!(events.len(), batch["events"].as_array().expect("array").len());
    // Every single-type example is also a valid one-event batch.
    for t in TYPES {
        let one = json!({ "events": [read(&format!("examples/{t}.json"))] });
        assert_eq!(errors(&v, &one), Vec::<String>::new(), "{t} as a batch");
    }
}

#[test]
fn golden_errors_answer_validates_and_parses() {
    let v = validator("errors.schema.json");
    let body = read("examples/errors.json");
    assert_eq!(errors(&v, &body), Vec::<String>::new());
    let parsed: ErrorsBody = serde_json::from_value(body).expect("parses");
    assert_eq!(parsed.errors[0].index, Some(1));
    // What parse_batch produces for a bad batch is a valid answer body.
    let err = parse_batch(br#"{"events":[{"id":"x","type":"c2c.message","time":1}]}"#).expect_err("bad");
    assert_eq!(errors(&v, &serde_json::to_value(err.to_body()).expect("ser")), Vec::<String>::new());
    let err = parse_batch(b"{}").expect_err("bad");
    assert_eq!(errors(&v, &serde_json::to_value(err.to_body()).expect("ser")), Vec::<String>::new());
}

#[test]
fn bad_events_are_refused_by_schema_and_rust_alike() {
    let msg =
        || json!({"id":"m","type":"c2c.message","time":1,"from":"ann","to":"bob","body":[{"type":"text","text":"x"}]});
    let with = |base: Value, k: &str, val: Value| {
        let mut o = base;
        o[k] = val;
        o
    };
    let without = |base: Value, k: &str| {
        let mut o = base;
        o.as_object_mut().expect("object").remove(k);
        o
    };
    let group = |t: &str| json!({"id":"g","type":t,"time":1,"group_id":"team","members":["ann"]});
    let cases: Vec<(&str, Value)> = vec![
        ("missing id", without(msg(), "id")),
        ("empty id", with(msg(), "id", json!(""))),
        ("id over 128", with(msg(), "id", json!("i".repeat(129)))),
        ("missing to", without(msg(), "to")),
        ("empty body", with(msg(), "body", json!([]))),
        ("unknown element", with(msg(), "body", json!([{"type":"hologram"}]))),
        ("element with unknown field", with(msg(), "body", json!([{"type":"text","text":"x","bold":true}]))),
        ("file without size", with(msg(), "body", json!([{"type":"file","url":"u","name":"n"}]))),
        ("negative size", with(msg(), "body", json!([{"type":"image","url":"u","size":-1}]))),
        ("user id over 32", with(msg(), "from", json!("u".repeat(33)))),
        ("empty user id", with(msg(), "to", json!(""))),
        ("control char in user id", with(msg(), "to", json!("a\nb"))),
        ("time in words", with(msg(), "time", json!("yesterday"))),
        ("negative time", with(msg(), "time", json!(-5))),
        ("fractional time", with(msg(), "time", json!(1.5))),
        ("unknown origin", with(msg(), "origin", json!("martians"))),
        (
            "group message without group",
            json!({"id":"g","type":"group.message","time":1,"from":"a",
            "body":[{"type":"text","text":"x"}]}),
        ),
        (
            "bad group type",
            json!({"id":"g","type":"group.created","time":1,"group_id":"t","group_type":"AVChatRoom",
            "name":"n"}),
        ),
        ("group without name", json!({"id":"g","type":"group.created","time":1,"group_id":"t","group_type":"Public"})),
        (
            "blank group name",
            json!({"id":"g","type":"group.created","time":1,"group_id":"t","group_type":"Public",
            "name":"  "}),
        ),
        ("group id over 48", json!({"id":"g","type":"group.dismissed","time":1,"group_id":"g".repeat(49)})),
        ("update of nothing", json!({"id":"g","type":"group.updated","time":1,"group_id":"t","operator":"ann"})),
        ("join of nobody", with(group("group.members_joined"), "members", json!([]))),
        ("leave of nobody", with(group("group.members_left"), "members", json!([]))),
        ("leave for a bad reason", with(group("group.members_left"), "reason", json!("bored"))),
        ("unknown type", json!({"id":"g","type":"group.exploded","time":1,"group_id":"t"})),
    ];
    let batch = validator("batch.schema.json");
    for (what, event) in cases {
        let rust = ContractEvent::from_value(&event);
        assert!(rust.is_err(), "{what}: Rust accepted {event}");
        let one = json!({ "events": [event] });
        assert!(!batch.is_valid(&one), "{what}: schema accepted {one}");
    }
    // And the positive controls of the cases above are accepted by both.
    for ok in [msg(), group("group.members_joined"), with(group("group.members_left"), "reason", json!("kicked"))] {
        assert!(ContractEvent::from_value(&ok).is_ok(), "{ok}");
        assert!(batch.is_valid(&json!({ "events": [ok] })));
    }
}

#[test]
fn batch_size_limits_match() {
    let v = validator("batch.schema.json");
    let e = read("examples/group.dismissed.json");
    assert!(!v.is_valid(&json!({"events": []})));
    assert!(v.is_valid(&json!({"events": vec![e.clone(); 500]})));
    assert!(!v.is_valid(&json!({"events": vec![e; 501]})));
}

/// A validator for one definition of `read.schema.json`.
fn read_validator(def: &str) -> Validator {
    let _ = validator("read.schema.json");
    let schema = json!({ "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("{BASE}read.schema.json#/$defs/{def}") });
    jsonschema::options().with_retriever(LocalSchemas).should_validate_formats(true).build(&schema).expect("schema")
}

/// Parses a golden read example with its Rust type, writes it back, and checks both against the schema.
fn read_round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(def: &str) {
    let v = read_validator(def);
    let example = read(&format!("examples/read.{def}.json"));
    assert_eq!(errors(&v, &example), Vec::<String>::new(), "{def} example");
    let parsed: T = serde_json::from_value(example.clone()).unwrap_or_else(|e| panic!("{def}: {e}"));
    let written = serde_json::to_value(&parsed).expect("serialize");
    assert_eq!(errors(&v, &written), Vec::<String>::new(), "{def} as Rust writes it");
}

#[test]
fn read_endpoint_examples_validate_and_parse() {
    use imbridge_legacy::read::{
        AccountsAnswer, AccountsRequest, ConversationAnswer, ConversationRequest, DigestsAnswer, DigestsRequest,
    };
    read_round_trip::<DigestsRequest>("digests_request");
    read_round_trip::<DigestsAnswer>("digests_answer");
    read_round_trip::<ConversationRequest>("conversation_request");
    read_round_trip::<ConversationAnswer>("conversation_answer");
    read_round_trip::<AccountsRequest>("accounts_request");
    read_round_trip::<AccountsAnswer>("accounts_answer");
    // Both sides refuse an unknown request field and a user: key.
    let bad = json!({"conversation":"user:ann"});
    assert!(!errors(&read_validator("conversation_request"), &bad).is_empty());
    let typo = json!({"since": 1, "untill": 2});
    assert!(!errors(&read_validator("digests_request"), &typo).is_empty());
    assert!(serde_json::from_value::<DigestsRequest>(typo).is_err());
}

//! The export half of the importer, end to end on files: generate → validate → plan, plus hand-written
//! exports for the ordering and reference rules, and the export JSON Schemas against the generated lines.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use imbridge_core::event::Event;
use imbridge_core::{Envelope, EventKind, topics};
use imbridge_importer::generate::BadKind;
use imbridge_importer::{
    ExportDir, ExportKind, GenerateOptions, ImportPlan, PlanOptions, Report, ValidateOptions, Validation, generate,
    validate,
};
use serde_json::Value;

fn small() -> GenerateOptions {
    GenerateOptions {
        seed: 7,
        users: 60,
        friendships: 200,
        c2c_messages: 3000,
        groups: 8,
        group_messages: 1200,
        ..GenerateOptions::default()
    }
}

fn all_errors() -> ValidateOptions {
    ValidateOptions { max_errors_per_kind: 10_000, now_ms: Some(GenerateOptions::default().end_ms) }
}

fn run(dir: &Path, options: &ValidateOptions) -> (ExportDir, Arc<Validation>) {
    let export = ExportDir::open(dir).expect("open export");
    let validation = Arc::new(validate(&export, options).expect("validate"));
    (export, validation)
}

fn collect(plan: &ImportPlan, topic: &str) -> Vec<Envelope> {
    plan.events(topic).expect("topic").map(|e| e.expect("event")).collect()
}

#[test]
fn generated_export_validates_clean_and_converts_completely() {
    let tmp = tempfile::tempdir().expect("tmp");
    let generated = generate(tmp.path(), &GenerateOptions::default()).expect("generate");
    let (export, validation) = run(tmp.path(), &all_errors());
    let issues: Vec<String> = validation.issues().map(ToString::to_string).collect();
    assert!(validation.is_clean(), "generated export has errors: {issues:#?}");
    for kind in ExportKind::ALL {
        assert_eq!(validation.summary(kind).valid, generated.valid[&kind], "{kind}");
        assert!(generated.valid[&kind] > 0, "{kind}: the sample has none");
    }
    assert_eq!(generated.valid[&ExportKind::Accounts], 200);
    assert_eq!(generated.valid[&ExportKind::C2cMessages], 20_000);
    assert_eq!(generated.valid[&ExportKind::GroupMessages], 5000);
    assert_eq!(validation.event_counts()[&EventKind::ImportMemberUnread], generated.unread_counts);

    let plan = ImportPlan::new(export, Arc::clone(&validation), PlanOptions::default());
    let mut produced: BTreeMap<EventKind, u64> = BTreeMap::new();
    for topic in topics::IMPORT_TOPICS {
        let events = collect(&plan, topic);
        assert_eq!(events.len() as u64, plan.topic_counts()[topic], "{topic}");
        for e in &events {
            *produced.entry(e.kind()).or_default() += 1;
            assert_eq!(topics::import_topic(e.kind()), Some(topic), "{} on {topic}", e.kind().as_str());
            assert_eq!(e.event.conversation(), e.conversation);
        }
        check_per_key_order(&events);
    }
    assert_eq!(&produced, plan.counts());

    // Every body element type appears in the sample.
    let types: std::collections::BTreeSet<&str> = collect(&plan, topics::IMPORT_C2C)
        .iter()
        .filter_map(|e| match &e.event {
            Event::ImportC2cMessage(m) => Some(m.body.iter().map(|b| b.type_name()).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(types.len(), 8, "{types:?}");
}

/// The ordering contract of `schemas/topics.md`, checked per key.
fn check_per_key_order(events: &[Envelope]) {
    let rank = |k: EventKind| match k {
        EventKind::ImportProfile | EventKind::ImportC2cMessage | EventKind::ImportGroup => 0,
        EventKind::ImportFriendship | EventKind::ImportC2cRead | EventKind::ImportGroupMember => 1,
        EventKind::ImportGroupMessage => 2,
        EventKind::ImportMemberUnread => 3,
        _ => 0,
    };
    let mut last: HashMap<&str, (u8, i64, u64)> = HashMap::new();
    for e in events {
        let key = e.conversation.as_str();
        let r = rank(e.kind());
        let (prev_rank, prev_time, prev_seq) = last.get(key).copied().unwrap_or((0, i64::MIN, 0));
        assert!(r >= prev_rank, "{key}: {} after a later stage", e.kind().as_str());
        match &e.event {
            Event::ImportC2cMessage(m) => {
                let seq = u64::from(m.msg_seq);
                assert_eq!(seq, prev_seq + 1, "{key}: msg_seq not consecutive");
                assert!(m.sent_at.as_millis() >= prev_time, "{key}: messages out of time order");
                last.insert(key, (r, m.sent_at.as_millis(), seq));
            }
            Event::ImportGroupMessage(m) => {
                let seq = if prev_rank == 2 { prev_seq } else { 0 };
                let prev_time = if prev_rank == 2 { prev_time } else { i64::MIN };
                assert_eq!(m.ordinal, seq + 1, "{key}: ordinal not consecutive");
                assert!(m.sent_at.as_millis() >= prev_time, "{key}: group messages out of time order");
                last.insert(key, (r, m.sent_at.as_millis(), m.ordinal));
            }
            _ => {
                last.insert(key, (r, prev_time, prev_seq));
            }
        }
    }
}

#[test]
fn every_kind_of_bad_line_is_caught_at_its_line_and_field() {
    let tmp = tempfile::tempdir().expect("tmp");
    let options = GenerateOptions { bad_lines: BadKind::ALL.len() * 2, ..small() };
    let generated = generate(tmp.path(), &options).expect("generate");
    assert_eq!(generated.bad.len(), options.bad_lines);
    let kinds: std::collections::BTreeSet<BadKind> = generated.bad.iter().map(|b| b.what).collect();
    assert_eq!(kinds.len(), BadKind::ALL.len(), "every bad kind was injected");

    let (export, validation) = run(tmp.path(), &all_errors());
    // Valid records are untouched by the injected lines.
    for kind in ExportKind::ALL {
        assert_eq!(validation.summary(kind).valid, generated.valid[&kind], "{kind}");
    }
    assert_eq!(validation.total_invalid(), generated.bad.len() as u64);
    let found: HashMap<(ExportKind, u64), &imbridge_importer::Issue> =
        validation.issues().map(|i| ((i.kind, i.line), i)).collect();
    for bad in &generated.bad {
        let issue = found
            .get(&(bad.kind, bad.line))
            .unwrap_or_else(|| panic!("{:?} at {}:{} not reported", bad.what, bad.kind, bad.line));
        assert_eq!(issue.field, bad.field, "{:?}: {issue}", bad.what);
        assert_eq!(issue.file, bad.kind.file_name());
        assert!(issue.to_string().starts_with(&format!("{}:{}: ", bad.kind.file_name(), bad.line)));
    }

    // The bad lines are skipped: the plan yields exactly the valid records.
    let plan = ImportPlan::new(export.clone(), Arc::clone(&validation), PlanOptions::default());
    let c2c = collect(&plan, topics::IMPORT_C2C);
    let messages = c2c.iter().filter(|e| e.kind() == EventKind::ImportC2cMessage).count() as u64;
    assert_eq!(messages, generated.valid[&ExportKind::C2cMessages]);

    let report = Report::new(&export, &validation, &plan, true);
    assert!(!report.clean && !report.may_import());
    assert!(Report { strict: false, ..report.clone() }.may_import());
    let text = report.to_text();
    assert!(text.contains("--strict: nothing would be imported"), "{text}");
    let json: Value = serde_json::from_str(&report.to_json()).expect("report json");
    assert_eq!(json["invalid"], generated.bad.len() as u64);
}

#[test]
fn errors_are_capped_per_kind_with_a_count_of_the_rest() {
    let tmp = tempfile::tempdir().expect("tmp");
    generate(tmp.path(), &GenerateOptions { bad_lines: BadKind::ALL.len() * 4, ..small() }).expect("generate");
    let (_, validation) = run(tmp.path(), &ValidateOptions { max_errors_per_kind: 2, now_ms: None });
    let c2c = validation.summary(ExportKind::C2cMessages);
    assert_eq!(c2c.errors.len(), 2);
    assert_eq!(c2c.invalid, c2c.errors.len() as u64 + c2c.more_errors);
    assert!(c2c.more_errors > 0);
    assert!(c2c.errors[0].line < c2c.errors[1].line, "errors are in file order");
}

#[test]
fn gzip_exports_read_the_same_as_plain_ones() {
    let plain = tempfile::tempdir().expect("tmp");
    let gz = tempfile::tempdir().expect("tmp");
    let options = GenerateOptions { bad_lines: 5, ..small() };
    generate(plain.path(), &options).expect("plain");
    let generated = generate(gz.path(), &GenerateOptions { gzip: true, ..options }).expect("gz");
    assert!(generated.files.values().all(|p| p.extension().is_some_and(|e| e == "gz")));
    let (pe, pv) = run(plain.path(), &all_errors());
    let (ge, gv) = run(gz.path(), &all_errors());
    for kind in ExportKind::ALL {
        let (p, g) = (pv.summary(kind), gv.summary(kind));
        assert_eq!((p.valid, p.invalid), (g.valid, g.invalid), "{kind}");
        let lines =
            |s: &imbridge_importer::KindSummary| s.errors.iter().map(|i| (i.line, i.field.clone())).collect::<Vec<_>>();
        assert_eq!(lines(p), lines(g), "{kind}");
    }
    assert!(gv.issues().all(|i| i.file.ends_with(".ndjson.gz")));
    let pp = ImportPlan::new(pe, pv, PlanOptions::default());
    let gp = ImportPlan::new(ge, gv, PlanOptions::default());
    for topic in topics::IMPORT_TOPICS {
        assert_eq!(collect(&pp, topic), collect(&gp, topic), "{topic}");
    }
}

#[test]
fn generation_is_deterministic_and_fast() {
    let (a, b) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let started = Instant::now();
    generate(a.path(), &GenerateOptions { bad_lines: 20, ..GenerateOptions::default() }).expect("a");
    let elapsed = started.elapsed();
    generate(b.path(), &GenerateOptions { bad_lines: 20, ..GenerateOptions::default() }).expect("b");
    for kind in ExportKind::ALL {
        let read = |d: &Path| fs::read(d.join(kind.file_name())).expect("file");
        assert_eq!(read(a.path()), read(b.path()), "{kind} differs between runs");
    }
    let c = tempfile::tempdir().expect("tmp");
    generate(c.path(), &GenerateOptions { seed: 2, ..GenerateOptions::default() }).expect("c");
    assert_ne!(
        fs::read(a.path().join("c2c_messages.ndjson")).ok(),
        fs::read(c.path().join("c2c_messages.ndjson")).ok()
    );
    // Generous for an unoptimized test build on a shared machine; a release build takes a small fraction.
    assert!(elapsed.as_secs_f64() < 5.0, "generating the default sample took {elapsed:?}");
}

fn write(dir: &Path, name: &str, lines: &[&str]) {
    fs::write(dir.join(name), lines.join("\n") + "\n").expect("write");
}

fn base_export(dir: &Path) {
    write(dir, "accounts.ndjson", &[r#"{"user_id":"ann"}"#, r#"{"user_id":"bob"}"#, r#"{"user_id":"cat"}"#]);
}

#[test]
fn msg_seq_follows_sent_at_then_file_order_per_conversation() {
    let tmp = tempfile::tempdir().expect("tmp");
    base_export(tmp.path());
    let body = r#"[{"type":"text","text":"x"}]"#;
    let lines: Vec<String> = [
        ("m1", "ann", "bob", "3000"),
        ("m2", "bob", "ann", "1000"),
        ("m3", "ann", "cat", "5000"),
        ("m4", "ann", "bob", "1000"),                     // same ms as m2, later in the file
        ("m5", "bob", "ann", "\"1970-01-01T00:00:02Z\""), // RFC 3339
        ("m6", "cat", "ann", "4000"),
    ]
    .iter()
    .map(|(id, f, t, at)| format!(r#"{{"id":"{id}","from":"{f}","to":"{t}","sent_at":{at},"body":{body}}}"#))
    .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    write(tmp.path(), "c2c_messages.ndjson", &refs);
    write(tmp.path(), "c2c_reads.ndjson", &[r#"{"user_id":"bob","peer_id":"ann","read_at":3000}"#]);
    let (export, validation) = run(tmp.path(), &ValidateOptions::default());
    assert!(validation.is_clean(), "{:?}", validation.issues().collect::<Vec<_>>());
    // A tiny memory budget forces several buckets: the result must not change.
    for max in [1_000_000, 1] {
        let plan =
            ImportPlan::new(export.clone(), Arc::clone(&validation), PlanOptions { max_messages_in_memory: max });
        let events = collect(&plan, topics::IMPORT_C2C);
        let mut seqs: BTreeMap<String, Vec<(String, u32)>> = BTreeMap::new();
        let mut read_after_messages = false;
        for e in &events {
            match &e.event {
                Event::ImportC2cMessage(m) => {
                    assert!(!read_after_messages || e.conversation.as_str() != "c2c:ann:bob");
                    seqs.entry(e.conversation.to_string()).or_default().push((m.legacy_id.clone(), m.msg_seq));
                    assert_eq!(e.id.as_str(), format!("import:c2c_message:{}", m.legacy_id));
                }
                Event::ImportC2cRead(_) => {
                    assert_eq!(e.conversation.as_str(), "c2c:ann:bob");
                    assert_eq!(seqs["c2c:ann:bob"].len(), 4, "read mark before its conversation's messages");
                    read_after_messages = true;
                }
                _ => panic!("unexpected {:?}", e.kind()),
            }
        }
        assert!(read_after_messages);
        let ab: Vec<(String, u32)> =
            [("m2", 1), ("m4", 2), ("m5", 3), ("m1", 4)].iter().map(|(i, s)| (i.to_string(), *s)).collect();
        assert_eq!(seqs["c2c:ann:bob"], ab, "budget {max}");
        let ac: Vec<(String, u32)> = [("m6", 1), ("m3", 2)].iter().map(|(i, s)| (i.to_string(), *s)).collect();
        assert_eq!(seqs["c2c:ann:cat"], ac, "budget {max}");
    }
}

#[test]
fn group_order_ordinals_unread_and_owner_rules() {
    let tmp = tempfile::tempdir().expect("tmp");
    base_export(tmp.path());
    write(
        tmp.path(),
        "groups.ndjson",
        &[
            r#"{"group_id":"g1","type":"Public","name":"One","owner":"ann","created_at":1000}"#,
            r#"{"group_id":"g2","type":"Private","name":"Two","owner":"bob","created_at":1000}"#,
            r#"{"group_id":"g3","type":"ChatRoom","name":"Three","created_at":1000}"#,
        ],
    );
    write(
        tmp.path(),
        "group_members.ndjson",
        &[
            r#"{"group_id":"g1","user_id":"ann","role":"owner","unread":0}"#,
            r#"{"group_id":"g1","user_id":"bob","unread":2,"joined_at":2000}"#,
            r#"{"group_id":"g2","user_id":"cat"}"#,
            r#"{"group_id":"g3","user_id":"cat","unread":5}"#,
            r#"{"group_id":"g1","user_id":"cat","role":"owner"}"#,
        ],
    );
    let body = r#"[{"type":"text","text":"x"}]"#;
    let gm = |id: &str, g: &str, from: &str, at: u64| {
        format!(r#"{{"id":"{id}","group_id":"{g}","from":"{from}","sent_at":{at},"body":{body}}}"#)
    };
    let lines = [
        gm("a", "g1", "bob", 9000),
        gm("b", "g1", "ann", 5000),
        gm("c", "g2", "cat", 6000),
        gm("d", "g1", "cat", 7000),
        gm("e", "g1", "ann", 1500),
        gm("f", "g3", "cat", 3000),
        gm("g", "g1", "ann", 5000),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    write(tmp.path(), "group_messages.ndjson", &refs);
    let (export, validation) = run(tmp.path(), &ValidateOptions::default());
    let issues: Vec<String> = validation.issues().map(ToString::to_string).collect();
    assert_eq!(
        issues,
        [
            // g2's owner bob has no member line: the group is refused, and its member and message with it.
            "groups.ndjson:2: owner: owner \"bob\" has no line in group_members.ndjson",
            "group_members.ndjson:3: group_id: group \"g2\" was rejected (groups.ndjson:2)",
            "group_members.ndjson:5: role: \"owner\", but the group has owner \"ann\"",
            "group_messages.ndjson:3: group_id: group \"g2\" was rejected (groups.ndjson:2)",
            "group_messages.ndjson:4: from: \"cat\" is not a member of \"g1\"",
            // Same second as the group's creation (1000 ms → second 1): IM refuses it.
            "group_messages.ndjson:5: sent_at: 1970-01-01T00:00:01.5Z is not after the group was created (1970-01-01T00:00:01Z)",
        ],
    );
    let plan = ImportPlan::new(export, Arc::clone(&validation), PlanOptions::default());
    let events = collect(&plan, topics::IMPORT_GROUPS);
    let summary: Vec<String> = events
        .iter()
        .map(|e| match &e.event {
            Event::ImportGroup(g) => format!("group {}", g.group_id),
            Event::ImportGroupMember(m) => format!("member {} {} {:?}", m.group_id, m.user_id, m.role),
            Event::ImportGroupMessage(m) => format!("msg {} {} #{}", m.group_id, m.legacy_id, m.ordinal),
            Event::ImportMemberUnread(u) => format!("unread {} {} {}", u.group_id, u.user_id, u.unread),
            _ => format!("{:?}", e.kind()),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "group g1",
            "group g3",
            "member g1 ann Owner",
            "member g1 bob Member",
            "member g3 cat Member",
            "msg g1 b #1",
            "msg g1 g #2",
            "msg g1 a #3",
            // Right after g1's own messages. ann's unread 0 needs no call; g3 is a ChatRoom, which keeps no
            // unread counts.
            "unread g1 bob 2",
            "msg g3 f #1",
        ]
    );
    assert_eq!(plan.counts()[&EventKind::ImportMemberUnread], 1);
    assert_eq!(plan.counts()[&EventKind::ImportGroupMessage], 4);
}

#[test]
fn reference_and_duplicate_rules() {
    let tmp = tempfile::tempdir().expect("tmp");
    base_export(tmp.path());
    fs::write(
        tmp.path().join("accounts.ndjson"),
        "{\"user_id\":\"ann\"}\n{\"user_id\":\"bob\"}\n{\"user_id\":\"cat\"}\n{\"user_id\":\"ann\"}\n{\"user_id\":\"\"}\n",
    )
    .expect("write");
    write(
        tmp.path(),
        "profiles.ndjson",
        &[
            r#"{"user_id":"ann","gender":"robot"}"#,
            r#"{"user_id":"bob","birthday":20241301}"#,
            r#"{"user_id":"cat","custom":{"bad-name":"x"},"unknown_field":1}"#,
            r#"{"user_id":"zed"}"#,
        ],
    );
    write(
        tmp.path(),
        "friends.ndjson",
        &[
            r#"{"user_id":"ann","friend_id":"bob","add_source":"Web"}"#,
            r#"{"user_id":"ann","friend_id":"bob","add_source":"Web"}"#,
            r#"{"user_id":"bob","friend_id":"ann","add_source":"Web_2"}"#,
            r#"{"user_id":"bob","friend_id":"bob","add_source":"Web"}"#,
        ],
    );
    write(
        tmp.path(),
        "c2c_reads.ndjson",
        &[
            r#"{"user_id":"ann","peer_id":"bob","read_at":"2024-01-01T00:00:00+08:00"}"#,
            r#"{"user_id":"ann","peer_id":"bob","read_at":1}"#,
        ],
    );
    write(tmp.path(), "groups.ndjson", &[r#"{"group_id":"@TGS#abc","type":"Public","name":"x","created_at":1}"#]);
    let (_, validation) = run(tmp.path(), &ValidateOptions::default());
    let issues: Vec<(String, u64, String)> =
        validation.issues().map(|i| (i.kind.to_string(), i.line, i.field.clone())).collect();
    let expect = |k: &str, l: u64, f: &str| (k.to_owned(), l, f.to_owned());
    assert_eq!(
        issues,
        [
            expect("accounts", 4, "user_id"),
            expect("accounts", 5, "user_id"),
            expect("profiles", 1, "gender"),
            expect("profiles", 2, "birthday"),
            expect("profiles", 3, "custom.bad-name"),
            expect("profiles", 4, "user_id"),
            expect("friends", 2, "friend_id"),
            expect("friends", 3, "add_source"),
            expect("friends", 4, "friend_id"),
            expect("groups", 1, "group_id"),
            expect("c2c_reads", 2, "peer_id"),
        ]
    );
    assert_eq!(validation.summary(ExportKind::Accounts).valid, 3);
    assert_eq!(validation.summary(ExportKind::C2cMessages).file, None);
}

#[test]
fn both_plain_and_gz_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    base_export(tmp.path());
    fs::write(tmp.path().join("accounts.ndjson.gz"), b"").expect("write");
    assert!(matches!(ExportDir::open(tmp.path()), Err(imbridge_importer::Error::AmbiguousFile { .. })));
}

/// The published export schemas agree with the reader: generated valid lines pass them, and the injected
/// shape errors (not the reference errors, which a schema cannot see) fail them.
#[test]
fn export_schemas_agree_with_the_reader() {
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let load = |p: &Path| -> Value { serde_json::from_str(&fs::read_to_string(p).expect("schema")).expect("json") };
    let mut registry = jsonschema::Registry::new();
    for name in ["common.schema.json", "body.schema.json"] {
        registry =
            registry.add(format!("https://imbridge.invalid/schemas/{name}"), load(&schemas.join(name))).expect("add");
    }
    let registry = registry.prepare().expect("registry");
    let tmp = tempfile::tempdir().expect("tmp");
    let generated = generate(tmp.path(), &GenerateOptions { bad_lines: BadKind::ALL.len(), ..small() }).expect("gen");
    let bad: HashMap<(ExportKind, u64), BadKind> = generated.bad.iter().map(|b| ((b.kind, b.line), b.what)).collect();
    for kind in ExportKind::ALL {
        let doc = load(&schemas.join(format!("export/{}.schema.json", kind.as_str())));
        assert_eq!(doc["$id"], format!("https://imbridge.invalid/schemas/export/{}.schema.json", kind.as_str()));
        jsonschema::meta::validate(&doc).unwrap_or_else(|e| panic!("{kind}: not a valid schema: {e}"));
        let validator = jsonschema::options().with_registry(&registry).build(&doc).expect("compile");
        let text = fs::read(tmp.path().join(kind.file_name())).expect("file");
        for (i, line) in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            let number = i as u64 + 1;
            let value: Option<Value> = std::str::from_utf8(line).ok().and_then(|s| serde_json::from_str(s).ok());
            match bad.get(&(kind, number)) {
                None => {
                    let value = value.expect("valid line parses");
                    let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
                    assert!(errors.is_empty(), "{kind}:{number}: {errors:?}");
                }
                Some(
                    BadKind::MissingField
                    | BadKind::UnknownElementType
                    | BadKind::BadTime
                    | BadKind::UnsupportedGroupType
                    | BadKind::NotAnObject,
                ) => {
                    assert!(!validator.is_valid(&value.expect("json")), "{kind}:{number}: schema accepts a bad line");
                }
                Some(_) => {}
            }
        }
    }
}

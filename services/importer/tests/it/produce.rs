//! The decorated import streams (what `imbridge import` produces), without a broker: per-key order with the
//! done marker last, the SendTime and group-creation headers, friendships and members grouped by key, and the
//! survey's call counts.

use std::collections::{BTreeMap, HashMap, HashSet};

use imbridge_core::{Event, EventKind};
use imbridge_im::Api;
use imbridge_importer::apply::{ImportTopic, headers};
use imbridge_importer::produce::{Produced, topic_stream};
use imbridge_importer::survey::survey;
use imbridge_importer::{GenerateOptions, ValidateOptions, check_export, generate};

fn header<'a>(p: &'a Produced, name: &str) -> Option<&'a str> {
    p.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
}

#[test]
fn streams_carry_markers_headers_and_grouped_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = GenerateOptions {
        users: 40,
        friendships: 120,
        c2c_messages: 800,
        groups: 8,
        group_messages: 600,
        bad_lines: 13,
        ..GenerateOptions::default()
    };
    generate(dir.path(), &options).expect("generate");
    let (plan, _) = check_export(dir.path(), &ValidateOptions::default(), false).expect("check");
    let s = survey(&plan).expect("survey");

    // Accounts: one call per 100; one importmsg per message; one import_group per group.
    let counts = plan.counts();
    let n = |k: EventKind| counts.get(&k).copied().unwrap_or(0);
    assert_eq!(s.calls.get(Api::MultiAccountImport), n(EventKind::ImportAccount).div_ceil(100));
    assert_eq!(s.calls.get(Api::ImportMsg), n(EventKind::ImportC2cMessage));
    assert_eq!(s.calls.get(Api::AdminSetMsgRead), n(EventKind::ImportC2cRead));
    assert_eq!(s.calls.get(Api::ImportGroup), n(EventKind::ImportGroup));
    assert_eq!(s.groups.len() as u64, n(EventKind::ImportGroup));

    for which in ImportTopic::ALL {
        let markers = if which == ImportTopic::C2c { &s.c2c } else { &s.groups };
        let items: Vec<Produced> = topic_stream(&plan, which, markers, "run-1").map(|r| r.expect("record")).collect();
        let mut done: HashSet<String> = HashSet::new();
        let mut per_key: HashMap<String, u64> = HashMap::new();
        let mut last_send: HashMap<String, i64> = HashMap::new();
        let mut created: HashMap<String, i64> = HashMap::new();
        // Keys whose run of friendships / members has ended (a later one would mean the key was split).
        let mut closed: HashSet<String> = HashSet::new();
        let mut current: Option<(EventKind, String)> = None;
        for p in &items {
            assert_eq!(header(p, headers::RUN_ID), Some("run-1"));
            assert!(p.envelope.recorded_at.is_some());
            let key = p.envelope.conversation.as_str().to_owned();
            assert!(!done.contains(&key), "{key}: a record after its done marker");
            let kind = p.envelope.kind();
            if matches!(kind, EventKind::ImportFriendship | EventKind::ImportGroupMember)
                && current.as_ref() != Some(&(kind, key.clone()))
            {
                assert!(closed.insert(format!("{kind:?}{key}")), "{kind:?} of {key} are not contiguous");
                current = Some((kind, key.clone()));
            }
            match &p.envelope.event {
                Event::ImportConversationDone(d) => {
                    assert_eq!(d.records, per_key.get(&key).copied().unwrap_or(0), "{key}: marker count");
                    done.insert(key.clone());
                }
                Event::ImportGroup(g) => {
                    created.insert(key.clone(), g.created_at.as_secs());
                }
                Event::ImportGroupMember(_) => {
                    let c: i64 = header(p, headers::GROUP_CREATED).expect("created header").parse().expect("int");
                    assert_eq!(Some(&c), created.get(&key));
                }
                Event::ImportGroupMessage(m) => {
                    let t: i64 = header(p, headers::SEND_TIME).expect("send time header").parse().expect("int");
                    assert!(t >= m.sent_at.as_secs(), "SendTime before the legacy second");
                    let floor = last_send.get(&key).copied().unwrap_or(created[&key]);
                    assert!(t > floor, "{key}: SendTime {t} not after {floor}");
                    last_send.insert(key.clone(), t);
                }
                _ => {}
            }
            if !matches!(p.envelope.event, Event::ImportConversationDone(_)) {
                *per_key.entry(key).or_default() += 1;
            }
        }
        let expected_markers: BTreeMap<String, u64> = match which {
            ImportTopic::C2c | ImportTopic::Groups => markers.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            _ => BTreeMap::new(),
        };
        assert_eq!(done.len(), expected_markers.len(), "{which:?}: one marker per key with history");
    }
}

//! The comparison of one conversation's messages, free of I/O.
//!
//! Each message gets a cross-system identity both sides can compute without a shared ledger:
//!
//! | written first on | on legacy | on IM |
//! | --- | --- | --- |
//! | legacy (id `X`) | `X` | sender + `MsgRandom` = `EventId::legacy(X).stable_u32()`, origin marker in `CloudCustomData` |
//! | IM | `im:c2c:<from>:<MsgKey>` / `im:gmsg:<group>:<MsgSeq>` | that `MsgKey` / `MsgSeq`, no marker |
//!
//! A message present on one side only is *missing* on the other; a matched pair whose sender, body or custom data
//! differ is *different*; and when the matched messages appear in a different relative order on the two sides,
//! the conversation is out of *order*. Times are not compared: IM stores seconds, and a copy is written when it
//! arrives, not when the original was.

use std::collections::{HashMap, HashSet};

use imbridge_core::{Element, EventId};
use serde::Serialize;

/// A message reduced to what the comparison needs, from either side.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    /// The cross-system identity (see the module table).
    pub identity: String,
    /// The side's own id: the legacy id, or `MsgKey` / `MsgSeq` on IM.
    pub native_id: String,
    /// Who wrote it first: `true` when it originated on legacy.
    pub legacy_origin: bool,
    pub from: String,
    pub body: Vec<Element>,
    /// The original custom data (the marker unwrapped on IM).
    pub custom_data: Option<String>,
}

/// The identity of a legacy-origin message with legacy id `legacy_id` sent by `from`.
pub fn legacy_identity(from: &str, legacy_id: &str) -> String {
    format!("legacy:{from}:{}", EventId::legacy(legacy_id).stable_u32())
}

/// The identity of an IM-origin message seen on IM (or of its `im:` copy on legacy): its legacy-side event id.
pub fn im_identity_of_legacy_id(id: &str) -> Option<&str> {
    (id.starts_with("im:c2c:") || id.starts_with("im:gmsg:")).then_some(id)
}

/// Reads an IM message's `CloudCustomData`: `Some(original custom data)` when it carries imbridge's legacy
/// marker (the message was copied from legacy), `None` when it is an IM user's own.
pub fn decode_marker(ccd: Option<&str>) -> Option<Option<String>> {
    imbridge_im::origin::decode_cloud_custom_data(ccd?)
}

/// What was found in one conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MessageDiff {
    /// Messages both sides hold.
    pub identical: usize,
    /// Indexes into the legacy list of messages IM lacks.
    #[serde(skip)]
    pub missing_in_im: Vec<usize>,
    /// Indexes into the IM list of messages legacy lacks.
    #[serde(skip)]
    pub missing_in_legacy: Vec<usize>,
    /// (legacy index, IM index) of matched pairs whose content differs.
    #[serde(skip)]
    pub different: Vec<(usize, usize)>,
    /// The matched messages are in a different relative order on the two sides.
    pub out_of_order: bool,
}

/// Compares the two sides' messages of one conversation, each in its own side's order.
pub fn compare(legacy: &[Msg], im: &[Msg]) -> MessageDiff {
    let mut diff = MessageDiff::default();
    let im_by_id: HashMap<&str, usize> = im.iter().enumerate().map(|(i, m)| (m.identity.as_str(), i)).collect();
    let legacy_ids: HashSet<&str> = legacy.iter().map(|m| m.identity.as_str()).collect();
    let mut matched_im_order = Vec::new();
    for (li, l) in legacy.iter().enumerate() {
        match im_by_id.get(l.identity.as_str()) {
            None => diff.missing_in_im.push(li),
            Some(&ii) => {
                let r = &im[ii];
                matched_im_order.push(ii);
                if l.from == r.from && l.body == r.body && l.custom_data == r.custom_data {
                    diff.identical += 1;
                } else {
                    diff.different.push((li, ii));
                }
            }
        }
    }
    diff.missing_in_legacy =
        im.iter().enumerate().filter(|(_, m)| !legacy_ids.contains(m.identity.as_str())).map(|(i, _)| i).collect();
    // In legacy order, the matched messages' IM positions must grow.
    diff.out_of_order = matched_im_order.windows(2).any(|w| w[0] > w[1]);
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(identity: &str, text: &str) -> Msg {
        Msg {
            identity: identity.into(),
            native_id: identity.into(),
            legacy_origin: true,
            from: "ann".into(),
            body: vec![Element::Text { text: text.into() }],
            custom_data: None,
        }
    }

    #[test]
    fn finds_each_kind_of_difference() {
        let legacy = [m("a", "1"), m("b", "2"), m("c", "3"), m("d", "4")];
        let im = [m("a", "1"), m("c", "3"), m("b", "changed"), m("e", "5")];
        let d = compare(&legacy, &im);
        assert_eq!(d.identical, 2);
        assert_eq!(d.missing_in_im, [3]);
        assert_eq!(d.missing_in_legacy, [3]);
        assert_eq!(d.different, [(1, 2)]);
        assert!(d.out_of_order);
        let same = compare(&legacy, &legacy);
        assert_eq!((same.identical, same.out_of_order), (4, false));
        assert!(same.missing_in_im.is_empty() && same.missing_in_legacy.is_empty() && same.different.is_empty());
    }

    #[test]
    fn marker_and_identities() {
        assert_eq!(decode_marker(Some(r#"{"imbridge_origin":"legacy"}"#)), Some(None));
        assert_eq!(decode_marker(Some(r#"{"imbridge_origin":"legacy","custom_data":"x"}"#)), Some(Some("x".into())));
        assert_eq!(decode_marker(Some(r#"{"mine":1}"#)), None);
        assert_eq!(decode_marker(Some("plain")), None);
        assert_eq!(decode_marker(None), None);
        // The same value to-im sends as MsgRandom for that legacy event.
        let r = EventId::legacy("m-1").stable_u32();
        assert_eq!(legacy_identity("ann", "m-1"), format!("legacy:ann:{r}"));
        assert_eq!(im_identity_of_legacy_id("im:gmsg:g:3"), Some("im:gmsg:g:3"));
        assert_eq!(im_identity_of_legacy_id("m-1"), None);
    }
}

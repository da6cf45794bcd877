//! Message body elements in imbridge's canonical shape.
//!
//! This is the export format's shape (`{"type":"text","text":…}`), shared by the legacy contract and the
//! Kafka events. The IM crate maps it to and from IM's `TIM*Elem` objects; nothing else needs to know IM's.

use serde::{Deserialize, Serialize};

/// One element of a message body. A message is a non-empty `Vec<Element>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Element {
    Text {
        text: String,
    },
    Image {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        height: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    File {
        url: String,
        name: String,
        size: u64,
    },
    Sound {
        url: String,
        seconds: u32,
        size: u64,
    },
    Video {
        url: String,
        seconds: u32,
        size: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thumb_url: Option<String>,
    },
    Location {
        latitude: f64,
        longitude: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        desc: Option<String>,
    },
    Face {
        index: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
    },
    Custom {
        data: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        desc: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ext: Option<String>,
    },
}

impl Element {
    /// The element's `type` tag as written on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Element::Text { .. } => "text",
            Element::Image { .. } => "image",
            Element::File { .. } => "file",
            Element::Sound { .. } => "sound",
            Element::Video { .. } => "video",
            Element::Location { .. } => "location",
            Element::Face { .. } => "face",
            Element::Custom { .. } => "custom",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_by_type() {
        let e: Element = serde_json::from_str(r#"{"type":"image","url":"https://x/y.png","width":10}"#).expect("image");
        assert_eq!(e, Element::Image { url: "https://x/y.png".into(), width: Some(10), height: None, size: None });
        assert!(serde_json::from_str::<Element>(r#"{"type":"hologram"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Element::Text { text: "hi".into() }).expect("ser"),
            r#"{"type":"text","text":"hi"}"#
        );
    }
}

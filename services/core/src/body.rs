//! Message body elements in imbridge's canonical shape.
//!
//! This is the export format's shape (`{"type":"text","text":…}`), shared by the legacy contract and the
//! Kafka events. The IM crate maps it to and from IM's `TIM*Elem` objects; nothing else needs to know IM's.

use serde::{Deserialize, Serialize};

/// Declares the body element twice from one list of variants: [`Element`], the event model's, which refuses
/// unknown fields, and [`ExportElement`], the export format's, which ignores them (the export format promises
/// that) — with lossless conversions both ways. serde decides `deny_unknown_fields` per type, not per call,
/// hence two types; one list keeps their shapes from ever drifting apart.
macro_rules! elements {
    ($($variant:ident { $($(#[$field_meta:meta])* $field:ident: $ty:ty),* $(,)? }),* $(,)?) => {
        /// One element of a message body. A message is a non-empty `Vec<Element>`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
        pub enum Element {
            $($variant { $($(#[$field_meta])* $field: $ty),* }),*
        }

        /// A body element as a legacy export writes it: the shape of [`Element`], unknown fields ignored.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum ExportElement {
            $($variant { $($(#[$field_meta])* $field: $ty),* }),*
        }

        impl From<ExportElement> for Element {
            fn from(e: ExportElement) -> Self {
                match e {
                    $(ExportElement::$variant { $($field),* } => Element::$variant { $($field),* }),*
                }
            }
        }

        impl From<Element> for ExportElement {
            fn from(e: Element) -> Self {
                match e {
                    $(Element::$variant { $($field),* } => ExportElement::$variant { $($field),* }),*
                }
            }
        }
    };
}

elements! {
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

    #[test]
    fn export_elements_ignore_unknown_fields_and_convert_losslessly() {
        let line = r#"{"type":"video","url":"u","seconds":3,"size":9,"thumb_url":"t","codec":"h264"}"#;
        assert!(serde_json::from_str::<Element>(line).is_err(), "the event model refuses unknown fields");
        let e: ExportElement = serde_json::from_str(line).expect("the export ignores them");
        let strict = Element::from(e.clone());
        assert_eq!(strict, Element::Video { url: "u".into(), seconds: 3, size: 9, thumb_url: Some("t".into()) });
        assert_eq!(ExportElement::from(strict.clone()), e);
        assert_eq!(serde_json::to_value(&e).expect("ser"), serde_json::to_value(&strict).expect("ser"));
    }
}

//! IM's message body (`MsgBody`: an array of `{"MsgType", "MsgContent"}` elements, reference §3) and its
//! mapping to and from imbridge's canonical [`Element`].
//!
//! The mapping is lossless for every canonical field: `from_im_body(&to_im_body(x)) == x`. IM-only details
//! the canonical shape has no room for (the three image sizes, APNs sound of a custom element, thumbnail
//! dimensions) are filled with neutral values on the way in and dropped on the way out. Media UUIDs are
//! derived from the URL, so the same message imported twice is byte-identical (IM dedups imports on
//! seq/random/time, but identical bodies keep `sendmsg`'s CRC-based dedup working too).

use imbridge_core::Element;
use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::ImError;

/// `Download_Flag` for media that lives at a URL outside Tencent's storage; the only value IM documents.
pub const DOWNLOAD_FLAG_URL: u32 = 2;

/// One element of an IM message body.
#[derive(Debug, Clone, PartialEq)]
pub enum MsgElement {
    Text(TextElem),
    Location(LocationElem),
    Face(FaceElem),
    Custom(CustomElem),
    Sound(SoundElem),
    Image(ImageElem),
    File(FileElem),
    Video(VideoFileElem),
    /// Any other `MsgType` (e.g. `TIMRelayElem`), kept verbatim so it can be forwarded or reported.
    Unknown {
        msg_type: String,
        content: serde_json::Value,
    },
}

impl MsgElement {
    /// The element's `MsgType`.
    pub fn msg_type(&self) -> &str {
        match self {
            MsgElement::Text(_) => "TIMTextElem",
            MsgElement::Location(_) => "TIMLocationElem",
            MsgElement::Face(_) => "TIMFaceElem",
            MsgElement::Custom(_) => "TIMCustomElem",
            MsgElement::Sound(_) => "TIMSoundElem",
            MsgElement::Image(_) => "TIMImageElem",
            MsgElement::File(_) => "TIMFileElem",
            MsgElement::Video(_) => "TIMVideoFileElem",
            MsgElement::Unknown { msg_type, .. } => msg_type,
        }
    }

    /// A text element.
    pub fn text(text: impl Into<String>) -> Self {
        MsgElement::Text(TextElem { text: text.into() })
    }
}

impl Serialize for MsgElement {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("MsgElement", 2)?;
        st.serialize_field("MsgType", self.msg_type())?;
        match self {
            MsgElement::Text(c) => st.serialize_field("MsgContent", c)?,
            MsgElement::Location(c) => st.serialize_field("MsgContent", c)?,
            MsgElement::Face(c) => st.serialize_field("MsgContent", c)?,
            MsgElement::Custom(c) => st.serialize_field("MsgContent", c)?,
            MsgElement::Sound(c) => st.serialize_field("MsgContent", c)?,
            MsgElement::Image(c) => st.serialize_field("MsgContent", c)?,
            MsgElement::File(c) => st.serialize_field("MsgContent", c)?,
            MsgElement::Video(c) => st.serialize_field("MsgContent", c)?,
            MsgElement::Unknown { content, .. } => st.serialize_field("MsgContent", content)?,
        }
        st.end()
    }
}

impl<'de> Deserialize<'de> for MsgElement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "MsgType")]
            msg_type: String,
            #[serde(rename = "MsgContent", default)]
            content: serde_json::Value,
        }
        let raw = Raw::deserialize(d)?;
        fn parse<T: serde::de::DeserializeOwned, E: serde::de::Error>(t: &str, v: serde_json::Value) -> Result<T, E> {
            serde_json::from_value(v).map_err(|e| E::custom(format!("{t}: {e}")))
        }
        let t = raw.msg_type.as_str();
        Ok(match t {
            "TIMTextElem" => MsgElement::Text(parse(t, raw.content)?),
            "TIMLocationElem" => MsgElement::Location(parse(t, raw.content)?),
            "TIMFaceElem" => MsgElement::Face(parse(t, raw.content)?),
            "TIMCustomElem" => MsgElement::Custom(parse(t, raw.content)?),
            "TIMSoundElem" => MsgElement::Sound(parse(t, raw.content)?),
            "TIMImageElem" => MsgElement::Image(parse(t, raw.content)?),
            "TIMFileElem" => MsgElement::File(parse(t, raw.content)?),
            "TIMVideoFileElem" => MsgElement::Video(parse(t, raw.content)?),
            "" => return Err(D::Error::custom("MsgType is empty")),
            _ => MsgElement::Unknown { msg_type: raw.msg_type, content: raw.content },
        })
    }
}

/// `TIMTextElem`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextElem {
    #[serde(rename = "Text")]
    pub text: String,
}

/// `TIMLocationElem`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationElem {
    #[serde(rename = "Desc", default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    #[serde(rename = "Latitude")]
    pub latitude: f64,
    #[serde(rename = "Longitude")]
    pub longitude: f64,
}

/// `TIMFaceElem`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceElem {
    #[serde(rename = "Index")]
    pub index: i64,
    #[serde(rename = "Data", default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// `TIMCustomElem`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomElem {
    #[serde(rename = "Data", default)]
    pub data: String,
    #[serde(rename = "Desc", default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    #[serde(rename = "Ext", default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<String>,
    #[serde(rename = "Sound", default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
}

/// `TIMSoundElem`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoundElem {
    #[serde(rename = "Url", default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(rename = "UUID", default)]
    pub uuid: String,
    #[serde(rename = "Size", default)]
    pub size: u64,
    #[serde(rename = "Second", default)]
    pub second: u32,
    #[serde(rename = "Download_Flag", default, skip_serializing_if = "Option::is_none")]
    pub download_flag: Option<u32>,
}

/// `TIMImageElem`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageElem {
    #[serde(rename = "UUID", default)]
    pub uuid: String,
    /// JPG=1, GIF=2, PNG=3, BMP=4, other=255.
    #[serde(rename = "ImageFormat", default)]
    pub image_format: u32,
    #[serde(rename = "ImageInfoArray", default)]
    pub image_info_array: Vec<ImageInfo>,
}

/// One size of an image: `Type` 1 = original, 2 = large, 3 = thumbnail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    #[serde(rename = "Type")]
    pub kind: u32,
    #[serde(rename = "Size", default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(rename = "Width", default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(rename = "Height", default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Upper-case `URL` here, unlike every other element's `Url`.
    #[serde(rename = "URL", default)]
    pub url: String,
}

/// `TIMFileElem`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileElem {
    #[serde(rename = "Url", default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(rename = "UUID", default)]
    pub uuid: String,
    #[serde(rename = "FileSize", default)]
    pub file_size: u64,
    #[serde(rename = "FileName", default)]
    pub file_name: String,
    #[serde(rename = "Download_Flag", default, skip_serializing_if = "Option::is_none")]
    pub download_flag: Option<u32>,
}

/// `TIMVideoFileElem`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoFileElem {
    #[serde(rename = "VideoUrl", default, skip_serializing_if = "Option::is_none")]
    pub video_url: Option<String>,
    #[serde(rename = "VideoUUID", default)]
    pub video_uuid: String,
    #[serde(rename = "VideoSize", default)]
    pub video_size: u64,
    #[serde(rename = "VideoSecond", default)]
    pub video_second: u32,
    #[serde(rename = "VideoFormat", default)]
    pub video_format: String,
    #[serde(rename = "VideoDownloadFlag", default, skip_serializing_if = "Option::is_none")]
    pub video_download_flag: Option<u32>,
    #[serde(rename = "ThumbUrl", default, skip_serializing_if = "Option::is_none")]
    pub thumb_url: Option<String>,
    #[serde(rename = "ThumbUUID", default, skip_serializing_if = "Option::is_none")]
    pub thumb_uuid: Option<String>,
    #[serde(rename = "ThumbSize", default, skip_serializing_if = "Option::is_none")]
    pub thumb_size: Option<u64>,
    #[serde(rename = "ThumbWidth", default, skip_serializing_if = "Option::is_none")]
    pub thumb_width: Option<u32>,
    #[serde(rename = "ThumbHeight", default, skip_serializing_if = "Option::is_none")]
    pub thumb_height: Option<u32>,
    #[serde(rename = "ThumbFormat", default, skip_serializing_if = "Option::is_none")]
    pub thumb_format: Option<String>,
    #[serde(rename = "ThumbDownloadFlag", default, skip_serializing_if = "Option::is_none")]
    pub thumb_download_flag: Option<u32>,
}

/// A stable media UUID for a URL: the first 128 bits of its SHA-256, in hex. IM only needs it unique per
/// media object; deriving it keeps replays identical.
pub fn uuid_for_url(url: &str) -> String {
    let d = Sha256::digest(url.as_bytes());
    hex::encode(&d[..16])
}

/// The lower-case file extension of a URL's path, ignoring query and fragment.
fn extension(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.rsplit('/').next().unwrap_or(path);
    let (_, ext) = last.rsplit_once('.')?;
    (!ext.is_empty() && ext.len() <= 5 && ext.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| ext.to_ascii_lowercase())
}

/// IM's `ImageFormat` code for an image URL.
pub fn image_format_for_url(url: &str) -> u32 {
    match extension(url).as_deref() {
        Some("jpg" | "jpeg") => 1,
        Some("gif") => 2,
        Some("png") => 3,
        Some("bmp") => 4,
        _ => 255,
    }
}

/// Canonical elements → IM's `MsgBody`.
pub fn to_im_body(elements: &[Element]) -> Vec<MsgElement> {
    elements.iter().map(to_im_element).collect()
}

fn to_im_element(e: &Element) -> MsgElement {
    match e {
        Element::Text { text } => MsgElement::text(text.clone()),
        Element::Image { url, width, height, size } => {
            // New-app clients render the thumbnail (Type 3) in the chat and open the large one (Type 2); with
            // only the original they would show nothing, so all three point at the one URL we have.
            let info = |kind| ImageInfo { kind, size: *size, width: *width, height: *height, url: url.clone() };
            MsgElement::Image(ImageElem {
                uuid: uuid_for_url(url),
                image_format: image_format_for_url(url),
                image_info_array: vec![info(1), info(2), info(3)],
            })
        }
        Element::File { url, name, size } => MsgElement::File(FileElem {
            url: Some(url.clone()),
            uuid: uuid_for_url(url),
            file_size: *size,
            file_name: name.clone(),
            download_flag: Some(DOWNLOAD_FLAG_URL),
        }),
        Element::Sound { url, seconds, size } => MsgElement::Sound(SoundElem {
            url: Some(url.clone()),
            uuid: uuid_for_url(url),
            size: *size,
            second: *seconds,
            download_flag: Some(DOWNLOAD_FLAG_URL),
        }),
        Element::Video { url, seconds, size, thumb_url } => MsgElement::Video(VideoFileElem {
            video_url: Some(url.clone()),
            video_uuid: uuid_for_url(url),
            video_size: *size,
            video_second: *seconds,
            video_format: extension(url).unwrap_or_else(|| "mp4".into()),
            video_download_flag: Some(DOWNLOAD_FLAG_URL),
            thumb_uuid: thumb_url.as_deref().map(uuid_for_url),
            // The canonical shape does not carry thumbnail dimensions; 0 means "unknown" to IM clients.
            thumb_size: thumb_url.as_ref().map(|_| 0),
            thumb_width: thumb_url.as_ref().map(|_| 0),
            thumb_height: thumb_url.as_ref().map(|_| 0),
            thumb_format: thumb_url
                .as_deref()
                .map(|t| extension(t).map(|x| x.to_ascii_uppercase()).unwrap_or_else(|| "JPG".into())),
            thumb_download_flag: thumb_url.as_ref().map(|_| DOWNLOAD_FLAG_URL),
            thumb_url: thumb_url.clone(),
        }),
        Element::Location { latitude, longitude, desc } => {
            MsgElement::Location(LocationElem { desc: desc.clone(), latitude: *latitude, longitude: *longitude })
        }
        Element::Face { index, data } => MsgElement::Face(FaceElem { index: *index, data: data.clone() }),
        Element::Custom { data, desc, ext } => {
            MsgElement::Custom(CustomElem { data: data.clone(), desc: desc.clone(), ext: ext.clone(), sound: None })
        }
    }
}

/// IM's `MsgBody` → canonical elements. Fails on element types the canonical shape cannot hold (e.g.
/// `TIMRelayElem`) and on media elements without a URL (client uploads that only carry a UUID).
pub fn from_im_body(body: &[MsgElement]) -> Result<Vec<Element>, ImError> {
    body.iter().map(from_im_element).collect()
}

fn required_url(what: &str, url: &Option<String>) -> Result<String, ImError> {
    match url {
        Some(u) if !u.is_empty() => Ok(u.clone()),
        _ => Err(ImError::Body(format!("{what} has no Url"))),
    }
}

fn from_im_element(m: &MsgElement) -> Result<Element, ImError> {
    Ok(match m {
        MsgElement::Text(t) => Element::Text { text: t.text.clone() },
        MsgElement::Image(i) => {
            // Prefer the original; any size will do if the sender only listed others.
            let info = i
                .image_info_array
                .iter()
                .find(|x| x.kind == 1)
                .or_else(|| i.image_info_array.first())
                .filter(|x| !x.url.is_empty())
                .ok_or_else(|| ImError::Body("TIMImageElem has no ImageInfoArray entry with a URL".into()))?;
            Element::Image { url: info.url.clone(), width: info.width, height: info.height, size: info.size }
        }
        MsgElement::File(f) => {
            Element::File { url: required_url("TIMFileElem", &f.url)?, name: f.file_name.clone(), size: f.file_size }
        }
        MsgElement::Sound(s) => {
            Element::Sound { url: required_url("TIMSoundElem", &s.url)?, seconds: s.second, size: s.size }
        }
        MsgElement::Video(v) => Element::Video {
            url: required_url("TIMVideoFileElem", &v.video_url)?,
            seconds: v.video_second,
            size: v.video_size,
            thumb_url: v.thumb_url.clone().filter(|t| !t.is_empty()),
        },
        MsgElement::Location(l) => {
            Element::Location { latitude: l.latitude, longitude: l.longitude, desc: l.desc.clone() }
        }
        MsgElement::Face(f) => Element::Face { index: f.index, data: f.data.clone() },
        MsgElement::Custom(c) => Element::Custom { data: c.data.clone(), desc: c.desc.clone(), ext: c.ext.clone() },
        MsgElement::Unknown { msg_type, .. } => {
            return Err(ImError::Body(format!("element type {msg_type} has no canonical form")));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn every_element() -> Vec<Element> {
        vec![
            Element::Text { text: "héllo \u{1F600}".into() },
            Element::Image { url: "https://cdn/x/a.PNG?sig=1".into(), width: Some(640), height: Some(0), size: None },
            Element::Image { url: "https://cdn/x/b".into(), width: None, height: None, size: Some(12) },
            Element::File { url: "https://cdn/f.pdf".into(), name: "report.pdf".into(), size: 1234 },
            Element::Sound { url: "https://cdn/s.amr".into(), seconds: 7, size: 999 },
            Element::Video { url: "https://cdn/v.mov".into(), seconds: 30, size: 5_000_000, thumb_url: None },
            Element::Video {
                url: "https://cdn/v2".into(),
                seconds: 1,
                size: 1,
                thumb_url: Some("https://cdn/t.jpg".into()),
            },
            Element::Location { latitude: 22.543_096_1, longitude: -113.1, desc: Some("Shenzhen".into()) },
            Element::Location { latitude: 0.1 + 0.2, longitude: 1e-9, desc: None },
            Element::Face { index: 6, data: Some("abc\u{0}\u{1}".into()) },
            Element::Face { index: -1, data: None },
            Element::Custom { data: "{\"k\":1}".into(), desc: Some("d".into()), ext: Some("e".into()) },
            Element::Custom { data: String::new(), desc: None, ext: None },
        ]
    }

    #[test]
    fn round_trip_every_element_through_json() {
        let elements = every_element();
        let im = to_im_body(&elements);
        // Through the wire, as it would travel to IM and back in a callback or a history read.
        let wire = serde_json::to_string(&im).expect("serialize");
        let back: Vec<MsgElement> = serde_json::from_str(&wire).expect("parse");
        assert_eq!(back, im);
        assert_eq!(from_im_body(&back).expect("map back"), elements);
    }

    #[test]
    fn serializes_documented_field_names() {
        let im = to_im_body(&[
            Element::Text { text: "red packet".into() },
            Element::Image { url: "https://c/i.jpg".into(), width: Some(10), height: Some(20), size: Some(30) },
            Element::File { url: "https://c/f".into(), name: "f".into(), size: 1 },
            Element::Video {
                url: "https://c/v.mp4".into(),
                seconds: 2,
                size: 3,
                thumb_url: Some("https://c/t.png".into()),
            },
        ]);
        let v = serde_json::to_value(&im).expect("serialize");
        assert_eq!(v[0], json!({"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet"}}));
        assert_eq!(v[1]["MsgType"], "TIMImageElem");
        assert_eq!(v[1]["MsgContent"]["ImageFormat"], 1);
        assert_eq!(v[1]["MsgContent"]["UUID"], uuid_for_url("https://c/i.jpg"));
        assert_eq!(
            v[1]["MsgContent"]["ImageInfoArray"][0],
            json!({"Type":1,"Size":30,"Width":10,"Height":20,"URL":"https://c/i.jpg"})
        );
        assert_eq!(v[1]["MsgContent"]["ImageInfoArray"].as_array().map(Vec::len), Some(3));
        assert_eq!(
            v[2]["MsgContent"],
            json!({"Url":"https://c/f","UUID":uuid_for_url("https://c/f"),"FileSize":1,"FileName":"f","Download_Flag":2})
        );
        assert_eq!(v[3]["MsgContent"]["VideoFormat"], "mp4");
        assert_eq!(v[3]["MsgContent"]["ThumbFormat"], "PNG");
        assert_eq!(v[3]["MsgContent"]["VideoDownloadFlag"], 2);
    }

    #[test]
    fn parses_reference_samples_and_unknown_types() {
        // tencent_im_rs / reference §6.3 sample body, plus a merged-forward element we do not model.
        let body: Vec<MsgElement> = serde_json::from_value(json!([
            {"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet"}},
            {"MsgType":"TIMFaceElem","MsgContent":{"Index":6,"Data":"abc\u{0000}\u{0001}"}},
            {"MsgType":"TIMLocationElem","MsgContent":{"Desc":"d","Latitude":22.5,"Longitude":113.9}},
            {"MsgType":"TIMCustomElem","MsgContent":{"Data":"message","Desc":"notification","Ext":"url","Sound":"dingdong.aiff"}},
            {"MsgType":"TIMSoundElem","MsgContent":{"Url":"https://x/s","UUID":"u","Size":10,"Second":2,"Download_Flag":2}},
            {"MsgType":"TIMRelayElem","MsgContent":{"Title":"t","MsgNum":2}}
        ]))
        .expect("parse");
        assert_eq!(body.len(), 6);
        assert_eq!(body[5].msg_type(), "TIMRelayElem");
        // Unknown elements re-serialize verbatim.
        assert_eq!(
            serde_json::to_value(&body[5]).expect("ser"),
            json!({"MsgType":"TIMRelayElem","MsgContent":{"Title":"t","MsgNum":2}})
        );
        let err = from_im_body(&body).expect_err("relay has no canonical form");
        assert!(err.to_string().contains("TIMRelayElem"));
        let ok = from_im_body(&body[..5]).expect("known elements map");
        assert_eq!(
            ok[3],
            Element::Custom { data: "message".into(), desc: Some("notification".into()), ext: Some("url".into()) }
        );
        assert_eq!(ok[4], Element::Sound { url: "https://x/s".into(), seconds: 2, size: 10 });
    }

    #[test]
    fn rejects_media_without_url_and_malformed_known_elements() {
        let body: Vec<MsgElement> =
            serde_json::from_value(json!([{"MsgType":"TIMFileElem","MsgContent":{"UUID":"only-uuid","FileSize":1}}]))
                .expect("parse");
        assert!(from_im_body(&body).is_err());
        assert!(
            serde_json::from_value::<MsgElement>(json!({"MsgType":"TIMTextElem","MsgContent":{"Text":5}})).is_err()
        );
        assert!(serde_json::from_value::<MsgElement>(json!({"MsgType":"","MsgContent":{}})).is_err());
    }

    #[test]
    fn uuids_and_formats_are_deterministic() {
        // Golden value: the first 16 bytes of SHA-256("https://a/b") in hex, computed outside Rust.
        assert_eq!(uuid_for_url("https://a/b"), "4148a87e16a32df5f7bd99effa01d69d");
        assert_ne!(uuid_for_url("https://a/b"), uuid_for_url("https://a/c"));
        assert_eq!(uuid_for_url("x").len(), 32);
        assert_eq!(image_format_for_url("https://a/b.JPEG#x"), 1);
        assert_eq!(image_format_for_url("https://a/b.gif?x=y.png"), 2);
        assert_eq!(image_format_for_url("https://a.png/b"), 255);
    }
}

//! Reading request bodies field by field, with IM's error code for each way a field can be wrong.
//!
//! The emulator deliberately parses bodies as `serde_json::Value` with its own rules rather than with the client
//! crate's request structs: a field the client misnames or mistypes must fail here exactly as it would on IM.

use serde_json::{Map, Value};

use crate::api::ApiError;

pub(crate) type Obj = Map<String, Value>;

/// The body as a JSON object, or `code`.
pub(crate) fn object(body: &Value, code: i64) -> Result<&Obj, ApiError> {
    body.as_object().ok_or_else(|| ApiError::new(code, "request body must be a JSON object"))
}

pub(crate) fn req_str<'a>(o: &'a Obj, key: &str, code: i64) -> Result<&'a str, ApiError> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::new(code, format!("{key} must be a string"))),
        None => Err(ApiError::new(code, format!("{key} is required"))),
    }
}

pub(crate) fn opt_str<'a>(o: &'a Obj, key: &str, code: i64) -> Result<Option<&'a str>, ApiError> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Null) | None => Ok(None),
        Some(_) => Err(ApiError::new(code, format!("{key} must be a string"))),
    }
}

/// A non-negative JSON integer (IM's Integer fields never accept floats or quoted numbers).
pub(crate) fn opt_u64(o: &Obj, key: &str, code: i64) -> Result<Option<u64>, ApiError> {
    match o.get(key) {
        Some(Value::Null) | None => Ok(None),
        Some(v) => {
            v.as_u64().map(Some).ok_or_else(|| ApiError::new(code, format!("{key} must be an unsigned integer")))
        }
    }
}

pub(crate) fn req_u64(o: &Obj, key: &str, code: i64) -> Result<u64, ApiError> {
    opt_u64(o, key, code)?.ok_or_else(|| ApiError::new(code, format!("{key} is required")))
}

pub(crate) fn opt_u32(o: &Obj, key: &str, code: i64) -> Result<Option<u32>, ApiError> {
    match opt_u64(o, key, code)? {
        None => Ok(None),
        Some(v) => u32::try_from(v).map(Some).map_err(|_| ApiError::new(code, format!("{key} must fit in 32 bits"))),
    }
}

pub(crate) fn req_u32(o: &Obj, key: &str, code: i64) -> Result<u32, ApiError> {
    opt_u32(o, key, code)?.ok_or_else(|| ApiError::new(code, format!("{key} is required")))
}

/// A signed JSON integer (for fields where a negative value has its own error, e.g. MsgLifeTime).
pub(crate) fn opt_i64(o: &Obj, key: &str, code: i64) -> Result<Option<i64>, ApiError> {
    match o.get(key) {
        Some(Value::Null) | None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| ApiError::new(code, format!("{key} must be an integer"))),
    }
}

pub(crate) fn opt_array<'a>(o: &'a Obj, key: &str, code: i64) -> Result<Option<&'a Vec<Value>>, ApiError> {
    match o.get(key) {
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(Value::Null) | None => Ok(None),
        Some(_) => Err(ApiError::new(code, format!("{key} must be an array"))),
    }
}

pub(crate) fn req_array<'a>(o: &'a Obj, key: &str, code: i64) -> Result<&'a Vec<Value>, ApiError> {
    opt_array(o, key, code)?.ok_or_else(|| ApiError::new(code, format!("{key} is required")))
}

/// An optional array of strings (ForbidCallbackControl, SendMsgControl, account lists).
pub(crate) fn opt_str_list(o: &Obj, key: &str, code: i64) -> Result<Vec<String>, ApiError> {
    let Some(items) = opt_array(o, key, code)? else { return Ok(Vec::new()) };
    items
        .iter()
        .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| ApiError::new(code, format!("{key} must hold strings"))))
        .collect()
}

/// A UserID as IM accepts it: 1..=32 bytes of printable ASCII (reference §2.1).
pub(crate) fn valid_user_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// Element types the REST API accepts in `MsgBody` (reference §3).
const MSG_TYPES: &[&str] = &[
    "TIMTextElem",
    "TIMLocationElem",
    "TIMFaceElem",
    "TIMCustomElem",
    "TIMSoundElem",
    "TIMImageElem",
    "TIMFileElem",
    "TIMVideoFileElem",
    "TIMRelayElem",
];

/// How a `MsgBody` can be wrong, so each API maps it to its own code.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Missing or not an array (openim 90007).
    NotArray,
    /// Empty, unknown element type, missing/mistyped content field, or two custom elements (openim 90002).
    Invalid(String),
}

/// Checks `MsgBody` against the documented element shapes. Content is checked only as far as the reference
/// states required fields; unknown extra fields are kept, as IM stores what it is given.
pub(crate) fn check_msg_body(v: Option<&Value>) -> Result<&Vec<Value>, BodyError> {
    let Some(Value::Array(elems)) = v else { return Err(BodyError::NotArray) };
    if elems.is_empty() {
        return Err(BodyError::Invalid("MsgBody must hold at least one element".into()));
    }
    let mut customs = 0;
    for (i, e) in elems.iter().enumerate() {
        let Some(e) = e.as_object() else { return Err(BodyError::Invalid(format!("MsgBody[{i}] must be an object"))) };
        let Some(kind) = e.get("MsgType").and_then(Value::as_str) else {
            return Err(BodyError::Invalid(format!("MsgBody[{i}].MsgType must be a string")));
        };
        if !MSG_TYPES.contains(&kind) {
            return Err(BodyError::Invalid(format!("MsgBody[{i}].MsgType {kind:?} is not a known element type")));
        }
        let Some(c) = e.get("MsgContent").and_then(Value::as_object) else {
            return Err(BodyError::Invalid(format!("MsgBody[{i}].MsgContent must be an object")));
        };
        let need = |field: &str, ok: fn(&Value) -> bool| -> Result<(), BodyError> {
            match c.get(field) {
                Some(v) if ok(v) => Ok(()),
                _ => Err(BodyError::Invalid(format!("MsgBody[{i}] ({kind}) needs a valid MsgContent.{field}"))),
            }
        };
        match kind {
            "TIMTextElem" => need("Text", Value::is_string)?,
            "TIMFaceElem" => need("Index", Value::is_i64)?,
            "TIMLocationElem" => {
                need("Latitude", Value::is_number)?;
                need("Longitude", Value::is_number)?;
            }
            "TIMCustomElem" => {
                customs += 1;
                if customs > 1 {
                    return Err(BodyError::Invalid("a message may hold at most one TIMCustomElem".into()));
                }
                if let Some(d) = c.get("Data") {
                    if !d.is_string() {
                        return Err(BodyError::Invalid(format!("MsgBody[{i}].MsgContent.Data must be a string")));
                    }
                }
            }
            "TIMSoundElem" | "TIMFileElem" => need("Url", Value::is_string)?,
            "TIMImageElem" => need("ImageInfoArray", Value::is_array)?,
            "TIMVideoFileElem" => need("VideoUrl", Value::is_string)?,
            _ => {}
        }
    }
    Ok(elems)
}

/// The size IM's 8 KB rule is applied to: the compact JSON of the body plus the custom data.
pub(crate) fn message_size(body: &[Value], cloud_custom_data: Option<&str>) -> usize {
    let body_len = serde_json::to_vec(body).map(|b| b.len()).unwrap_or(usize::MAX);
    body_len.saturating_add(cloud_custom_data.map_or(0, str::len))
}

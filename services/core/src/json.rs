//! Records from outside are JSON objects, nothing else.
//!
//! serde's derived `Deserialize` for a struct accepts a JSON array as well as an object (fields by position),
//! so `["not","an","object"]` would read as an account named "not". Every reader of outside records — export
//! lines, webhook and callback bodies, apply bodies — checks the top level with these helpers before it
//! deserializes, so all of them refuse the same things with the same words.
//!
//! [`check_object_text`] looks only at the first significant byte, so a reader streaming hundreds of millions
//! of lines pays nothing for it; [`object`] checks a value that was already parsed.

use serde_json::{Map, Value};

/// A record whose top level is valid or invalid JSON but not an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{found}, not a JSON object")]
pub struct NotAnObject {
    /// What was found instead: "an array", "a string", "a number", "a boolean", "null" or "nothing".
    pub found: &'static str,
}

/// What a JSON value is, in words for an error message.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks that a JSON text is an object, by its first significant byte. A text that starts like no JSON value
/// at all passes: the parser that reads it next reports that syntax error with its position.
pub fn check_object_text(text: &[u8]) -> Result<(), NotAnObject> {
    // A UTF-8 byte-order mark is not JSON; leave it to the parser as well.
    let first = text.iter().copied().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    let found = match first {
        None => "nothing",
        Some(b'{') => return Ok(()),
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'-' | b'0'..=b'9') => "a number",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(_) => return Ok(()),
    };
    Err(NotAnObject { found })
}

/// The value as an object, or what it is instead.
pub fn object(v: &Value) -> Result<&Map<String, Value>, NotAnObject> {
    v.as_object().ok_or(NotAnObject { found: kind_of(v) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_must_start_an_object() {
        assert_eq!(check_object_text(br#"  {"a":1}"#), Ok(()));
        for (text, found) in [
            (&br#"["not","an","object"]"#[..], "an array"),
            (b"\t\"s\"", "a string"),
            (b"-1", "a number"),
            (b"7", "a number"),
            (b"true", "a boolean"),
            (b"false", "a boolean"),
            (b"null", "null"),
            (b"  \r\n", "nothing"),
            (b"", "nothing"),
        ] {
            assert_eq!(check_object_text(text), Err(NotAnObject { found }), "{}", String::from_utf8_lossy(text));
        }
        // Not JSON at all: the parser's syntax error is the better message.
        assert_eq!(check_object_text(b"x{"), Ok(()));
        assert_eq!(NotAnObject { found: "an array" }.to_string(), "an array, not a JSON object");
    }

    #[test]
    fn values_must_be_objects() {
        assert!(object(&json!({"a": 1})).is_ok());
        assert_eq!(object(&json!(["a"])), Err(NotAnObject { found: "an array" }));
        assert_eq!(object(&json!(null)), Err(NotAnObject { found: "null" }));
        assert_eq!(object(&json!(1.5)), Err(NotAnObject { found: "a number" }));
    }

    #[test]
    fn serde_alone_would_read_an_array_as_a_struct() {
        // Why the check exists: without it this succeeds.
        #[derive(serde::Deserialize)]
        struct Account {
            user_id: String,
        }
        let a: Account = serde_json::from_str(r#"["not"]"#).expect("serde reads structs from sequences");
        assert_eq!(a.user_id, "not");
    }
}

//! Reading a legacy export: the directory layout, streaming NDJSON lines, and the typed records.
//!
//! An export is a directory of NDJSON files, one per record kind (`accounts.ndjson`, …), each optionally
//! gzip-compressed (`.ndjson.gz`); any may be absent. Files are read line by line and never held in memory, so
//! an export of hundreds of millions of lines streams through in constant memory. Records are deserialized
//! leniently (unknown fields are ignored, times are Unix ms or RFC 3339) into the export's record types
//! ([`imbridge_core::export`], as written), with errors that name the field; semantic limits are checked later by
//! [`crate::validate`].

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
pub use imbridge_core::body::ExportElement;
pub use imbridge_core::export::{
    AccountRecord, C2cMessageRecord, C2cReadRecord, ExportKind, FriendRecord, GroupMemberRecord, GroupMessageRecord,
    GroupRecord, ProfileRecord,
};
use imbridge_core::export::{GroupProfile, Written};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The files of one export directory.
#[derive(Debug, Clone)]
pub struct ExportDir {
    root: PathBuf,
    files: Vec<(ExportKind, PathBuf)>,
}

impl ExportDir {
    /// Locates the export's files. A kind may be absent; having both `x.ndjson` and `x.ndjson.gz` is an error
    /// because it is ambiguous which one is the export.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, Error> {
        let root = root.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(Error::NotADirectory(root));
        }
        let mut files = Vec::new();
        for kind in ExportKind::ALL {
            let plain = root.join(kind.file_name());
            let gz = root.join(format!("{}.gz", kind.file_name()));
            match (plain.is_file(), gz.is_file()) {
                (true, true) => return Err(Error::AmbiguousFile { plain, gz }),
                (true, false) => files.push((kind, plain)),
                (false, true) => files.push((kind, gz)),
                (false, false) => {}
            }
        }
        Ok(Self { root, files })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding `kind`, if the export has one.
    pub fn path(&self, kind: ExportKind) -> Option<&Path> {
        self.files.iter().find(|(k, _)| *k == kind).map(|(_, p)| p.as_path())
    }

    /// The file's name as shown in errors (`accounts.ndjson.gz`).
    pub fn display_name(&self, kind: ExportKind) -> String {
        self.path(kind)
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| kind.file_name())
    }

    /// Streams the lines of `kind`'s file; an absent file yields nothing.
    pub fn lines(&self, kind: ExportKind) -> Result<Lines, Error> {
        let Some(path) = self.path(kind) else {
            return Ok(Lines::empty());
        };
        Lines::open(path)
    }
}

/// One line of an export file: its 1-based number and its text (or why it is not text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: u64,
    pub text: Result<String, String>,
}

/// A streaming reader of NDJSON lines. Blank lines are skipped but still counted, so numbers match an editor's.
pub struct Lines {
    reader: Option<Box<dyn BufRead + Send>>,
    path: PathBuf,
    number: u64,
    buf: Vec<u8>,
}

impl fmt::Debug for Lines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lines").field("path", &self.path).field("number", &self.number).finish()
    }
}

/// Buffer size for export files: large sequential reads, most of the work is parsing.
const READ_BUFFER_BYTES: usize = 256 * 1024;

impl Lines {
    fn empty() -> Self {
        Self { reader: None, path: PathBuf::new(), number: 0, buf: Vec::new() }
    }

    /// Opens a file, decompressing it when its name ends in `.gz`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let reader: Box<dyn BufRead + Send> = if path.extension().is_some_and(|e| e == "gz") {
            // Multi-member: `cat a.gz b.gz > c.gz` is a valid gzip file and exports are often built that way.
            Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, MultiGzDecoder::new(file)))
        } else {
            Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, file))
        };
        Ok(Self { reader: Some(reader), path: path.to_path_buf(), number: 0, buf: Vec::with_capacity(4096) })
    }

    /// Reads from any reader (tests, stdin).
    pub fn from_reader(reader: impl Read + Send + 'static) -> Self {
        Self {
            reader: Some(Box::new(BufReader::new(reader))),
            path: PathBuf::from("-"),
            number: 0,
            buf: Vec::with_capacity(4096),
        }
    }
}

impl Iterator for Lines {
    type Item = Result<Line, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let reader = self.reader.as_mut()?;
            self.buf.clear();
            match reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.reader = None;
                    return None;
                }
                Ok(_) => {}
                Err(source) => {
                    // A read error (truncated gzip, I/O) ends the file: nothing after it can be trusted.
                    self.reader = None;
                    return Some(Err(Error::Io { path: self.path.clone(), source }));
                }
            }
            self.number += 1;
            let mut bytes = self.buf.as_slice();
            if let Some(rest) = bytes.strip_suffix(b"\n") {
                bytes = rest;
            }
            if let Some(rest) = bytes.strip_suffix(b"\r") {
                bytes = rest;
            }
            if self.number == 1 {
                // A UTF-8 byte-order mark is not part of the first record.
                if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
                    bytes = rest;
                }
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = match std::str::from_utf8(bytes) {
                Ok(s) => Ok(s.to_owned()),
                Err(e) => Err(format!("not valid UTF-8 (invalid byte at offset {})", e.valid_up_to())),
            };
            return Some(Ok(Line { number: self.number, text }));
        }
    }
}

/// Why a line is not a well-formed record: the field (a path like `body[1].url`; empty for the whole line)
/// and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.field, self.message) }
    }
}

/// Deserializes one line into a record, naming the field on error.
pub fn parse_record<T: serde::de::DeserializeOwned>(line: &str) -> Result<T, FieldError> {
    // serde would read a struct from an array by position; a record line must be an object.
    imbridge_core::json::check_object_text(line.as_bytes())
        .map_err(|e| FieldError::new("", format!("the line is {e}")))?;
    let mut de = serde_json::Deserializer::from_str(line);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = strip_position(&inner.to_string());
        if inner.is_syntax() || inner.is_eof() {
            return FieldError::new("", format!("not valid JSON: {message} (column {})", inner.column()));
        }
        let parent = if path == "." { String::new() } else { path };
        // serde reports a missing field at its parent; name the field itself.
        if let Some(name) = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
            let field = if parent.is_empty() { name.to_owned() } else { format!("{parent}.{name}") };
            return FieldError::new(field, "required field is missing");
        }
        if parent.is_empty()
            && let Some(field) = flattened_field(line)
        {
            return FieldError::new(field, message);
        }
        FieldError::new(parent, message)
    })?;
    // Trailing garbage after the object (`{…} x`) is not one record per line.
    de.end().map_err(|e| {
        FieldError::new("", format!("not valid JSON: {} (column {})", strip_position(&e.to_string()), e.column()))
    })?;
    Ok(value)
}

/// Where in a flattened part a line goes wrong. serde buffers a `#[serde(flatten)]` part and reads it after the rest
/// of the record, so its errors arrive without a path; the one part the export records flatten is the group
/// profile, so reading the line as that alone names the field.
fn flattened_field(line: &str) -> Option<String> {
    let mut de = serde_json::Deserializer::from_str(line);
    let e = serde_path_to_error::deserialize::<_, GroupProfile<Written>>(&mut de).err()?;
    let path = e.path().to_string();
    (path != ".").then_some(path)
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use imbridge_core::TimestampMs;

    use super::*;

    #[test]
    fn errors_name_the_field() {
        let e = parse_record::<C2cMessageRecord>(r#"{"id":"m","from":"a","to":"b","sent_at":1}"#).unwrap_err();
        assert_eq!(e, FieldError::new("body", "required field is missing"));
        let e = parse_record::<C2cMessageRecord>(r#"{"id":"m","from":"a","to":7,"sent_at":1,"body":[]}"#).unwrap_err();
        assert_eq!(e.field, "to");
        assert!(e.message.contains("invalid type"), "{e}");
        let e = parse_record::<C2cMessageRecord>(r#"{"id":"m","from":"a","to":"b","sent_at":"soon","body":[]}"#)
            .unwrap_err();
        assert_eq!(e.field, "sent_at");
        let line = r#"{"id":"m","from":"a","to":"b","sent_at":1,"body":[{"type":"text","text":"x"},{"type":"file","url":"u","size":1}]}"#;
        let e = parse_record::<C2cMessageRecord>(line).unwrap_err();
        assert_eq!(e.field, "body[1].name", "{e}");
        let e = parse_record::<AccountRecord>(r#"{"user_id":"a""#).unwrap_err();
        assert_eq!(e.field, "");
        assert!(e.message.starts_with("not valid JSON"), "{e}");
        let e = parse_record::<AccountRecord>(r#"{"user_id":"a"} {"#).unwrap_err();
        assert!(e.message.starts_with("not valid JSON"), "{e}");
    }

    #[test]
    fn errors_name_the_field_of_the_shared_group_profile() {
        let line = |fields: &str| format!(r#"{{"group_id":"g1","type":"Public",{fields}"created_at":1}}"#);
        let e = parse_record::<GroupRecord>(&line(r#""name":7,"#)).unwrap_err();
        assert_eq!(e.field, "name", "{e}");
        assert!(e.message.contains("invalid type"), "{e}");
        let e = parse_record::<GroupRecord>(&line(r#""name":"G","owner":["ann"],"#)).unwrap_err();
        assert_eq!(e.field, "owner", "{e}");
        let e = parse_record::<GroupRecord>(&line(r#""name":"G","face_url":false,"#)).unwrap_err();
        assert_eq!(e.field, "face_url", "{e}");
        let e = parse_record::<GroupRecord>(&line("")).unwrap_err();
        assert_eq!(e, FieldError::new("name", "required field is missing"));
        let e = parse_record::<GroupRecord>(&line(r#""name":"G","max_members":"many","#)).unwrap_err();
        assert_eq!(e.field, "max_members", "{e}");
        let r: GroupRecord = parse_record(&line(r#""name":"G","owner":"ann","x":1,"#)).expect("valid");
        assert_eq!((r.profile.name.as_str(), r.profile.owner.as_deref()), ("G", Some("ann")));
    }

    #[test]
    fn a_line_must_be_an_object() {
        // serde alone reads these as records by position (an account named "not").
        let e = parse_record::<AccountRecord>(r#"["not","an","object"]"#).unwrap_err();
        assert_eq!(e, FieldError::new("", "the line is an array, not a JSON object"));
        let e = parse_record::<C2cMessageRecord>(r#" ["m","a","b",1,[]]"#).unwrap_err();
        assert_eq!(e.message, "the line is an array, not a JSON object");
        let e = parse_record::<GroupRecord>(r#""g1""#).unwrap_err();
        assert_eq!(e.message, "the line is a string, not a JSON object");
        let e = parse_record::<GroupMemberRecord>("null").unwrap_err();
        assert_eq!(e.message, "the line is null, not a JSON object");
        let e = parse_record::<ProfileRecord>("42").unwrap_err();
        assert_eq!(e.message, "the line is a number, not a JSON object");
    }

    #[test]
    fn unknown_fields_are_ignored_and_times_take_both_forms() {
        let r: C2cMessageRecord = parse_record(
            r#"{"id":"m","from":"a","to":"b","sent_at":"2024-05-01T12:00:00Z","x":1,"body":[{"type":"text","text":"hi","style":"bold"}]}"#,
        )
        .expect("valid");
        assert_eq!(r.sent_at, TimestampMs(1_714_564_800_000));
        assert_eq!(r.body, vec![ExportElement::Text { text: "hi".into() }]);
    }

    #[test]
    fn lines_are_numbered_and_blank_lines_skipped() {
        let data = b"\xEF\xBB\xBF{\"a\":1}\r\n\n  \n{\"b\":2}\n\xff\xfe\n{\"c\":3}".to_vec();
        let lines: Vec<Line> = Lines::from_reader(std::io::Cursor::new(data)).map(|l| l.expect("read")).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], Line { number: 1, text: Ok("{\"a\":1}".into()) });
        assert_eq!(lines[1], Line { number: 4, text: Ok("{\"b\":2}".into()) });
        assert_eq!(lines[2].number, 5);
        assert!(lines[2].text.as_ref().is_err_and(|e| e.contains("UTF-8")));
        assert_eq!(lines[3], Line { number: 6, text: Ok("{\"c\":3}".into()) });
    }
}

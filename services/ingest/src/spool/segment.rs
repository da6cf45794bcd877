//! The spool's on-disk format: segment files of framed records, and the scan that recovers them.
//!
//! A segment is named after the sequence number of its first record (`{seq:020}.spool`), so a directory listing
//! sorted by name is arrival order. A record is
//!
//! ```text
//! len: u32 LE | crc32: u32 LE | seq: u64 LE | payload: len bytes
//! ```
//!
//! with the CRC over `seq` and `payload`. Records are only ever appended, by one writer, and every batch is
//! fsynced before any caller hears "stored": so a crash can tear at most the tail of the newest segment. The scan
//! stops at the first record that is short or fails its CRC; in the newest segment that is the torn tail and is
//! truncated away (its writer never answered "stored" for it), in an older one it is corruption and is reported.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Bytes before a record's payload.
pub const HEADER_BYTES: u64 = 16;
/// A payload larger than this is corruption, not a record (ingest's bodies are bounded far below it).
const MAX_PAYLOAD_BYTES: u32 = 64 * 1024 * 1024;
const SUFFIX: &str = ".spool";

/// The file name of the segment whose first record has `seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

/// `(first seq, path)` of every segment in `dir`, oldest first.
pub fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else { continue };
        if let Ok(seq) = stem.parse::<u64>() {
            out.push((seq, entry.path()));
        }
    }
    out.sort_by_key(|(s, _)| *s);
    Ok(out)
}

/// Appends the framed record to `buf`.
pub fn encode(buf: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(payload);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// The framed size of a payload.
pub fn framed_len(payload_len: usize) -> u64 {
    HEADER_BYTES + payload_len as u64
}

/// What a segment scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// `(seq, payload)` of every intact record, in file order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Length of the intact prefix.
    pub valid_bytes: u64,
    /// Bytes after the intact prefix (a torn or corrupt tail); 0 for a clean segment.
    pub bad_bytes: u64,
}

/// Reads every intact record of one segment.
pub fn scan(path: &Path) -> std::io::Result<Scan> {
    let file = File::open(path)?;
    let total = file.metadata()?.len();
    let mut r = BufReader::new(file);
    let mut out = Scan::default();
    loop {
        let mut header = [0u8; HEADER_BYTES as usize];
        if !read_full(&mut r, &mut header)? {
            break;
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let seq_bytes: [u8; 8] = header[8..16].try_into().unwrap_or_default();
        if len > MAX_PAYLOAD_BYTES || out.valid_bytes + framed_len(len as usize) > total {
            break;
        }
        let mut payload = vec![0u8; len as usize];
        if !read_full(&mut r, &mut payload)? {
            break;
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&seq_bytes);
        h.update(&payload);
        if h.finalize() != crc {
            break;
        }
        out.records.push((u64::from_le_bytes(seq_bytes), payload));
        out.valid_bytes += framed_len(len as usize);
    }
    out.bad_bytes = total - out.valid_bytes;
    Ok(out)
}

/// Fills `buf` completely; `false` when the file ends first (a short read is a torn record, not an error).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => return Ok(false),
            n => got += n,
        }
    }
    Ok(true)
}

/// Cuts a segment back to its intact prefix and makes the cut durable.
pub fn truncate(path: &Path, len: u64) -> std::io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()
}

/// Makes a directory entry (a created or removed segment) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_arrival_order() {
        assert!(segment_name(9) < segment_name(10));
        assert_eq!(segment_name(7), "00000000000000000007.spool");
    }

    #[test]
    fn scan_stops_at_a_torn_or_corrupt_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(segment_name(1));
        let mut buf = Vec::new();
        encode(&mut buf, 1, b"one");
        encode(&mut buf, 2, b"two");
        let whole = buf.len();
        encode(&mut buf, 3, b"three");
        // Torn: the last record lost its final bytes.
        std::fs::write(&path, &buf[..buf.len() - 2]).expect("write");
        let s = scan(&path).expect("scan");
        assert_eq!(s.records, vec![(1, b"one".to_vec()), (2, b"two".to_vec())]);
        assert_eq!(s.valid_bytes, whole as u64);
        assert_eq!(s.bad_bytes, (buf.len() - 2 - whole) as u64);
        // Corrupt: a flipped payload byte fails the CRC.
        let mut bad = buf.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        std::fs::write(&path, &bad).expect("write");
        assert_eq!(scan(&path).expect("scan").records.len(), 2);
        std::fs::write(&path, &buf).expect("write");
        assert_eq!(scan(&path).expect("scan").records.len(), 3);
    }
}

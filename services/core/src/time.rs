//! Event times: Unix milliseconds on the wire, RFC 3339 accepted on input.
//!
//! Legacy exports and webhooks may write either form; imbridge normalises to milliseconds at the edge so
//! nothing downstream ever parses a date string.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time as Unix milliseconds (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TimestampMs(pub i64);

impl TimestampMs {
    /// The system clock now. A clock before 1970 reads as 0, one past the year 292 million as `i64::MAX`: event
    /// times are never negative, and no caller has a better answer than "now, as far as we can tell".
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Self(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    pub fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Whole seconds, rounded down (IM's message times are seconds).
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (`2024-05-01T12:00:00.250Z`, `2024-05-01T20:00:00+08:00`) or a decimal integer of ms.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Ok(ms) = s.parse::<i64>() {
            return Ok(Self(ms));
        }
        let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("{s:?} is not RFC 3339 or Unix ms: {e}"))?;
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms).map(Self).map_err(|_| format!("{s:?} is out of range"))
    }

    /// RFC 3339 in UTC with milliseconds, for humans (logs, reports).
    pub fn to_rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| self.0.to_string())
    }
}

impl fmt::Display for TimestampMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for TimestampMs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for TimestampMs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = TimestampMs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("Unix milliseconds (integer) or an RFC 3339 string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TimestampMs, E> {
                Ok(TimestampMs(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimestampMs, E> {
                i64::try_from(v).map(TimestampMs).map_err(|_| E::custom("timestamp out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TimestampMs, E> {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(TimestampMs(v as i64))
                } else {
                    Err(E::custom("timestamp must be whole milliseconds"))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TimestampMs, E> {
                TimestampMs::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ms_and_rfc3339() {
        let a: TimestampMs = serde_json::from_str("1700000000123").expect("int");
        let b: TimestampMs = serde_json::from_str("\"2023-11-14T22:13:20.123Z\"").expect("rfc3339");
        let c: TimestampMs = serde_json::from_str("\"2023-11-15T06:13:20.123+08:00\"").expect("offset");
        assert_eq!(a, TimestampMs(1_700_000_000_123));
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(serde_json::to_string(&b).expect("ser"), "1700000000123");
        assert!(serde_json::from_str::<TimestampMs>("\"yesterday\"").is_err());
        assert!(serde_json::from_str::<TimestampMs>("1.5").is_err());
    }

    #[test]
    fn now_is_after_2023() {
        assert!(TimestampMs::now() > TimestampMs(1_700_000_000_000));
    }

    #[test]
    fn seconds_round_down() {
        assert_eq!(TimestampMs(1999).as_secs(), 1);
        assert_eq!(TimestampMs(-1).as_secs(), -1);
        assert_eq!(TimestampMs(1_700_000_000_123).to_rfc3339(), "2023-11-14T22:13:20.123Z");
    }
}

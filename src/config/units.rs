//! Small types for values with a unit, so a key says what it holds and an
//! invalid value cannot get past loading. New keys use these rather than
//! bare integers with the unit in their name.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A length of time written with its unit: `"500ms"`, `"10s"`, `"2min"`,
/// `"1h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(Duration);

impl Span {
    pub const fn from_secs(seconds: u64) -> Self {
        Self(Duration::from_secs(seconds))
    }

    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    pub fn duration(self) -> Duration {
        self.0
    }
}

impl std::str::FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().map_err(|_| {
            format!(
                "{text:?} is not a length of time: write a whole number and a unit, e.g. \"10s\""
            )
        })?;
        let millis = match unit.trim() {
            "ms" => Some(number),
            "s" => number.checked_mul(1000),
            "min" => number.checked_mul(60_000),
            "h" => number.checked_mul(3_600_000),
            _ => {
                return Err(format!(
                    "{text:?} has no known unit: use ms, s, min or h, e.g. \"10s\""
                ))
            }
        };
        millis
            .map(Span::from_millis)
            .ok_or_else(|| format!("{text:?} is too long"))
    }
}

impl fmt::Display for Span {
    /// The largest unit that writes it exactly: 90 s is "90s", 120 s "2min".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, size) in [("h", 3_600_000), ("min", 60_000), ("s", 1000)] {
            if ms > 0 && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_and_write_with_their_unit() {
        for (text, ms, shown) in [
            ("500ms", 500, "500ms"),
            ("10s", 10_000, "10s"),
            ("90s", 90_000, "90s"),
            ("2min", 120_000, "2min"),
            ("1h", 3_600_000, "1h"),
            ("1500ms", 1500, "1500ms"),
        ] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.duration(), Duration::from_millis(ms), "{text}");
            assert_eq!(span.to_string(), shown);
        }
    }

    #[test]
    fn a_span_without_a_known_unit_says_how_to_write_one() {
        assert!("10".parse::<Span>().unwrap_err().contains("no known unit"));
        assert!("10 sec".parse::<Span>().is_err());
        assert!("s".parse::<Span>().unwrap_err().contains("whole number"));
        assert!("-1s".parse::<Span>().is_err());
    }
}

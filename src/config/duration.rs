//! Human-readable durations for the configuration file: `120ms`, `5s`, `1m`,
//! `1.5s`, `1m30s`.
//!
//! Owns the text form of [`std::time::Duration`] (parsing, formatting) and the
//! serde adapters used as `#[serde(with = "duration")]` and
//! `#[serde(with = "duration::option")]`. It must not know which keys hold
//! durations or what ranges they allow: bounds are checked by
//! [`super::Config::validate`].

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

/// The accepted forms, for error hints.
pub const FORMS: &str =
    "a number and a unit, e.g. 120ms, 5s, 1.5s, 1m, 1m30s (units: h, m, s, ms, us, ns; a bare 0 means zero)";

/// Largest accepted duration: one week. Keeps arithmetic far from overflow.
const MAX_NANOS: u128 = 7 * 24 * 3600 * 1_000_000_000;

/// Why a duration string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("missing unit")]
    MissingUnit,
    #[error("missing number before a unit")]
    MissingNumber,
    #[error("malformed number")]
    BadNumber,
    #[error("unexpected character (only digits, '.' and units)")]
    BadChar,
    #[error("unknown unit")]
    UnknownUnit,
    #[error("finer than one nanosecond")]
    TooPrecise,
    #[error("longer than one week")]
    TooLong,
}

const UNITS: [(&str, u128); 6] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parse `120ms`, `5s`, `1.5s`, `1m30s`, or a bare `0`.
///
/// Each part is a decimal number (optionally with a fraction) followed by a
/// unit; parts are added. Surrounding whitespace is ignored, inner whitespace
/// is not allowed.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.bytes().all(|b| b == b'0') {
        return Ok(Duration::ZERO);
    }
    let mut rest = s.as_bytes();
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .count();
        if num_len == 0 {
            return Err(if rest[0].is_ascii_alphabetic() {
                DurationError::MissingNumber
            } else {
                DurationError::BadChar
            });
        }
        let (number, tail) = rest.split_at(num_len);
        let unit_len = tail.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        if unit_len == 0 {
            return Err(if tail.is_empty() {
                DurationError::MissingUnit
            } else {
                DurationError::UnknownUnit
            });
        }
        let (unit, tail) = tail.split_at(unit_len);
        let scale = UNITS
            .iter()
            .find(|(name, _)| name.as_bytes() == unit)
            .map(|(_, scale)| *scale)
            .ok_or(DurationError::UnknownUnit)?;
        total = total
            .checked_add(scaled(number, scale)?)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or(DurationError::TooLong)?;
        rest = tail;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::TooLong)?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// `number` (digits with at most one '.') times `scale` nanoseconds, exactly.
fn scaled(number: &[u8], scale: u128) -> Result<u128, DurationError> {
    let mut parts = number.splitn(2, |b| *b == b'.');
    let whole = parts.next().unwrap_or_default();
    let frac = parts.next().unwrap_or_default();
    if frac.contains(&b'.') || (whole.is_empty() && frac.is_empty()) {
        return Err(DurationError::BadNumber);
    }
    let mut value: u128 = 0;
    for &d in whole {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(d - b'0')))
            .filter(|v| *v <= MAX_NANOS)
            .ok_or(DurationError::TooLong)?;
    }
    let mut nanos = value.checked_mul(scale).ok_or(DurationError::TooLong)?;
    // Each fractional digit is worth scale / 10^k nanoseconds; it must divide evenly.
    let mut place = scale;
    for &d in frac {
        let digit = u128::from(d - b'0');
        if !place.is_multiple_of(10) {
            if digit != 0 {
                return Err(DurationError::TooPrecise);
            }
            continue;
        }
        place /= 10;
        nanos += digit * place;
    }
    Ok(nanos)
}

/// Formats a duration in the largest unit that represents it exactly:
/// `120ms`, `5s`, `2m`, `1500ms`; zero is `0s`.
pub struct Human(pub Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        let (name, scale) = UNITS
            .iter()
            .rev()
            .find(|(_, scale)| nanos.is_multiple_of(*scale))
            .copied()
            .unwrap_or(("ns", 1));
        write!(f, "{}{}", nanos / scale, name)
    }
}

/// The text form of `d`, as [`Human`] writes it.
pub fn format(d: Duration) -> String {
    Human(d).to_string()
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 120ms, 5s or 1m")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(|e| {
            let shown: String = v.chars().take(40).collect();
            E::custom(format_args!("invalid duration {shown:?}: {e}"))
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        if v == 0 {
            Ok(Duration::ZERO)
        } else {
            Err(E::custom(format_args!(
                "invalid duration {v}: missing unit (write {v}ms or {v}s)"
            )))
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        match u64::try_from(v) {
            Ok(u) => self.visit_u64(u),
            Err(_) => Err(E::custom(format_args!(
                "invalid duration {v}: durations cannot be negative"
            ))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(E::custom(format_args!(
            "invalid duration {v}: missing unit (write {v}s)"
        )))
    }
}

/// `#[serde(with = "duration")]` for `Duration` fields.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&Human(*d))
}

/// `#[serde(with = "duration")]` for `Duration` fields.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// `#[serde(with = "duration::option")]` for `Option<Duration>` fields; YAML
/// `null` (or `~`) is `None`.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&Human(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        struct OptVisitor;
        impl<'de> Visitor<'de> for OptVisitor {
            type Value = Option<Duration>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 120ms, or null")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                super::deserialize(d).map(Some)
            }
        }
        d.deserialize_option(OptVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_every_unit_and_fractions() {
        assert_eq!(parse("120ms"), Ok(ms(120)));
        assert_eq!(parse("5s"), Ok(ms(5000)));
        assert_eq!(parse("1m"), Ok(ms(60_000)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1.5s"), Ok(ms(1500)));
        assert_eq!(parse(".5s"), Ok(ms(500)));
        assert_eq!(parse("2.s"), Ok(ms(2000)));
        assert_eq!(parse("0.25m"), Ok(ms(15_000)));
        assert_eq!(parse("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse("1.5ns"), Err(DurationError::TooPrecise));
        assert_eq!(parse("1.0ns"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse(" 10s "), Ok(ms(10_000)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_bad_forms() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("   "), Err(DurationError::Empty));
        assert_eq!(parse("120"), Err(DurationError::MissingUnit));
        assert_eq!(parse("5 s"), Err(DurationError::UnknownUnit));
        assert_eq!(parse("5sec"), Err(DurationError::UnknownUnit));
        assert_eq!(parse("5S"), Err(DurationError::UnknownUnit));
        assert_eq!(parse("ms"), Err(DurationError::MissingNumber));
        assert_eq!(parse("-5s"), Err(DurationError::BadChar));
        assert_eq!(parse("1.2.3s"), Err(DurationError::BadNumber));
        assert_eq!(parse(".s"), Err(DurationError::BadNumber));
        assert_eq!(parse("5s!"), Err(DurationError::BadChar));
        assert_eq!(
            parse("99999999999999999999999999999999999h"),
            Err(DurationError::TooLong)
        );
        assert_eq!(parse("169h"), Err(DurationError::TooLong));
        assert_eq!(parse("168h"), Ok(Duration::from_secs(168 * 3600)));
        assert_eq!(parse("5\u{00b5}s"), Err(DurationError::UnknownUnit));
    }

    #[test]
    fn formats_in_the_largest_exact_unit_and_round_trips() {
        let cases = [
            (Duration::ZERO, "0s"),
            (ms(120), "120ms"),
            (ms(1500), "1500ms"),
            (ms(5000), "5s"),
            (ms(60_000), "1m"),
            (ms(90_000), "90s"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_micros(1), "1us"),
            (Duration::from_nanos(1_000_000_001), "1000000001ns"),
        ];
        for (d, text) in cases {
            assert_eq!(format(d), text);
            assert_eq!(parse(text), Ok(d), "{text}");
        }
    }
}

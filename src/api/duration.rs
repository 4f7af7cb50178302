//! Go-style durations (`90s`, `6h`, `1h30m`, `500ms`, `1.5h`) as the spec writes them, parsed
//! with bounds: a value the operator cannot represent or act on is an error, never a panic.
//! Pure.

use std::time::Duration;

/// The longest interval accepted: 366 days (`8784h`). Longer ones are almost certainly a typo,
/// and this keeps every accepted value far inside what `Duration`, timers and Go's
/// `time.Duration` (about 292 years) can hold. The CRDs' CEL rules use the same bound.
pub const MAX_INTERVAL: Duration = Duration::from_secs(366 * 24 * 3600);

/// [`MAX_INTERVAL`] as a Go duration, as the CEL rules and messages spell it.
pub const MAX_INTERVAL_GO: &str = "8784h";

/// What is accepted, for error messages.
const ALLOWED: &str = "expected a Go duration such as 90s, 6h or 1h30m (units ns, us, ms, s, m, h), greater than 0 and at most 8784h (366 days)";

/// More significant integer digits than this in one component exceed [`MAX_INTERVAL`] in any
/// unit; refusing them up front keeps the arithmetic bounded.
const MAX_INT_DIGITS: usize = 20;

/// Fractional digits beyond this many cannot change the result by a nanosecond; they are read
/// and ignored, as Go does.
const MAX_FRAC_DIGITS: usize = 18;

const NANOS_PER_UNIT: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // µs (micro sign), as Go accepts
    ("\u{3bc}s", 1_000), // μs (Greek mu), as Go accepts
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3600 * 1_000_000_000),
];

/// Why a duration was refused. Each message says what is wrong and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing to parse.
    #[error("empty duration: {ALLOWED}")]
    Empty,
    /// A sign: durations here are positive and written without one.
    #[error("duration {0:?} has a sign: {ALLOWED}")]
    Sign(String),
    /// Something other than a number where a number must be.
    #[error("invalid duration {0:?}: {ALLOWED}")]
    Malformed(String),
    /// A number without a unit.
    #[error("duration {0:?} is missing a unit: {ALLOWED}")]
    MissingUnit(String),
    /// A unit that is not one of ns, us, ms, s, m, h.
    #[error("duration {input:?} has unknown unit {unit:?}: {ALLOWED}")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit found.
        unit: String,
    },
    /// Zero in total.
    #[error("duration {0:?} is zero: {ALLOWED}")]
    Zero(String),
    /// Longer than [`MAX_INTERVAL`].
    #[error("duration {0:?} is too long: {ALLOWED}")]
    TooLong(String),
}

/// The input for messages, cut short when it is long.
fn shown(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Parses a Go-style duration: one or more `<number><unit>` components, the number a decimal
/// with optional fraction (`1.5h`), the unit one of ns, us (or µs), ms, s, m, h. The total must
/// be greater than zero and at most [`MAX_INTERVAL`]; fractions of a nanosecond are truncated,
/// as Go does. Never panics, whatever the input.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with(['+', '-']) {
        return Err(DurationError::Sign(shown(s)));
    }
    let max = MAX_INTERVAL.as_nanos();
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    while i < bytes.len() {
        // The integer part: leading zeros do not count towards its size.
        let start = i;
        let mut int: u128 = 0;
        let mut significant = 0;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            let d = bytes[i] - b'0';
            if significant > 0 || d != 0 {
                significant += 1;
                if significant > MAX_INT_DIGITS {
                    return Err(DurationError::TooLong(shown(s)));
                }
                int = int * 10 + u128::from(d);
            }
            i += 1;
        }
        let int_digits = i - start;
        // The fraction: only its first digits matter.
        let (mut frac, mut scale, mut frac_digits) = (0u128, 1u128, 0usize);
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                if frac_digits < MAX_FRAC_DIGITS {
                    frac = frac * 10 + u128::from(bytes[i] - b'0');
                    scale *= 10;
                }
                frac_digits += 1;
                i += 1;
            }
            if int_digits == 0 && frac_digits == 0 {
                return Err(DurationError::Malformed(shown(s)));
            }
        } else if int_digits == 0 {
            return Err(DurationError::Malformed(shown(s)));
        }
        // The unit: everything up to the next number (digits and '.' are ASCII, so this is a
        // char boundary).
        let unit_start = i;
        while i < bytes.len() && bytes[i] != b'.' && !bytes[i].is_ascii_digit() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(shown(s)));
        }
        let Some(&(_, per)) = NANOS_PER_UNIT.iter().find(|(u, _)| *u == unit) else {
            return Err(DurationError::UnknownUnit { input: shown(s), unit: shown(unit) });
        };
        // int < 10^20, per <= 3.6e12, frac < 10^18 and total <= max: no overflow in u128.
        total += int * per + frac * per / scale;
        if total > max {
            return Err(DurationError::TooLong(shown(s)));
        }
    }
    if total == 0 {
        return Err(DurationError::Zero(shown(s)));
    }
    let nanos = u64::try_from(total).map_err(|_| DurationError::TooLong(shown(s)))?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_duration(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn go_style_durations() {
        assert_eq!(ok("90s"), Duration::from_secs(90));
        assert_eq!(ok("6h"), Duration::from_secs(6 * 3600));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("2h45m30.5s"), Duration::from_millis((2 * 3600 + 45 * 60 + 30) * 1000 + 500));
        assert_eq!(ok("1ns"), Duration::from_nanos(1));
        assert_eq!(ok("3us"), Duration::from_micros(3));
        assert_eq!(ok("3\u{b5}s"), Duration::from_micros(3));
        assert_eq!(ok("3\u{3bc}s"), Duration::from_micros(3));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("0000000000000000000000000000001h"), Duration::from_secs(3600));
        assert_eq!(ok("0s1ns"), Duration::from_nanos(1));
    }

    #[test]
    fn bounds() {
        assert_eq!(ok(MAX_INTERVAL_GO), MAX_INTERVAL);
        assert_eq!(ok("366h8418h"), MAX_INTERVAL);
        assert_eq!(ok("527040m"), MAX_INTERVAL);
        assert!(matches!(parse_duration("8784h1ns"), Err(DurationError::TooLong(_))));
        assert!(matches!(parse_duration("8784.0000001h"), Err(DurationError::TooLong(_))));
        // Below a nanosecond truncates, as in Go.
        assert_eq!(ok("8784.0000000000001h"), MAX_INTERVAL);
        for zero in ["0s", "0h0m0s", "0.0000000001s", "0.1ns", "000ms"] {
            assert!(matches!(parse_duration(zero), Err(DurationError::Zero(_))), "{zero}");
        }
    }

    #[test]
    fn huge_numbers_and_many_components_are_errors_not_panics() {
        for s in [
            "99999999999999999999h",
            "18446744073709551616ns",
            "340282366920938463463374607431768211456h",
            &"9".repeat(10_000),
            &format!("{}h", "9".repeat(10_000)),
            &"2562047h".repeat(8),
            &"1h".repeat(100_000),
            "9223372036854775807ns",
            "9223372036854775808ns",
        ] {
            let e = parse_duration(s).unwrap_err();
            assert!(e.to_string().contains("at most 8784h"), "{s:?}: {e}");
        }
        let long_fraction = ok(&format!("1.{}h", "9".repeat(10_000)));
        assert!(long_fraction < Duration::from_secs(7200) && long_fraction > Duration::from_secs(7199));
        assert_eq!(ok(&"0s".repeat(100_000).replace("0s0s", "0s1s")), Duration::from_secs(50_000));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        for s in ["6", "1h30", "1.5", "0"] {
            assert!(matches!(parse_duration(s), Err(DurationError::MissingUnit(_))), "{s}");
        }
        for s in ["h", ".h", "1h.", "1h..5s", "abc", " 6h"] {
            assert!(matches!(parse_duration(s), Err(DurationError::Malformed(_))), "{s}");
        }
        for s in ["6x", "6H", "6hours", "1d", "6h ", "6\u{e9}", "6s\u{1f600}"] {
            assert!(matches!(parse_duration(s), Err(DurationError::UnknownUnit { .. })), "{s}");
        }
        for s in ["-6h", "+6h"] {
            assert!(matches!(parse_duration(s), Err(DurationError::Sign(_))), "{s}");
        }
        let e = parse_duration("6x").unwrap_err().to_string();
        assert!(e.contains("\"6x\"") && e.contains("unknown unit") && e.contains("greater than 0"), "{e}");
        let long = parse_duration(&"x".repeat(1000)).unwrap_err().to_string();
        assert!(long.len() < 400, "{long}");
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // A fixed-seed walk over short strings of the characters that matter.
        let alphabet: Vec<char> = "0123456789.nsumh+-x \u{b5}\u{3bc}".chars().collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let s: String = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            if let Ok(d) = parse_duration(&s) {
                assert!(d > Duration::ZERO && d <= MAX_INTERVAL, "{s:?}");
            }
        }
    }
}

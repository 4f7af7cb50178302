//! Date functions of sprig. Rendering reads no clock: `now` is the Unix epoch (UTC), so a
//! render is reproducible; Go's layout strings (`2006-01-02T15:04:05Z07:00`) are honoured.

use std::rc::Rc;

use super::{Imp, P, Row, s, to_int64};
use crate::helm::render::value::{Obj, Value};

/// The instant `now` returns.
const NOW: i64 = 0;

fn time(t: i64) -> Value {
    Value::Obj(Rc::new(Obj::Time(t)))
}

/// Days since 1970-01-01 to (year, month, day).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of a time.
pub fn time_year(t: i64) -> i64 {
    civil(t.div_euclid(86_400)).0
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Thursday", "Friday", "Saturday", "Sunday", "Monday", "Tuesday", "Wednesday"];

/// Go's `Time.Format` in UTC.
pub fn time_format(t: i64, layout: &str) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, mo, d) = civil(days);
    let (h, mi, se) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let wd = DAYS[days.rem_euclid(7) as usize];
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let month = MONTHS[(mo - 1) as usize];
    let mut out = String::new();
    let mut rest = layout;
    const TOKENS: &[&str] = &[
        "January",
        "Jan",
        "Monday",
        "Mon",
        "MST",
        "2006",
        "002",
        "__2",
        "_2",
        "01",
        "02",
        "03",
        "04",
        "05",
        "06",
        "15",
        "-07:00:00",
        "-070000",
        "-07:00",
        "-0700",
        "-07",
        "Z07:00:00",
        "Z070000",
        "Z07:00",
        "Z0700",
        "Z07",
        "PM",
        "pm",
        ".000000000",
        ".000000",
        ".000",
        ".999999999",
        ".999999",
        ".999",
        "1",
        "2",
        "3",
        "4",
        "5",
    ];
    while !rest.is_empty() {
        let Some(tok) = TOKENS.iter().find(|t| rest.starts_with(**t)) else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        let h12 = if h % 12 == 0 { 12 } else { h % 12 };
        let piece = match *tok {
            "January" => month.to_string(),
            "Jan" => month[..3].to_string(),
            "Monday" => wd.to_string(),
            "Mon" => wd[..3].to_string(),
            "MST" => "UTC".into(),
            "2006" => format!("{y:04}"),
            "06" => format!("{:02}", y.rem_euclid(100)),
            "002" => format!("{yday:03}"),
            "__2" => format!("{yday:>3}"),
            "_2" => format!("{d:>2}"),
            "01" => format!("{mo:02}"),
            "02" => format!("{d:02}"),
            "03" => format!("{h12:02}"),
            "04" => format!("{mi:02}"),
            "05" => format!("{se:02}"),
            "15" => format!("{h:02}"),
            "1" => mo.to_string(),
            "2" => d.to_string(),
            "3" => h12.to_string(),
            "4" => mi.to_string(),
            "5" => se.to_string(),
            "PM" => (if h >= 12 { "PM" } else { "AM" }).into(),
            "pm" => (if h >= 12 { "pm" } else { "am" }).into(),
            t if t.starts_with('Z') => "Z".into(),
            t if t.starts_with('-') => t.replace('7', "0").replace('-', "+"),
            t if t.starts_with(".0") => format!(".{}", "0".repeat(t.len() - 1)),
            _ => String::new(),
        };
        out.push_str(&piece);
        rest = &rest[tok.len()..];
    }
    out
}

/// `Time.String()`.
pub fn time_string(t: i64) -> String {
    time_format(t, "2006-01-02 15:04:05 -0700 MST")
}

/// RFC 3339, as `encoding/json` writes a time.
pub fn time_rfc3339(t: i64) -> String {
    time_format(t, "2006-01-02T15:04:05Z07:00")
}

fn when(v: &Value) -> i64 {
    match v {
        Value::Obj(o) => match &**o {
            Obj::Time(t) => *t,
            _ => NOW,
        },
        Value::Int(i) | Value::Int64(i) => *i,
        _ => NOW,
    }
}

/// Go's `time.Parse` for numeric layouts; `None` when the text does not fit.
fn parse_time(layout: &str, text: &str) -> Option<i64> {
    let (mut y, mut mo, mut d, mut h, mut mi, mut se) = (1i64, 1u32, 1u32, 0i64, 0i64, 0i64);
    let mut l = layout;
    let mut t = text;
    let num = |t: &mut &str, n: usize| -> Option<i64> {
        let digits: String = t.chars().take(n).collect();
        if digits.len() != n || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *t = &t[n..];
        digits.parse().ok()
    };
    while !l.is_empty() {
        if let Some(r) = l.strip_prefix("2006") {
            y = num(&mut t, 4)?;
            l = r;
        } else if let Some(r) = l.strip_prefix("01") {
            mo = num(&mut t, 2)? as u32;
            l = r;
        } else if let Some(r) = l.strip_prefix("02") {
            d = num(&mut t, 2)? as u32;
            l = r;
        } else if let Some(r) = l.strip_prefix("15") {
            h = num(&mut t, 2)?;
            l = r;
        } else if let Some(r) = l.strip_prefix("04") {
            mi = num(&mut t, 2)?;
            l = r;
        } else if let Some(r) = l.strip_prefix("05") {
            se = num(&mut t, 2)?;
            l = r;
        } else if let Some(r) = l.strip_prefix("Z07:00") {
            t = t.strip_prefix('Z')?;
            l = r;
        } else {
            let c = l.chars().next()?;
            t = t.strip_prefix(c)?;
            l = &l[c.len_utf8()..];
        }
    }
    if !t.is_empty() || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Go's `Duration.String()` for whole seconds.
fn duration_string(secs: i64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let neg = secs < 0;
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, (a / 60) % 60, a % 60);
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if h > 0 {
        out.push_str(&format!("{h}h{m}m"));
    } else if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

/// Go's `time.ParseDuration` (seconds precision).
fn parse_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        if n.is_empty() {
            return None;
        }
        rest = &rest[n.len()..];
        let unit: String = rest.chars().take_while(|c| !c.is_ascii_digit() && *c != '.').collect();
        rest = &rest[unit.len()..];
        let mult = match unit.as_str() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n.parse::<f64>().ok()? * mult;
    }
    Some(if neg { -(total as i64) } else { total as i64 })
}

fn st(x: String) -> Result<Value, String> {
    Ok(Value::string(x))
}

pub const FUNCS: &[Row] = &[
    ("now", &[], None, Imp::Pure(|_, _| Ok(time(NOW)))),
    ("date", &[P::Str, P::Any], None, Imp::Pure(|_, a| st(time_format(when(&a[1]), s(&a[0]))))),
    ("dateInZone", &[P::Str, P::Any, P::Str], None, Imp::Pure(|_, a| st(time_format(when(&a[1]), s(&a[0]))))),
    ("date_in_zone", &[P::Str, P::Any, P::Str], None, Imp::Pure(|_, a| st(time_format(when(&a[1]), s(&a[0]))))),
    ("htmlDate", &[P::Any], None, Imp::Pure(|_, a| st(time_format(when(&a[0]), "2006-01-02")))),
    ("htmlDateInZone", &[P::Any, P::Str], None, Imp::Pure(|_, a| st(time_format(when(&a[0]), "2006-01-02")))),
    ("unixEpoch", &[P::Any], None, Imp::Pure(|_, a| st(when(&a[0]).to_string()))),
    (
        "toDate",
        &[P::Str, P::Str],
        None,
        Imp::Pure(|_, a| Ok(time(parse_time(s(&a[0]), s(&a[1])).unwrap_or(-62_135_596_800)))),
    ),
    (
        "mustToDate",
        &[P::Str, P::Str],
        None,
        Imp::Pure(|_, a| {
            parse_time(s(&a[0]), s(&a[1]))
                .map(time)
                .ok_or_else(|| format!("parsing time {:?} as {:?}: cannot parse", s(&a[1]), s(&a[0])))
        }),
    ),
    (
        "dateModify",
        &[P::Str, P::Any],
        None,
        Imp::Pure(|_, a| Ok(time(when(&a[1]) + parse_duration(s(&a[0])).unwrap_or(0)))),
    ),
    (
        "date_modify",
        &[P::Str, P::Any],
        None,
        Imp::Pure(|_, a| Ok(time(when(&a[1]) + parse_duration(s(&a[0])).unwrap_or(0)))),
    ),
    (
        "mustDateModify",
        &[P::Str, P::Any],
        None,
        Imp::Pure(|_, a| {
            let d = parse_duration(s(&a[0])).ok_or_else(|| format!("time: invalid duration {:?}", s(&a[0])))?;
            Ok(time(when(&a[1]) + d))
        }),
    ),
    (
        "must_date_modify",
        &[P::Str, P::Any],
        None,
        Imp::Pure(|_, a| {
            let d = parse_duration(s(&a[0])).ok_or_else(|| format!("time: invalid duration {:?}", s(&a[0])))?;
            Ok(time(when(&a[1]) + d))
        }),
    ),
    ("ago", &[P::Any], None, Imp::Pure(|_, a| st(duration_string(NOW - when(&a[0]))))),
    ("duration", &[P::Any], None, Imp::Pure(|_, a| st(duration_string(to_int64(&a[0]))))),
    (
        "durationRound",
        &[P::Any],
        None,
        Imp::Pure(|_, a| {
            let secs = match &a[0] {
                Value::Str(x) => parse_duration(x).unwrap_or(0),
                other => to_int64(other) / 1_000_000_000,
            }
            .unsigned_abs();
            let (y, mo, d, h, m) = (secs / 31_536_000, secs / 2_592_000, secs / 86_400, secs / 3600, secs / 60);
            st(if y > 0 {
                format!("{y}y")
            } else if mo > 0 {
                format!("{mo}mo")
            } else if d > 0 {
                format!("{d}d")
            } else if h > 0 {
                format!("{h}h")
            } else if m > 0 {
                format!("{m}m")
            } else {
                format!("{secs}s")
            })
        }),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_layouts() {
        let t = days_from_civil(2024, 2, 29) * 86_400 + 13 * 3600 + 5 * 60 + 9;
        assert_eq!(time_format(t, "2006-01-02T15:04:05Z07:00"), "2024-02-29T13:05:09Z");
        assert_eq!(time_format(t, "Jan _2 3:04PM"), "Feb 29 1:05PM");
        assert_eq!(time_string(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(parse_time("2006-01-02", "2024-02-29"), Some(days_from_civil(2024, 2, 29) * 86_400));
        assert_eq!(duration_string(3723), "1h2m3s");
        assert_eq!(parse_duration("-1h30m"), Some(-5400));
    }
}

//! Go's `strconv.FormatFloat` forms (`%v`'s shortest `g` with `e+06` exponents, fixed `f`,
//! `e`) and `encoding/json`'s float text, built on Rust's shortest round-trip digits.

/// Shortest decimal digits of `x` (no sign) and the decimal point position: `x = 0.d1d2.. ×
/// 10^dp`. `bits` 32 rounds to the shortest form that reads back as the same `f32`.
fn shortest(x: f64, bits: u32) -> (Vec<u8>, i32) {
    let e = if bits == 32 { format!("{:e}", (x as f32).abs()) } else { format!("{:e}", x.abs()) };
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mant.bytes().filter(|c| c.is_ascii_digit()).collect();
    if digits.iter().all(|&d| d == b'0') {
        return (Vec::new(), 0);
    }
    (digits, exp + 1)
}

/// Digits of `x` rounded to `n` significant digits (or fewer when `fixed` counts decimals).
fn rounded(x: f64, sig: usize) -> (Vec<u8>, i32) {
    let e = format!("{:.*e}", sig.saturating_sub(1), x.abs());
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mant.bytes().filter(|c| c.is_ascii_digit()).collect();
    (digits, exp + 1)
}

/// `strconv.FormatFloat(x, fmt, prec, bits)` for `fmt` in `e`, `f`, `g`; `prec` `None` is -1
/// (shortest).
pub fn format_float(x: f64, fmt: char, prec: Option<usize>, bits: u32) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let neg = x.is_sign_negative();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    match fmt {
        'e' => {
            let (d, dp) = match prec {
                None => shortest(x, bits),
                Some(p) => rounded(x, p + 1),
            };
            let frac = prec.unwrap_or(d.len().saturating_sub(1));
            fmt_e(&mut out, &d, dp, frac);
        }
        'f' => match prec {
            None => {
                let (d, dp) = shortest(x, bits);
                let frac = (d.len() as i32 - dp).max(0) as usize;
                fmt_f(&mut out, &d, dp, frac);
            }
            Some(p) => out.push_str(&format!("{:.*}", p, x.abs())),
        },
        _ => {
            let (d, dp, eprec, digs) = match prec {
                None => {
                    let (d, dp) = shortest(x, bits);
                    let n = d.len();
                    (d, dp, 6i32, n)
                }
                Some(p) => {
                    let p = p.max(1);
                    let (mut d, dp) = rounded(x, p);
                    while d.len() > 1 && d.last() == Some(&b'0') {
                        d.pop();
                    }
                    let mut eprec = p as i32;
                    if eprec > d.len() as i32 && d.len() as i32 >= dp {
                        eprec = d.len() as i32;
                    }
                    let n = d.len();
                    (d, dp, eprec, n)
                }
            };
            let exp = dp - 1;
            if d.is_empty() {
                out.push('0');
            } else if exp < -4 || exp >= eprec {
                fmt_e(&mut out, &d, dp, digs.saturating_sub(1));
            } else {
                fmt_f(&mut out, &d, dp, (digs as i32 - dp).max(0) as usize);
            }
        }
    }
    out
}

fn fmt_e(out: &mut String, d: &[u8], dp: i32, frac: usize) {
    out.push(if d.is_empty() { '0' } else { d[0] as char });
    if frac > 0 {
        out.push('.');
        for i in 1..=frac {
            out.push(d.get(i).map(|&c| c as char).unwrap_or('0'));
        }
    }
    let exp = if d.is_empty() { 0 } else { dp - 1 };
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let a = exp.unsigned_abs();
    if a < 10 {
        out.push('0');
    }
    out.push_str(&a.to_string());
}

fn fmt_f(out: &mut String, d: &[u8], dp: i32, frac: usize) {
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(d.get(i).map(|&c| c as char).unwrap_or('0'));
        }
    } else {
        out.push('0');
    }
    if frac > 0 {
        out.push('.');
        for i in 0..frac as i32 {
            let idx = dp + i;
            out.push(if idx < 0 { '0' } else { d.get(idx as usize).map(|&c| c as char).unwrap_or('0') });
        }
    }
}

/// `encoding/json`'s float form.
pub fn json_float(x: f64) -> String {
    let a = x.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format_float(x, 'e', None, 64);
        // "1e-07" -> "1e-7"
        let b = s.as_bytes();
        let n = b.len();
        if n >= 4 && b[n - 4] == b'e' && b[n - 3] == b'-' && b[n - 2] == b'0' {
            return format!("{}{}", &s[..n - 2], &s[n - 1..]);
        }
        s
    } else {
        format_float(x, 'f', None, 64)
    }
}

#[cfg(test)]
mod tests {
    use super::super::gofmt::to_v;
    use super::super::value::Value;
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(to_v(&Value::Float(1000000.0)), "1e+06");
        assert_eq!(to_v(&Value::Float(100000.0)), "100000");
        assert_eq!(to_v(&Value::Float(3.0)), "3");
        assert_eq!(to_v(&Value::Float(0.1)), "0.1");
        assert_eq!(to_v(&Value::Float(1.5e-7)), "1.5e-07");
        assert_eq!(to_v(&Value::Float(-2.25)), "-2.25");
        assert_eq!(to_v(&Value::Float(1234567.0)), "1.234567e+06");
        assert_eq!(json_float(1e21), "1e+21");
        assert_eq!(json_float(1e20), "100000000000000000000");
        assert_eq!(json_float(1e-7), "1e-7");
        assert_eq!(json_float(8080.0), "8080");
        assert_eq!(format_float(1.1, 'g', None, 32), "1.1");
        assert_eq!(format_float(1.23456, 'f', Some(2), 64), "1.23");
        assert_eq!(format_float(1.0, 'e', Some(6), 64), "1.000000e+00");
    }
}

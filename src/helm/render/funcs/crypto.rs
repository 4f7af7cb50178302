//! Encodings and digests of sprig, and its generators of random secrets. Digests are real;
//! keys, certificates and password hashes are random in Helm on every render, so here they are
//! well-formed placeholders drawn from the render's random source (no chart derives an image
//! reference from them).

use base64::Engine;
use sha2::Digest;

use super::{Env, Imp, P, Row, int, s};
use crate::helm::render::value::Value;

fn st(x: String) -> Result<Value, String> {
    Ok(Value::string(x))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn b32enc(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for i in 0..8 {
            if i < chars {
                out.push(B32[((bits >> (35 - 5 * i)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b32dec(text: &str) -> Result<Vec<u8>, String> {
    let mut bits: u64 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for (i, c) in text.trim_end_matches('=').bytes().enumerate() {
        let v = B32.iter().position(|&x| x == c).ok_or_else(|| format!("illegal base32 data at input byte {i}"))?;
        bits = (bits << 5) | v as u64;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Ok(out)
}

fn random_b64(env: &mut Env, n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| env.next_u64() as u8).collect();
    b64().encode(bytes)
}

fn pem(env: &mut Env, kind: &str, n: usize) -> String {
    let body = random_b64(env, n);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or("")).collect();
    format!("-----BEGIN {kind}-----\n{}\n-----END {kind}-----\n", lines.join("\n"))
}

fn cert(env: &mut Env) -> Result<Value, String> {
    let c = pem(env, "CERTIFICATE", 600);
    let k = pem(env, "RSA PRIVATE KEY", 1190);
    Ok(Value::structure("sprig.certificate", vec![("Cert", Value::string(c)), ("Key", Value::string(k))]))
}

fn uuid(env: &mut Env) -> String {
    let a = env.next_u64();
    let b = env.next_u64();
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-{}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        ["8", "9", "a", "b"][(b & 3) as usize],
        &hex[17..20],
        &hex[20..32]
    )
}

fn bcrypt(env: &mut Env) -> String {
    const ALPHA: &[u8] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let tail: String = (0..53).map(|_| ALPHA[(env.next_u64() % 64) as usize] as char).collect();
    format!("$2a$10${tail}")
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &c in data {
        a = (a + c as u32) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

pub const FUNCS: &[Row] = &[
    ("b64enc", &[P::Str], None, Imp::Pure(|_, a| st(b64().encode(s(&a[0]))))),
    (
        "b64dec",
        &[P::Str],
        None,
        Imp::Pure(|_, a| {
            st(match b64().decode(s(&a[0])) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => e.to_string(),
            })
        }),
    ),
    ("b32enc", &[P::Str], None, Imp::Pure(|_, a| st(b32enc(s(&a[0]).as_bytes())))),
    (
        "b32dec",
        &[P::Str],
        None,
        Imp::Pure(|_, a| {
            st(match b32dec(s(&a[0])) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => e,
            })
        }),
    ),
    (
        "sha1sum",
        &[P::Str],
        None,
        Imp::Pure(|_, a| {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, s(&a[0]).as_bytes());
            st(hex::encode(d.as_ref()))
        }),
    ),
    ("sha256sum", &[P::Str], None, Imp::Pure(|_, a| st(hex::encode(sha2::Sha256::digest(s(&a[0]).as_bytes()))))),
    ("sha512sum", &[P::Str], None, Imp::Pure(|_, a| st(hex::encode(sha2::Sha512::digest(s(&a[0]).as_bytes()))))),
    ("adler32sum", &[P::Str], None, Imp::Pure(|_, a| st(adler32(s(&a[0]).as_bytes()).to_string()))),
    ("bcrypt", &[P::Str], None, Imp::Pure(|e, _| st(bcrypt(e)))),
    ("htpasswd", &[P::Str, P::Str], None, Imp::Pure(|e, a| st(format!("{}:{}", s(&a[0]), bcrypt(e))))),
    ("derivePassword", &[P::Any, P::Str, P::Str, P::Str, P::Str], None, Imp::Pure(|e, _| st(random_b64(e, 12)))),
    ("genPrivateKey", &[P::Str], None, Imp::Pure(|e, _| st(pem(e, "RSA PRIVATE KEY", 1190)))),
    ("genCA", &[P::Str, P::Int], None, Imp::Pure(|e, _| cert(e))),
    ("genCAWithKey", &[P::Str, P::Int, P::Str], None, Imp::Pure(|e, _| cert(e))),
    ("genSelfSignedCert", &[P::Str, P::List, P::List, P::Int], None, Imp::Pure(|e, _| cert(e))),
    ("genSelfSignedCertWithKey", &[P::Str, P::List, P::List, P::Int, P::Str], None, Imp::Pure(|e, _| cert(e))),
    ("genSignedCert", &[P::Str, P::List, P::List, P::Int, P::Any], None, Imp::Pure(|e, _| cert(e))),
    ("genSignedCertWithKey", &[P::Str, P::List, P::List, P::Int, P::Any, P::Str], None, Imp::Pure(|e, _| cert(e))),
    (
        "buildCustomCert",
        &[P::Str, P::Str],
        None,
        Imp::Pure(|_, a| {
            Ok(Value::structure("sprig.certificate", vec![("Cert", a[0].clone()), ("Key", a[1].clone())]))
        }),
    ),
    ("encryptAES", &[P::Str, P::Str], None, Imp::Pure(|e, a| st(random_b64(e, 16 + s(&a[1]).len())))),
    ("decryptAES", &[P::Str, P::Str], None, Imp::Pure(|_, _| st(String::new()))),
    ("randBytes", &[P::Int], None, Imp::Pure(|e, a| st(random_b64(e, int(&a[0]).max(0) as usize)))),
    ("uuidv4", &[], None, Imp::Pure(|e, _| st(uuid(e)))),
    ("getHostByName", &[P::Str], None, Imp::Pure(|_, _| st(String::new()))),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(b32enc(b"foobar"), "MZXW6YTBOI======");
        assert_eq!(b32dec("MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(adler32(b"Wikipedia"), 300286872);
        let mut e = Env::default();
        assert_eq!(uuid(&mut e).len(), 36);
    }
}

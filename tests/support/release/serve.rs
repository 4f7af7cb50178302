//! The release world's HTTP server: the Cincinnati graph API, the graph-data tarball and
//! the release signature store, one request per connection (`Connection: close`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

/// What the server answers from.
pub(super) struct State {
    pub(super) graph_data: super::graph::GraphData,
    /// The real stable-4.13/amd64 answer, rewritten to the synthetic payloads.
    pub(super) real_stable_413: Vec<u8>,
    /// (version, arch) -> (reference, digest).
    pub(super) payloads: BTreeMap<(String, String), (String, String)>,
    pub(super) urls: BTreeMap<String, String>,
    /// Payload digest hex -> signed message.
    pub(super) signatures: BTreeMap<String, Vec<u8>>,
    pub(super) tampered: Mutex<BTreeSet<String>>,
    pub(super) log: Mutex<Vec<String>>,
    pub(super) stop: AtomicBool,
}

/// Serves `state` on a free loopback port until `state.stop` is set (and one more connection
/// arrives to notice it); returns the address.
pub(super) fn listen(state: Arc<State>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind release world");
    let addr = listener.local_addr().expect("release world addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if state.stop.load(Ordering::SeqCst) {
                break;
            }
            if let Ok(conn) = conn {
                let st = state.clone();
                std::thread::spawn(move || serve(&st, conn));
            }
        }
    });
    addr
}

/// The signed message with its content altered: the first hex digit after `sha256:` in the
/// signed claim changed, so gpg reports a BAD signature (not a damaged message). `gpg --sign`
/// writes one compressed packet (old format, indeterminate length, ZIP or ZLIB) holding the
/// one-pass signature, literal data and signature packets; it is inflated, edited and
/// deflated again into the same form.
fn altered(sig: &[u8]) -> Vec<u8> {
    let (header, body) = sig.split_at(2);
    let mut inner = Vec::new();
    match header {
        [0xa3, 1] => flate2::read::DeflateDecoder::new(body).read_to_end(&mut inner),
        [0xa3, 2] => flate2::read::ZlibDecoder::new(body).read_to_end(&mut inner),
        _ => panic!("not a gpg --sign message with a compressed packet: {header:02x?}"),
    }
    .expect("inflate the signed message");
    let at = inner.windows(7).position(|w| w == b"sha256:").expect("a digest in the signed claim") + 7;
    inner[at] = if inner[at] == b'0' { b'1' } else { b'0' };
    let level = flate2::Compression::default();
    let mut out = header.to_vec();
    if header[1] == 1 {
        let mut z = flate2::write::DeflateEncoder::new(out, level);
        z.write_all(&inner).unwrap();
        out = z.finish().unwrap();
    } else {
        let mut z = flate2::write::ZlibEncoder::new(out, level);
        z.write_all(&inner).unwrap();
        out = z.finish().unwrap();
    }
    out
}

/// `a=1&b=x%3Ay` -> pairs, percent- and `+`-decoded.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match (b[i], s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'%', Some(c)) => {
                    out.push(c);
                    i += 2;
                }
                (b'+', _) => out.push(b' '),
                (c, _) => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

type Answer = (u16, &'static str, Vec<u8>);

/// A Cincinnati `GraphError` answer: `{"kind", "value"}`.
fn error(status: u16, kind: &str, value: &str) -> Answer {
    (status, "application/json", serde_json::to_vec(&json!({"kind": kind, "value": value})).unwrap())
}

/// The media type Cincinnati answers a graph request with, or `None` (406) when it cannot
/// satisfy `accept`. As Cincinnati's `validate_content_type` does: no Accept gets the v1
/// media type; `*`, `*/*`, `application/*` get `application/json`; `application/json` and
/// the v1 media type get themselves; anything else, lists included (the whole header is
/// compared, it is not parsed), is refused.
fn graph_media_type(accept: Option<&str>) -> Option<&'static str> {
    const V1: &str = "application/vnd.redhat.cincinnati.v1+json";
    match accept {
        None => Some(V1),
        Some("*" | "*/*" | "application/*") => Some("application/json"),
        Some("application/json") => Some("application/json"),
        Some(V1) => Some(V1),
        Some(_) => None,
    }
}

/// `GET graph?channel=C&arch=A`, answered as api.openshift.com's Cincinnati does: 406 for an
/// Accept it cannot satisfy, 400 without a `channel` (its one mandatory parameter), `arch`
/// defaulting to amd64, and a channel no release names gives 200 with no nodes (its channel
/// filter keeps the nodes whose channels metadata names the channel).
fn graph_answer(state: &State, accept: Option<&str>, query: &str) -> Answer {
    let Some(media_type) = graph_media_type(accept) else {
        return error(406, "invalid_content_type", "invalid Content-Type requested");
    };
    let params = query_pairs(query);
    let get = |k: &str| params.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone());
    let Some(channel) = get("channel") else {
        return error(400, "missing_params", "mandatory client parameters missing: channel");
    };
    let arch = get("arch").filter(|a| !a.is_empty()).unwrap_or_else(|| "amd64".into());
    if channel == "stable-4.13" && arch == "amd64" {
        return (200, media_type, state.real_stable_413.clone());
    }
    let payload = |v: &str| state.payloads.get(&(v.to_string(), arch.clone())).cloned();
    let graph = state
        .graph_data
        .graph(&channel, &arch, payload, &state.urls)
        .unwrap_or_else(|| json!({"version": 1, "nodes": [], "edges": [], "conditionalEdges": []}));
    (200, media_type, serde_json::to_vec(&graph).unwrap())
}

fn answer(state: &State, method: &str, target: &str, headers: &BTreeMap<String, String>) -> Answer {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if method != "GET" {
        return error(405, "method_not_allowed", "only GET is served");
    }
    if path == "/api/upgrades_info/v1/graph" {
        return graph_answer(state, headers.get("accept").map(String::as_str), query);
    }
    if path == "/api/upgrades_info/graph-data" {
        return (200, "application/gzip", state.graph_data.tarball.clone());
    }
    let signature = path
        .strip_prefix("/pub/openshift-v4/signatures/openshift/release/sha256=")
        .and_then(|rest| rest.strip_suffix("/signature-1"));
    if let Some(sig) = signature.and_then(|hex| Some((hex, state.signatures.get(hex)?))) {
        let (hex, bytes) = sig;
        let bytes = if state.tampered.lock().unwrap().contains(hex) { altered(bytes) } else { bytes.clone() };
        return (200, "application/octet-stream", bytes);
    }
    (404, "text/plain", b"not found\n".to_vec())
}

/// Handles one connection: one request, then `Connection: close`.
fn serve(state: &State, conn: TcpStream) {
    let Some(crate::support::Request { method, target, headers, .. }) = crate::support::read_request(&conn) else {
        return;
    };
    state.log.lock().unwrap().push(format!("{method} {target}"));
    let (status, content_type, body) = answer(state, &method, &target, &headers);
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = conn;
    let _ = out.write_all(head.as_bytes()).and_then(|_| out.write_all(&body));
}

//! A fault-injecting reverse proxy for a plain-HTTP registry. Clients talk to
//! [`Proxy::host`] as if it were the registry; the proxy forwards each request over its own
//! upstream connection (HTTP/1.1 keep-alive on both sides, Content-Length and chunked bodies,
//! streamed without buffering), rewrites `Location` headers naming the upstream, counts
//! requests and response body bytes per path, and applies [`Fault`] rules added at runtime:
//! error statuses, 429 with `Retry-After`, connections cut (FIN or RST) after some body
//! bytes, and stalls. Range requests pass through untouched.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a fault rule does to a matching request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer this status (e.g. 500, 502, 503) with an empty body; nothing is forwarded.
    Status(u16),
    /// Answer 429 with `Retry-After: seconds` and an empty body; nothing is forwarded.
    TooManyRequests {
        /// The `Retry-After` value.
        retry_after: u64,
    },
    /// Forward, send the response head and `after` body bytes, then close the connection:
    /// with a TCP reset when `reset`, else with a plain close (FIN). A body of at most
    /// `after` bytes passes whole (the rule still counts as fired).
    Cut {
        /// Body bytes sent before the cut.
        after: u64,
        /// Reset (RST) rather than close (FIN).
        reset: bool,
    },
    /// Stall for `duration`, then close. With `after: None` the request is read and nothing
    /// is sent; with `Some(k)` it is forwarded and the head and `k` body bytes are sent first.
    Stall {
        /// Body bytes sent before stalling, or `None` to send nothing at all.
        after: Option<u64>,
        /// How long to hold the connection before closing it.
        duration: Duration,
    },
}

/// A rule: requests whose method matches (any when `None`) and whose target (path and
/// query) contains `path_contains` get `action`, for the first `times` such requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// `GET`, `HEAD`, `PUT`, ... or any method.
    pub method: Option<String>,
    /// A substring of the request target, e.g. `/blobs/sha256:abc`.
    pub path_contains: String,
    /// How many matching requests it fires for.
    pub times: usize,
    /// What it does.
    pub action: FaultAction,
}

impl Fault {
    /// A rule for `method` (or any) on targets containing `path_contains`, firing `times`.
    pub fn new(method: Option<&str>, path_contains: &str, times: usize, action: FaultAction) -> Fault {
        Fault { method: method.map(String::from), path_contains: path_contains.into(), times, action }
    }
}

/// One request seen by the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// Request method.
    pub method: String,
    /// Request target as sent (path and query).
    pub target: String,
    /// The request's `Range` header, if any.
    pub range: Option<String>,
    /// Whether the request body came with chunked transfer encoding.
    pub chunked_request: bool,
    /// The response status sent to the client (0 when none was sent).
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes_sent: u64,
    /// The id of the fault rule that fired on it, if any.
    pub fault: Option<usize>,
}

impl Exchange {
    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// Counts for one path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathStats {
    /// Requests by method.
    pub methods: BTreeMap<String, usize>,
    /// Response body bytes sent to the client.
    pub bytes_sent: u64,
}

/// A snapshot of the proxy's counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// All requests.
    pub requests: usize,
    /// All response body bytes sent to clients.
    pub bytes_sent: u64,
    /// Per path (without query).
    pub paths: BTreeMap<String, PathStats>,
}

impl Stats {
    /// Requests with `method` on paths containing `path_contains`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.paths.iter().filter(|(p, _)| p.contains(path_contains)).filter_map(|(_, s)| s.methods.get(method)).sum()
    }
}

struct Rule {
    fault: Fault,
    fired: usize,
}

struct Shared {
    upstream: String,
    host: String,
    stop: AtomicBool,
    log: Mutex<Vec<Exchange>>,
    rules: Mutex<Vec<Rule>>,
}

/// A running proxy on 127.0.0.1; stops accepting when dropped.
pub struct Proxy {
    /// `127.0.0.1:<port>`: use it where the registry host would go.
    pub host: String,
    /// The registry behind it.
    pub upstream: String,
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl Proxy {
    /// Starts a proxy in front of the plain-HTTP registry at `upstream_host` (`host:port`).
    pub fn start(upstream_host: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Shared {
            upstream: upstream_host.to_string(),
            host: addr.to_string(),
            stop: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
            rules: Mutex::new(Vec::new()),
        });
        let sh = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let sh = sh.clone();
                    std::thread::spawn(move || {
                        let _ = serve(&sh, conn);
                    });
                }
            }
        });
        Proxy { host: addr.to_string(), upstream: upstream_host.to_string(), shared, addr }
    }

    /// `http://` plus [`Proxy::host`].
    pub fn base_url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// Adds a fault rule; returns its id for [`Proxy::fired`]. Rules are tried in the order
    /// added, and the first one with firings left applies.
    pub fn add_fault(&self, fault: Fault) -> usize {
        let mut rules = self.shared.rules.lock().unwrap();
        rules.push(Rule { fault, fired: 0 });
        rules.len() - 1
    }

    /// How many times rule `id` has fired.
    pub fn fired(&self, id: usize) -> usize {
        self.shared.rules.lock().unwrap()[id].fired
    }

    /// Disarms every rule (ids stay valid).
    pub fn clear_faults(&self) {
        for r in self.shared.rules.lock().unwrap().iter_mut() {
            r.fault.times = r.fired;
        }
    }

    /// Every request so far, oldest first.
    pub fn log(&self) -> Vec<Exchange> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Forgets the requests seen so far (rules are kept).
    pub fn reset_stats(&self) {
        self.shared.log.lock().unwrap().clear();
    }

    /// Counts per path and in total.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for e in self.shared.log.lock().unwrap().iter() {
            s.requests += 1;
            s.bytes_sent += e.bytes_sent;
            let p = s.paths.entry(e.path().to_string()).or_default();
            *p.methods.entry(e.method.clone()).or_default() += 1;
            p.bytes_sent += e.bytes_sent;
        }
        s
    }

    /// GET requests for the blob `digest` (in any repository).
    pub fn blob_gets(&self, digest: &str) -> usize {
        let suffix = format!("/blobs/{digest}");
        self.log().iter().filter(|e| e.method == "GET" && e.path().ends_with(&suffix)).count()
    }

    /// Response body bytes sent for the blob `digest` (in any repository).
    pub fn bytes_sent_for(&self, digest: &str) -> u64 {
        let suffix = format!("/blobs/{digest}");
        self.log().iter().filter(|e| e.path().ends_with(&suffix)).map(|e| e.bytes_sent).sum()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A message head: the start line and the header lines, as received.
struct Head {
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    /// Body framing; for responses pass the request method and the status.
    fn framing(&self, response: Option<(&str, u16)>) -> Framing {
        if let Some((method, status)) = response
            && (method == "HEAD" || status < 200 || status == 204 || status == 304)
        {
            return Framing::Empty;
        }
        if self.has_token("transfer-encoding", "chunked") {
            Framing::Chunked
        } else if let Some(n) = self.get("content-length").and_then(|v| v.trim().parse().ok()) {
            Framing::Length(n)
        } else if response.is_some() {
            Framing::UntilClose
        } else {
            Framing::Empty
        }
    }

    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut s = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        s.push_str("\r\n");
        out.write_all(s.as_bytes())
    }
}

/// Reads a message head; `None` on a clean end of stream before it.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line)?;
        if n == 0 {
            return if lines.is_empty() { Ok(None) } else { Err(io::ErrorKind::UnexpectedEof.into()) };
        }
        total += n;
        if total > 256 * 1024 {
            return Err(io::Error::other("message head too large"));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerate stray CRLF between messages
            }
            break;
        }
        lines.push(line);
    }
    let start = lines.remove(0);
    let headers = lines
        .into_iter()
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect();
    Ok(Some(Head { start, headers }))
}

/// Copies a body framed as `framing` from `src` to `dst`, calling `sent(n)` before writing
/// `n` payload bytes. Stops after `limit` payload bytes; returns whether the body was whole.
fn copy_body(
    src: &mut impl BufRead,
    dst: &mut impl Write,
    framing: Framing,
    mut limit: Option<u64>,
    sent: &mut dyn FnMut(u64),
) -> io::Result<bool> {
    match framing {
        Framing::Empty => Ok(true),
        Framing::Length(n) => copy_n(src, dst, Some(n), &mut limit, sent),
        Framing::UntilClose => copy_n(src, dst, None, &mut limit, sent),
        Framing::Chunked => loop {
            let mut line = String::new();
            if src.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| io::Error::other(format!("bad chunk size line {line:?}")))?;
            if limit == Some(0) {
                return Ok(false);
            }
            dst.write_all(line.as_bytes())?;
            if size == 0 {
                // Trailers, up to and including the empty line.
                loop {
                    let mut t = String::new();
                    if src.read_line(&mut t)? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    dst.write_all(t.as_bytes())?;
                    if t.trim().is_empty() {
                        dst.flush()?;
                        return Ok(true);
                    }
                }
            }
            if !copy_n(src, dst, Some(size), &mut limit, sent)? {
                return Ok(false);
            }
            let mut crlf = String::new();
            src.read_line(&mut crlf)?;
            dst.write_all(crlf.as_bytes())?;
        },
    }
}

/// Copies `len` bytes (or until end of stream when `None`), within the remaining `limit`.
fn copy_n(
    src: &mut impl BufRead,
    dst: &mut impl Write,
    len: Option<u64>,
    limit: &mut Option<u64>,
    sent: &mut dyn FnMut(u64),
) -> io::Result<bool> {
    let mut left = len.unwrap_or(u64::MAX);
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let budget = limit.unwrap_or(u64::MAX);
        if budget == 0 {
            dst.flush()?;
            return Ok(false);
        }
        let want = buf.len().min(left.min(budget) as usize);
        let n = src.read(&mut buf[..want])?;
        if n == 0 {
            if len.is_none() {
                break;
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        sent(n as u64);
        dst.write_all(&buf[..n])?;
        left -= n as u64;
        if let Some(l) = limit.as_mut() {
            *l -= n as u64;
        }
    }
    dst.flush()?;
    Ok(true)
}

/// How a response whose body was stopped short ends.
enum Cut {
    /// Close the connection, with a reset when asked.
    Close { reset: bool },
    /// Hold the connection this long, then close it.
    Stall(Duration),
}

/// An upstream connection that is still open and idle.
fn reusable(up: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    if up.set_nonblocking(true).is_err() {
        return false;
    }
    let idle = matches!(up.peek(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    up.set_nonblocking(false).is_ok() && idle
}

/// Serves one client connection until either side closes it.
fn serve(sh: &Shared, client: TcpStream) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut cin = BufReader::with_capacity(64 * 1024, client.try_clone()?);
    let mut cout = client;
    let mut upstream: Option<(BufReader<TcpStream>, TcpStream)> = None;
    while let Some(mut req) = read_head(&mut cin)? {
        let mut words = req.start.split_whitespace();
        let method = words.next().unwrap_or_default().to_string();
        let target = words.next().unwrap_or_default().to_string();
        let req_framing = req.framing(None);
        let expect_continue = req.has_token("expect", "100-continue");
        req.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("expect"));
        let idx = {
            let mut log = sh.log.lock().unwrap();
            log.push(Exchange {
                method: method.clone(),
                target: target.clone(),
                range: req.get("range").map(String::from),
                chunked_request: req_framing == Framing::Chunked,
                status: 0,
                bytes_sent: 0,
                fault: None,
            });
            log.len() - 1
        };
        let fault = {
            let mut rules = sh.rules.lock().unwrap();
            let hit = rules.iter_mut().enumerate().find(|(_, r)| {
                r.fired < r.fault.times
                    && r.fault.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(&method))
                    && target.contains(&r.fault.path_contains)
            });
            hit.map(|(id, r)| {
                r.fired += 1;
                (id, r.fault.action.clone())
            })
        };
        let record = |f: &dyn Fn(&mut Exchange)| f(&mut sh.log.lock().unwrap()[idx]);
        if let Some((id, _)) = fault {
            record(&|e| e.fault = Some(id));
        }
        if expect_continue {
            cout.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let (limit, after) = match fault.map(|f| f.1) {
            Some(FaultAction::Status(status)) => {
                copy_body(&mut cin, &mut io::sink(), req_framing, None, &mut |_| ())?;
                record(&|e| e.status = status);
                write!(cout, "HTTP/1.1 {status} Injected\r\nContent-Length: 0\r\n\r\n")?;
                continue;
            }
            Some(FaultAction::TooManyRequests { retry_after }) => {
                copy_body(&mut cin, &mut io::sink(), req_framing, None, &mut |_| ())?;
                record(&|e| e.status = 429);
                write!(
                    cout,
                    "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {retry_after}\r\nContent-Length: 0\r\n\r\n"
                )?;
                continue;
            }
            Some(FaultAction::Stall { after: None, duration }) => {
                std::thread::sleep(duration);
                return Ok(());
            }
            Some(FaultAction::Stall { after: Some(k), duration }) => (Some(k), Cut::Stall(duration)),
            Some(FaultAction::Cut { after, reset }) => (Some(after), Cut::Close { reset }),
            None => (None, Cut::Close { reset: false }),
        };

        // Forward the request over a live upstream connection.
        if !upstream.as_ref().is_some_and(|(_, w)| reusable(w)) {
            let s = TcpStream::connect(&sh.upstream)?;
            s.set_read_timeout(Some(Duration::from_secs(120)))?;
            upstream = Some((BufReader::with_capacity(64 * 1024, s.try_clone()?), s));
        }
        let (uin, uout) = upstream.as_mut().expect("upstream connection");
        // An upstream that answers early (say 401 to a large PUT) may stop reading the body:
        // still relay its answer, then close, as the rest of the client's body is unread.
        let sent_whole = req.write_to(uout).and_then(|_| copy_body(&mut cin, uout, req_framing, None, &mut |_| ()));
        let mut resp = loop {
            let head = match read_head(uin) {
                Ok(Some(head)) => head,
                Ok(None) => return sent_whole.and(Err(io::ErrorKind::UnexpectedEof.into())),
                Err(e) => return sent_whole.and(Err(e)),
            };
            let status = status_of(&head);
            if !(100..200).contains(&status) || status == 101 {
                break head;
            }
        };
        let status = status_of(&resp);
        let from = format!("http://{}", sh.upstream);
        for (k, v) in resp.headers.iter_mut() {
            if k.eq_ignore_ascii_case("location") && v.starts_with(&from) {
                *v = format!("http://{}{}", sh.host, &v[from.len()..]);
            }
        }
        let framing = resp.framing(Some((&method, status)));
        let keep_alive = sent_whole.is_ok()
            && framing != Framing::UntilClose
            && !req.has_token("connection", "close")
            && !resp.has_token("connection", "close");
        record(&|e| e.status = status);
        resp.write_to(&mut cout)?;
        let mut sent = |n: u64| record(&|e| e.bytes_sent += n);
        let whole = copy_body(uin, &mut cout, framing, limit, &mut sent)?;
        if !whole {
            match after {
                Cut::Close { reset: true } => socket2::SockRef::from(&cout).set_linger(Some(Duration::ZERO))?,
                Cut::Close { reset: false } => cout.shutdown(std::net::Shutdown::Both)?,
                Cut::Stall(duration) => std::thread::sleep(duration),
            }
            return Ok(());
        }
        if !keep_alive {
            return Ok(());
        }
    }
    Ok(())
}

fn status_of(head: &Head) -> u16 {
    head.start.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

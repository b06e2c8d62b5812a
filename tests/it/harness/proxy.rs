//! A fault-injecting HTTP/1.1 proxy for the registry and the token issuer, scripted per test.
//!
//! Each request from pkg is matched against the rules in order; the first rule that matches and
//! has uses left decides what happens (a 5xx, a 429 with `Retry-After`, a reset or truncated body,
//! a stall, a wrong `Content-Length`, a flipped byte, a 307 to a "CDN" on 127.0.0.2, a Range
//! header the server ignores, a rewritten body…). Requests no rule matches are forwarded as they
//! are. Every request is recorded (method, path, headers, time, the status answered) so tests can
//! assert that retries, resumes and redirects really happened.
//!
//! One connection carries one request (`Connection: close`), which keeps the proxy small and lets a
//! fault kill a connection without disturbing others.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Registry;

/// A response as the proxy holds it before sending (the body is always complete in memory).
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn set_header(&mut self, name: &str, value: &str) {
        self.remove_header(name);
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// Replaces the body and, when the registry sent one, the `Docker-Content-Digest` that goes
    /// with it (so only the rewrite itself is being tested, not the digest header).
    pub fn set_body(&mut self, body: Vec<u8>) {
        if self.header("docker-content-digest").is_some() {
            let digest = super::sha256_digest(&body);
            self.set_header("Docker-Content-Digest", &digest);
        }
        self.body = body;
    }
}

/// A request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// The path without the query.
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub at: Instant,
    /// The status the proxy answered with (0 when it answered nothing: a stall or a reset
    /// before the headers).
    pub status: u16,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Rewrite = Arc<dyn Fn(&mut Response) + Send + Sync>;

/// What to do with a matched request.
#[derive(Clone)]
pub enum Fault {
    /// Answer this without asking upstream.
    Reply(Response),
    /// Upstream's answer, then a TCP reset after `n` body bytes.
    ResetAfter(usize),
    /// Upstream's answer with its real `Content-Length`, but the connection closes cleanly after
    /// `n` body bytes.
    TruncateAfter(usize),
    /// Read the request, then say nothing for this long (or until the proxy stops).
    Stall(Duration),
    /// Send the headers and `n` body bytes, then say nothing for this long.
    StallAfter(usize, Duration),
    /// Upstream's answer with `Content-Length` off by this much (the body itself unchanged).
    WrongContentLength(i64),
    /// Upstream's answer with one byte of the body flipped (the middle one).
    CorruptByte,
    /// Wait this long, then forward.
    Delay(Duration),
    /// Forward without the `Range` header: a server that ignores ranges answers 200, whole.
    IgnoreRange,
    /// A 200 GET is answered with a 307 to the proxy's "CDN" on 127.0.0.2, which serves the body.
    RedirectToCdn,
    /// Answer with a 307 to the same URL, forever.
    RedirectLoop,
    /// Forward without `Authorization`: upstream answers with a fresh 401 challenge, as when a
    /// token expired mid-run.
    DropAuthorization,
    /// Send the body in chunks of this many bytes with a pause after each (slows pkg down so a
    /// test can act mid-download).
    Throttle(usize, Duration),
    /// Upstream's answer, changed by a function (body, headers, status).
    Rewrite(Rewrite),
    /// Hold each matching request until `Gather::new`'s count of them are in flight at once
    /// (then forward them all), or until its timeout (then forward, and say so): proves
    /// requests were made together without measuring time.
    Gather(Arc<Gather>),
    /// For each matching request, with `percent` chance, one of `faults`; else forwarded as it
    /// is. The dice are a seeded hash of the request (method, target, and whether it carries a
    /// token) and of how many times that same request came before, so one client's run meets
    /// the same faults whatever its threads' timing.
    Sometimes {
        percent: u64,
        seed: u64,
        faults: Arc<Vec<Fault>>,
        count: Arc<Mutex<HashMap<String, u64>>>,
    },
}

/// A barrier in the proxy (see [`Fault::Gather`]).
pub struct Gather {
    want: usize,
    timeout: Duration,
    /// (the requests arrived, by target: a retry is not another request; whether one gave up
    /// waiting)
    state: Mutex<(std::collections::HashSet<String>, bool)>,
    more: std::sync::Condvar,
}

impl Gather {
    pub fn new(want: usize, timeout: Duration) -> Arc<Gather> {
        Arc::new(Gather {
            want,
            timeout,
            state: Mutex::new((std::collections::HashSet::new(), false)),
            more: std::sync::Condvar::new(),
        })
    }

    /// Whether a request gave up waiting for the others (they were not in flight together).
    pub fn timed_out(&self) -> bool {
        self.state.lock().unwrap().1
    }

    fn wait(&self, target: &str) {
        let mut state = self.state.lock().unwrap();
        state.0.insert(target.to_owned());
        self.more.notify_all();
        let deadline = Instant::now() + self.timeout;
        while state.0.len() < self.want {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                state.1 = true;
                return;
            }
            state = self.more.wait_timeout(state, left).unwrap().0;
        }
    }
}

impl Fault {
    pub fn status(status: u16) -> Fault {
        Fault::Reply(Response::new(status))
    }

    /// A status with headers, e.g. 429 with `Retry-After`.
    pub fn status_with(status: u16, headers: &[(&str, &str)]) -> Fault {
        let mut r = Response::new(status);
        for (k, v) in headers {
            r.set_header(k, v);
        }
        Fault::Reply(r)
    }

    pub fn rewrite(f: impl Fn(&mut Response) + Send + Sync + 'static) -> Fault {
        Fault::Rewrite(Arc::new(f))
    }
}

/// How many requests a rule applies to.
#[derive(Clone, Copy, Debug)]
pub enum Times {
    Once,
    N(usize),
    Always,
}

struct Rule {
    method: Option<String>,
    path_contains: String,
    left: Option<usize>,
    fault: Fault,
}

struct Inner {
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    cdn_seen: Mutex<Vec<Seen>>,
    cdn_blobs: Mutex<HashMap<String, Vec<u8>>>,
    cdn_addr: String,
    realm_rewrite: Mutex<Option<(String, String)>>,
    tokens: Mutex<Vec<String>>,
    stop: AtomicBool,
    next_id: AtomicUsize,
}

/// The proxy; stops on drop.
pub struct Proxy {
    inner: Arc<Inner>,
    addr: String,
}

impl Proxy {
    /// Starts a proxy on 127.0.0.1 (a port of the OS's choice) forwarding to `upstream`
    /// (`HOST:PORT`), with its CDN on 127.0.0.2.
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds 127.0.0.1:0");
        let cdn = TcpListener::bind("127.0.0.2:0").expect("proxy CDN binds 127.0.0.2:0");
        let addr = listener.local_addr().unwrap().to_string();
        super::note_host(&addr);
        let inner = Arc::new(Inner {
            upstream: upstream.to_owned(),
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            cdn_seen: Mutex::new(Vec::new()),
            cdn_blobs: Mutex::new(HashMap::new()),
            cdn_addr: cdn.local_addr().unwrap().to_string(),
            realm_rewrite: Mutex::new(None),
            tokens: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            next_id: AtomicUsize::new(0),
        });
        for (listener, is_cdn) in [(listener, false), (cdn, true)] {
            let inner = Arc::clone(&inner);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if inner.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let inner = Arc::clone(&inner);
                    std::thread::spawn(move || {
                        let _ = if is_cdn {
                            serve_cdn(&inner, conn)
                        } else {
                            serve(&inner, conn)
                        };
                    });
                }
            });
        }
        Proxy { inner, addr }
    }

    /// `127.0.0.1:PORT`, to use as the registry part of a repository.
    pub fn host(&self) -> String {
        self.addr.clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.2:PORT`, where redirected blobs are served.
    pub fn cdn_host(&self) -> String {
        self.inner.cdn_addr.clone()
    }

    /// Adds a rule: requests whose method is `method` (any when empty) and whose path contains
    /// `path_contains` get `fault`, `times` times.
    pub fn on(&self, method: &str, path_contains: &str, times: Times, fault: Fault) -> &Self {
        let left = match times {
            Times::Once => Some(1),
            Times::N(n) => Some(n),
            Times::Always => None,
        };
        self.inner.rules.lock().unwrap().push(Rule {
            method: (!method.is_empty()).then(|| method.to_owned()),
            path_contains: path_contains.to_owned(),
            left,
            fault,
        });
        self
    }

    /// Removes every rule: from now on requests are forwarded as they are.
    pub fn clear(&self) {
        self.inner.rules.lock().unwrap().clear();
    }

    /// Replaces `from` by `to` in every `WWW-Authenticate` header upstream sends (to aim the
    /// realm at another proxy, or somewhere hostile).
    pub fn rewrite_realm(&self, from: &str, to: &str) {
        *self.inner.realm_rewrite.lock().unwrap() = Some((from.to_owned(), to.to_owned()));
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    /// Requests whose method is `method` (any when empty) and whose path contains `path_contains`.
    pub fn matching(&self, method: &str, path_contains: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| (method.is_empty() || s.method == method) && s.path.contains(path_contains))
            .collect()
    }

    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.matching(method, path_contains).len()
    }

    /// Requests the CDN on 127.0.0.2 received.
    pub fn cdn_seen(&self) -> Vec<Seen> {
        self.inner.cdn_seen.lock().unwrap().clone()
    }

    /// Every `token` / `access_token` value that went through this proxy in a JSON answer.
    pub fn tokens(&self) -> Vec<String> {
        self.inner.tokens.lock().unwrap().clone()
    }

    /// A readable list of the requests so far, for assertion messages.
    pub fn describe(&self) -> String {
        let start = self.seen().first().map(|s| s.at);
        self.seen()
            .iter()
            .map(|s| {
                let ms = start.map_or(0, |t| s.at.duration_since(t).as_millis());
                let range = s
                    .header("range")
                    .map(|r| format!(" [{r}]"))
                    .unwrap_or_default();
                let query = s
                    .query
                    .as_deref()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default();
                format!(
                    "+{ms}ms {} {}{query}{range} -> {}",
                    s.method, s.path, s.status
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        let _ = TcpStream::connect(&self.inner.cdn_addr);
    }
}

/// A registry behind a proxy, and its token issuer behind another: `registry`'s 401 challenges
/// name `token`'s URL as the realm.
pub struct Proxied {
    pub registry: Proxy,
    pub token: Proxy,
}

impl Proxied {
    pub fn start(registry: &Registry) -> Proxied {
        let realm = registry.issuer().realm();
        let issuer = realm
            .strip_prefix("http://")
            .and_then(|r| r.strip_suffix("/token"))
            .expect("issuer realm is http://HOST:PORT/token")
            .to_owned();
        let token = Proxy::start(&issuer);
        let proxy = Proxy::start(&registry.host());
        proxy.rewrite_realm(&realm, &format!("{}/token", token.url()));
        Proxied {
            registry: proxy,
            token,
        }
    }

    /// `127.0.0.1:PORT` of the registry proxy, the registry part of a repository.
    pub fn host(&self) -> String {
        self.registry.host()
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn path_and_query(&self) -> (String, Option<String>) {
        match self.target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (self.target.clone(), None),
        }
    }
}

/// A request or status line and the headers after it.
type Head = (String, Vec<(String, String)>);

fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut first = String::new();
    if reader.read_line(&mut first)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    Ok(Some((first.trim_end().to_owned(), headers)))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads a message body: by `Content-Length`, chunked, or (`to_eof`) until the peer closes.
fn read_body(
    reader: &mut impl BufRead,
    headers: &[(String, String)],
    to_eof: bool,
) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if header(headers, "transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::other("bad chunk size"))?;
            if size == 0 {
                let mut trailer = String::new();
                while reader.read_line(&mut trailer)? > 2 {
                    trailer.clear();
                }
                break;
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            let mut crlf = [0; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = header(headers, "content-length").and_then(|v| v.parse().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if to_eof {
        reader.read_to_end(&mut body)?;
    }
    Ok(body)
}

fn read_request(conn: &TcpStream) -> io::Result<Option<Request>> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let Some((line, headers)) = read_head(&mut reader)? else {
        return Ok(None);
    };
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("/").to_owned();
    let body = read_body(&mut reader, &headers, false)?;
    Ok(Some(Request {
        method,
        target,
        headers,
        body,
    }))
}

/// Sends `req` to `upstream` and reads the whole answer.
fn forward(upstream: &str, req: &Request, drop: &[&str]) -> io::Result<Response> {
    let mut conn = TcpStream::connect(upstream)?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    // The client's Host goes through, so absolute URLs upstream builds (an upload's Location)
    // lead back through the proxy.
    let host = header(&req.headers, "host").unwrap_or(upstream);
    let mut head = format!("{} {} HTTP/1.1\r\nHost: {host}\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        let lower = k.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host" | "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding"
        ) || drop.contains(&lower.as_str())
            || lower == "content-length"
        {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !req.body.is_empty() || matches!(req.method.as_str(), "PUT" | "POST" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(&req.body)?;
    let mut reader = BufReader::new(conn);
    let (line, headers) = read_head(&mut reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let no_body = req.method == "HEAD" || status == 204 || status == 304 || status < 200;
    let body = if no_body {
        Vec::new()
    } else {
        read_body(&mut reader, &headers, true)?
    };
    let headers = headers
        .into_iter()
        .filter(|(k, _)| {
            !matches!(
                k.to_ascii_lowercase().as_str(),
                "connection" | "keep-alive" | "transfer-encoding"
            )
        })
        .collect();
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// How the body of an answer is sent.
enum BodyPlan {
    Whole,
    Reset(usize),
    Truncate(usize),
    Stall(usize, Duration),
    Throttle(usize, Duration),
}

fn write_response(
    conn: &mut TcpStream,
    resp: &Response,
    head_only: bool,
    length: Option<i64>,
    how: BodyPlan,
    inner: &Inner,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        if k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let announced = match (head_only, resp.header("content-length")) {
        (true, Some(len)) => len.parse::<i64>().unwrap_or(0),
        _ => resp.body.len() as i64,
    } + length.unwrap_or(0);
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        announced.max(0)
    ));
    conn.write_all(head.as_bytes())?;
    if head_only {
        return conn.flush();
    }
    let body = &resp.body;
    match how {
        BodyPlan::Whole => conn.write_all(body)?,
        BodyPlan::Reset(n) => {
            conn.write_all(&body[..n.min(body.len())])?;
            conn.flush()?;
            // Give pkg time to read what was sent: the reset must come mid-body, not before it.
            std::thread::sleep(Duration::from_millis(200));
            reset(conn);
            return Ok(());
        }
        BodyPlan::Truncate(n) => {
            conn.write_all(&body[..n.min(body.len())])?;
            conn.flush()?;
            std::thread::sleep(Duration::from_millis(200));
            conn.shutdown(Shutdown::Both)?;
            return Ok(());
        }
        BodyPlan::Stall(n, d) => {
            conn.write_all(&body[..n.min(body.len())])?;
            conn.flush()?;
            stall(inner, d);
            return Ok(());
        }
        BodyPlan::Throttle(chunk, pause) => {
            for part in body.chunks(chunk.max(1)) {
                conn.write_all(part)?;
                conn.flush()?;
                std::thread::sleep(pause);
            }
        }
    }
    conn.flush()?;
    // Let the client read everything before the close.
    let _ = conn.shutdown(Shutdown::Write);
    let mut sink = [0u8; 512];
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}

/// Closes with a TCP reset (SO_LINGER 0), as a crashed server or middlebox does.
fn reset(conn: &TcpStream) {
    use std::os::fd::AsRawFd as _;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized `linger` value.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn stall(inner: &Inner, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !inner.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pick_fault(inner: &Inner, req: &Request, path: &str) -> Option<Fault> {
    let (method, target) = (req.method.as_str(), req.target.as_str());
    let mut rules = inner.rules.lock().unwrap();
    for rule in rules.iter_mut() {
        if rule.method.as_deref().is_some_and(|m| m != method)
            || !path.contains(&rule.path_contains)
        {
            continue;
        }
        match &mut rule.left {
            Some(0) => continue,
            Some(n) => *n -= 1,
            None => {}
        }
        if let Fault::Sometimes {
            percent,
            seed,
            faults,
            count,
        } = &rule.fault
        {
            // Whether it carries a token is part of the request: an unauthenticated probe
            // (answered 401 with a challenge) is made or not as the client's threads happen
            // to learn the realm first, and must not shift the dice of the requests after it.
            let authorized = req
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
            let key = format!("{method} {target} {authorized}");
            let n = {
                let mut count = count.lock().unwrap();
                let n = count.entry(key.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let request = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            let roll = splitmix(seed ^ splitmix(request ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
            if roll % 100 >= *percent || faults.is_empty() {
                return None;
            }
            return Some(faults[(roll / 100) as usize % faults.len()].clone());
        }
        return Some(rule.fault.clone());
    }
    None
}

/// A well-mixed 64-bit hash (SplitMix64's finalizer): the seeded dice of [`Fault::Sometimes`].
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn record(inner: &Inner, req: &Request, status: u16, cdn: bool) {
    let (path, query) = req.path_and_query();
    let seen = Seen {
        method: req.method.clone(),
        path,
        query,
        headers: req.headers.clone(),
        at: Instant::now(),
        status,
    };
    if cdn {
        inner.cdn_seen.lock().unwrap().push(seen);
    } else {
        inner.seen.lock().unwrap().push(seen);
    }
}

fn upstream_answer(inner: &Inner, req: &Request, drop: &[&str]) -> Response {
    let mut resp = forward(&inner.upstream, req, drop).unwrap_or_else(|e| {
        let mut r = Response::new(502);
        r.body = format!("proxy: upstream {}: {e}", inner.upstream).into_bytes();
        r
    });
    if let Some((from, to)) = inner.realm_rewrite.lock().unwrap().clone() {
        for (k, v) in resp.headers.iter_mut() {
            if k.eq_ignore_ascii_case("www-authenticate") {
                *v = v.replace(&from, &to);
            }
        }
    }
    if resp.status == 200
        && let Ok(json) = serde_json::from_slice::<serde_json::Value>(&resp.body)
    {
        for key in ["token", "access_token"] {
            if let Some(t) = json.get(key).and_then(|t| t.as_str()) {
                inner.tokens.lock().unwrap().push(t.to_owned());
            }
        }
    }
    resp
}

fn serve(inner: &Inner, mut conn: TcpStream) -> io::Result<()> {
    let Some(req) = read_request(&conn)? else {
        return Ok(());
    };
    let (path, _) = req.path_and_query();
    let head_only = req.method == "HEAD";
    let fault = pick_fault(inner, &req, &path);
    let mut how = BodyPlan::Whole;
    let mut length = None;
    let resp = match fault {
        None => upstream_answer(inner, &req, &[]),
        Some(Fault::Reply(r)) => r,
        Some(Fault::Stall(d)) => {
            record(inner, &req, 0, false);
            stall(inner, d);
            return Ok(());
        }
        Some(Fault::Delay(d)) => {
            stall(inner, d);
            upstream_answer(inner, &req, &[])
        }
        Some(Fault::Gather(gather)) => {
            gather.wait(&req.target);
            upstream_answer(inner, &req, &[])
        }
        Some(Fault::IgnoreRange) => upstream_answer(inner, &req, &["range"]),
        Some(Fault::DropAuthorization) => upstream_answer(inner, &req, &["authorization"]),
        Some(Fault::RedirectLoop) => {
            let mut r = Response::new(307);
            r.set_header("Location", &req.target);
            r
        }
        Some(Fault::RedirectToCdn) => {
            let up = upstream_answer(inner, &req, &[]);
            if up.status != 200 || req.method != "GET" {
                up
            } else {
                let id = inner.next_id.fetch_add(1, Ordering::SeqCst);
                let key = format!("/cdn/{id}{path}");
                inner.cdn_blobs.lock().unwrap().insert(key.clone(), up.body);
                let mut r = Response::new(307);
                r.set_header(
                    "Location",
                    &format!("http://{}{key}?X-Signature=signed-{id}", inner.cdn_addr),
                );
                r
            }
        }
        Some(Fault::CorruptByte) => {
            let mut r = upstream_answer(inner, &req, &[]);
            if !r.body.is_empty() {
                let mid = r.body.len() / 2;
                r.body[mid] ^= 0x01;
            }
            r
        }
        Some(Fault::WrongContentLength(delta)) => {
            length = Some(delta);
            upstream_answer(inner, &req, &[])
        }
        Some(Fault::ResetAfter(n)) => {
            how = BodyPlan::Reset(n);
            upstream_answer(inner, &req, &[])
        }
        Some(Fault::TruncateAfter(n)) => {
            how = BodyPlan::Truncate(n);
            upstream_answer(inner, &req, &[])
        }
        Some(Fault::StallAfter(n, d)) => {
            how = BodyPlan::Stall(n, d);
            upstream_answer(inner, &req, &[])
        }
        Some(Fault::Throttle(chunk, pause)) => {
            how = BodyPlan::Throttle(chunk, pause);
            upstream_answer(inner, &req, &[])
        }
        Some(Fault::Rewrite(f)) => {
            let mut r = upstream_answer(inner, &req, &[]);
            f(&mut r);
            r
        }
        // Resolved to one of its faults (or none) by `pick_fault`.
        Some(Fault::Sometimes { .. }) => upstream_answer(inner, &req, &[]),
    };
    record(inner, &req, resp.status, false);
    write_response(&mut conn, &resp, head_only, length, how, inner)
}

/// The "CDN": serves what [`Fault::RedirectToCdn`] stored, to anyone, without auth.
fn serve_cdn(inner: &Inner, mut conn: TcpStream) -> io::Result<()> {
    let Some(req) = read_request(&conn)? else {
        return Ok(());
    };
    let (path, _) = req.path_and_query();
    let body = inner.cdn_blobs.lock().unwrap().get(&path).cloned();
    let resp = match body {
        Some(body) => {
            let mut r = Response::new(200);
            r.set_header("Content-Type", "application/octet-stream");
            r.body = body;
            r
        }
        None => Response::new(404),
    };
    record(inner, &req, resp.status, true);
    write_response(
        &mut conn,
        &resp,
        req.method == "HEAD",
        None,
        BodyPlan::Whole,
        inner,
    )
}

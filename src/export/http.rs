//! The metrics endpoint: `/metrics` (Prometheus text format), `/healthz` and `/ready`, on a small
//! HTTP/1.1 server with threads of its own: an accept loop and a fixed pool of [`HANDLERS`]
//! handlers, fed through a queue of [`QUEUED`] connections. When the pool and the queue are full,
//! or the client's address already has [`PER_CLIENT`] connections there, new connections are
//! closed unread and counted: one client, however it reconnects or idles, holds at most
//! [`PER_CLIENT`] handlers, and a scrape from another finds one free. Request heads are read with `httparse` and
//! bounded in size, field count and time, so a misbehaving scraper can hold a handler for a few
//! seconds at most, and never the capture.
//! With a web config ([`super::webconfig`]) it speaks TLS and asks for basic authentication; the
//! file is read again when it changes. What it serves and where it counts come through
//! [`Exposition`]: the endpoint never names the metrics registry.

use super::webconfig::WebConfig;
use crossbeam_channel::{Receiver, TrySendError};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::thread;
use std::time::SystemTime;
use std::time::{Duration, Instant};

/// Connections served at once: the handler threads, started with the server.
pub const HANDLERS: usize = 4;
/// Accepted connections waiting for a handler; past this, new ones are closed unread.
pub const QUEUED: usize = 4;
/// Connections one client address may have queued or served at once; past this its new ones
/// are closed unread. Prometheus scrapes a target over one connection at a time.
pub const PER_CLIENT: usize = 2;
/// After a 431 that left the request unread, how long what the client still sends is read and
/// discarded, so that closing does not reset the connection and destroy the answer in the
/// client's buffers.
const LINGER: Duration = Duration::from_secs(2);
/// Largest request head read; a longer one gets 431.
const MAX_REQUEST: usize = 8 * 1024;
/// Most header fields a request head may have (httparse fills a fixed array of them); more get
/// 431, as a head past [`MAX_REQUEST`] does. A scraper sends a handful.
const MAX_HEADERS: usize = 64;
/// Time a client has, from when a handler takes its connection, for the TLS handshake and the
/// whole request head, however it trickles them.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Time from when a handler takes a connection until it is closed whatever it is doing: the
/// response has at least this minus [`REQUEST_DEADLINE`] to be taken.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(7);
/// Longest single wait on a socket, so that a stopping server is not held by a silent client.
const POLL: Duration = Duration::from_millis(250);

/// What the endpoint serves on `/metrics` and where it counts the connections it could not
/// serve normally; [`super::metrics::Metrics`] is the sensor's.
pub trait Exposition: Send + Sync + std::fmt::Debug {
    /// The Prometheus text exposition, refreshed.
    fn render(&self) -> Vec<u8>;
    /// Counts a connection closed unread because every handler was busy and the queue full, or
    /// its client already had [`PER_CLIENT`] connections in.
    fn rejected(&self);
    /// Counts a connection that got no normal answer.
    fn failed(&self, why: ConnFailure);
}

/// What the endpoint serves and when it should stop.
#[derive(Debug)]
pub struct HttpState {
    /// What `/metrics` serves, and where the connections are counted.
    pub metrics: Arc<dyn Exposition>,
    /// Capture is open and the pipeline runs: `/ready` answers 200.
    pub ready: AtomicBool,
    /// Stop serving.
    pub stop: AtomicBool,
    /// TLS and basic authentication, when a web config is given.
    pub web: Option<WebState>,
}

/// A web config and the file it came from, reloaded when the file changes.
#[derive(Debug)]
pub struct WebState {
    path: PathBuf,
    current: Mutex<(Arc<WebConfig>, Option<SystemTime>)>,
}

impl WebState {
    /// Loads `path` (errors name the file).
    pub fn load(path: PathBuf) -> Result<Self, super::webconfig::WebConfigError> {
        let cfg = WebConfig::load(&path)?;
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        Ok(WebState {
            path,
            current: Mutex::new((Arc::new(cfg), mtime)),
        })
    }

    /// The config in force, read again first when the file changed; a broken new version is
    /// logged and the old one kept.
    fn get(&self) -> Option<Arc<WebConfig>> {
        let mut cur = self.current.lock().ok()?;
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if mtime != cur.1 {
            match WebConfig::load(&self.path) {
                Ok(c) => {
                    tracing::info!(path = %self.path.display(), "web config reloaded");
                    *cur = (Arc::new(c), mtime);
                }
                Err(e) => {
                    tracing::error!(error = %e, "web config refused; the old one stays");
                    cur.1 = mtime;
                }
            }
        }
        Some(Arc::clone(&cur.0))
    }
}

/// Why a connection got no normal answer: the `reason` label of
/// `picket_http_connections_failed_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnFailure {
    /// The request (or TLS handshake) or the response passed its deadline.
    Timeout,
    /// The request head passed 8 KiB or 64 header fields; it got 431.
    TooLarge,
    /// The TLS handshake or a TLS record failed.
    Tls,
    /// Any other socket error (the client went away).
    Io,
}

impl ConnFailure {
    /// Every reason, in label order.
    pub const ALL: [ConnFailure; 4] = [
        ConnFailure::Timeout,
        ConnFailure::TooLarge,
        ConnFailure::Tls,
        ConnFailure::Io,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnFailure::Timeout => "timeout",
            ConnFailure::TooLarge => "too_large",
            ConnFailure::Tls => "tls",
            ConnFailure::Io => "io",
        }
    }
}

/// A running endpoint.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    state: Arc<HttpState>,
    acceptor: Option<thread::JoinHandle<()>>,
    handlers: Vec<thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves in new threads: one accepts, [`HANDLERS`] answer.
    pub fn start(addr: SocketAddr, state: Arc<HttpState>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut srv = HttpServer {
            addr,
            state: Arc::clone(&state),
            acceptor: None,
            handlers: Vec::with_capacity(HANDLERS),
        };
        // Made after `srv`, so on an error below the queue's ends are dropped first: the
        // handlers started so far see it closed and end, and dropping `srv` joins them.
        let (tx, rx) = crossbeam_channel::bounded::<(TcpStream, Ticket)>(QUEUED);
        for i in 0..HANDLERS {
            let (st, rx) = (Arc::clone(&state), rx.clone());
            let h = thread::Builder::new()
                .name(format!("picket-http-{i}"))
                .spawn(move || handler(&rx, &st))?;
            srv.handlers.push(h);
        }
        drop(rx);
        let clients = Arc::new(Clients::default());
        let acceptor = thread::Builder::new()
            .name("picket-http".into())
            .spawn(move || accept(&listener, &tx, &state, &clients))?;
        srv.acceptor = Some(acceptor);
        Ok(srv)
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        // The accept loop ends within its poll interval and drops the queue's sender; the
        // handlers then end within `POLL` (or at once when idle).
        if let Some(j) = self.acceptor.take() {
            let _ = j.join();
        }
        for h in self.handlers.drain(..) {
            let _ = h.join();
        }
    }
}

/// The client addresses with connections queued or being served, each held by a [`Ticket`]: at
/// most [`HANDLERS`] + [`QUEUED`] of them, so a fixed table.
#[derive(Debug, Default)]
struct Clients {
    slots: Mutex<[Option<IpAddr>; HANDLERS + QUEUED]>,
}

/// One connection's place in [`Clients`], given back when dropped.
struct Ticket {
    clients: Arc<Clients>,
    slot: usize,
}

impl Clients {
    /// A place for a connection from `ip`; None when the client has [`PER_CLIENT`] already
    /// (or, which cannot happen while the queue is bounded, every slot is taken).
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        let mut slots = self.slots.lock().ok()?;
        if slots.iter().filter(|s| **s == Some(ip)).count() >= PER_CLIENT {
            return None;
        }
        let slot = slots.iter().position(Option::is_none)?;
        slots[slot] = Some(ip);
        Some(Ticket {
            clients: Arc::clone(self),
            slot,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut slots) = self.clients.slots.lock() {
            slots[self.slot] = None;
        }
    }
}

/// Accepts connections and hands them to the handlers, never waiting for one: a connection that
/// finds the queue full, or whose client already has [`PER_CLIENT`] connections in, is closed at
/// once.
fn accept(
    listener: &TcpListener,
    tx: &crossbeam_channel::Sender<(TcpStream, Ticket)>,
    state: &HttpState,
    clients: &Arc<Clients>,
) {
    while !state.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let Some(ticket) = clients.admit(peer.ip()) else {
                    drop(stream);
                    state.metrics.rejected();
                    continue;
                };
                match tx.try_send((stream, ticket)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => state.metrics.rejected(),
                    Err(TrySendError::Disconnected(_)) => {
                        tracing::error!("metrics endpoint: every handler has ended");
                        return;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint accept failed");
                thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// One handler thread: serves queued connections one by one until the server stops; each
/// client's place is given back when its connection is done.
fn handler(rx: &Receiver<(TcpStream, Ticket)>, state: &HttpState) {
    while let Ok((stream, _ticket)) = rx.recv() {
        if state.stop.load(Ordering::Relaxed) {
            continue;
        }
        if let Err(why) = handle(stream, state) {
            state.metrics.failed(why);
        }
    }
}

/// A socket whose reads fail after one instant and writes after another, however the peer
/// trickles its bytes, and both as soon as the server stops.
struct Bounded<'a> {
    stream: TcpStream,
    read_until: Instant,
    write_until: Instant,
    stop: &'a AtomicBool,
}

impl Bounded<'_> {
    /// The next wait on the socket: at most `POLL`, and an error past `until` or when stopping.
    fn wait(&self, until: Instant) -> io::Result<Duration> {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || self.stop.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        Ok(left.min(POLL))
    }
}

/// Whether an error only means that a bounded wait ended.
fn waited(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let t = self.wait(self.read_until)?;
            self.stream.set_read_timeout(Some(t))?;
            match self.stream.read(buf) {
                Err(e) if waited(&e) => continue,
                r => return r,
            }
        }
    }
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let t = self.wait(self.write_until)?;
            self.stream.set_write_timeout(Some(t))?;
            match self.stream.write(buf) {
                Err(e) if waited(&e) => continue,
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// After an answer that left the request unread (a 431): sends FIN after the answer, then reads
/// and discards what the client still sends until it closes its side or [`LINGER`] passes
/// (within the connection deadline), so the close does not turn into a reset that would destroy
/// the answer before the client reads it.
fn linger(sock: &mut Bounded<'_>) {
    let _ = sock.stream.shutdown(Shutdown::Write);
    sock.read_until = (Instant::now() + LINGER).min(sock.write_until);
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = sock.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// What became of a request that was read.
enum Served {
    /// It got an answer.
    Answered,
    /// Its head passed [`MAX_REQUEST`]; it got 431.
    TooLarge,
}

/// Serves one connection within its deadlines (both start now, when a handler has taken it).
fn handle(stream: TcpStream, state: &HttpState) -> Result<(), ConnFailure> {
    let now = Instant::now();
    let io_failure = |e: &io::Error, tls: bool| match e.kind() {
        io::ErrorKind::TimedOut => ConnFailure::Timeout,
        // rustls reports handshake and record errors as invalid data.
        io::ErrorKind::InvalidData if tls => ConnFailure::Tls,
        _ => ConnFailure::Io,
    };
    stream
        .set_nonblocking(false)
        .map_err(|e| io_failure(&e, false))?;
    let sock = Bounded {
        stream,
        read_until: now + REQUEST_DEADLINE,
        write_until: now + CONNECTION_DEADLINE,
        stop: &state.stop,
    };
    let web = state.web.as_ref().and_then(WebState::get);
    let served = match web.as_ref().and_then(|w| w.tls()) {
        Some(tls) => {
            // The handshake happens in the first read and write, so the deadlines bound it too.
            let conn =
                rustls::ServerConnection::new(Arc::clone(tls)).map_err(|_| ConnFailure::Tls)?;
            let mut s = rustls::StreamOwned::new(conn, sock);
            let r = answer(&mut s, state, web.as_deref());
            if r.is_ok() {
                s.conn.send_close_notify();
                let _ = s.flush();
            }
            if matches!(r, Ok(Served::TooLarge)) {
                linger(&mut s.sock);
            }
            r.map_err(|e| io_failure(&e, true))?
        }
        None => {
            let mut s = sock;
            let r = answer(&mut s, state, web.as_deref());
            if matches!(r, Ok(Served::TooLarge)) {
                linger(&mut s);
            }
            r.map_err(|e| io_failure(&e, false))?
        }
    };
    match served {
        Served::Answered => Ok(()),
        Served::TooLarge => Err(ConnFailure::TooLarge),
    }
}

/// How reading a request head ended.
enum Head {
    /// httparse found it whole in the first this many bytes.
    Complete(usize),
    /// It passed [`MAX_REQUEST`] bytes or [`MAX_HEADERS`] fields.
    TooLarge,
    /// It is not an HTTP/1.x request head, or the client ended its side before the blank line.
    Malformed,
}

/// Reads a request head into `buf`, whose size is the limit, until httparse finds it whole.
/// The socket bounds the time.
fn read_head(stream: &mut impl Read, buf: &mut [u8]) -> io::Result<Head> {
    let mut len = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::Request::new(&mut headers).parse(&buf[..len]) {
            Ok(httparse::Status::Complete(n)) => return Ok(Head::Complete(n)),
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Ok(Head::TooLarge),
            Err(_) => return Ok(Head::Malformed),
        }
        if len == buf.len() {
            return Ok(Head::TooLarge);
        }
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(Head::Malformed);
        }
        len += n;
    }
}

/// Reads a request and answers it.
fn answer<S: Read + Write>(
    stream: &mut S,
    state: &HttpState,
    web: Option<&WebConfig>,
) -> io::Result<Served> {
    let mut buf = [0u8; MAX_REQUEST];
    match read_head(stream, &mut buf)? {
        Head::Complete(n) => route(stream, state, web, &buf[..n])?,
        Head::Malformed => respond(stream, 400, "text/plain", b"bad request\n")?,
        Head::TooLarge => {
            respond(
                stream,
                431,
                "text/plain",
                b"request header fields too large\n",
            )?;
            return Ok(Served::TooLarge);
        }
    }
    Ok(Served::Answered)
}

/// Answers a whole request head by its method and path.
fn route(
    stream: &mut impl Write,
    state: &HttpState,
    web: Option<&WebConfig>,
    head: &[u8],
) -> io::Result<()> {
    // Parsed whole once already by `read_head`; the borrow checker does not let that parse be
    // returned from its reading loop, so it is done again here, on at most 8 KiB.
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return respond(stream, 400, "text/plain", b"bad request\n");
    }
    if let Some(w) = web {
        let auth = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("authorization"))
            .map(|h| h.value);
        if !w.authorized(auth) {
            return respond(stream, 401, "text/plain", b"unauthorized\n");
        }
    }
    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return respond(stream, 405, "text/plain", b"method not allowed\n");
    }
    match path {
        "/metrics" => {
            let body = state.metrics.render();
            respond(
                stream,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
        }
        "/healthz" => respond(stream, 200, "text/plain", b"ok\n"),
        "/ready" => {
            if state.ready.load(Ordering::Relaxed) {
                respond(stream, 200, "text/plain", b"ready\n")
            } else {
                respond(stream, 503, "text/plain", b"not ready\n")
            }
        }
        "/" => respond(
            stream,
            200,
            "text/html; charset=utf-8",
            b"<html><body><h1>Picket</h1><p><a href=\"/metrics\">metrics</a></p></body></html>\n",
        ),
        _ => respond(stream, 404, "text/plain", b"not found\n"),
    }
}

fn respond(stream: &mut impl Write, code: u16, ctype: &str, body: &[u8]) -> io::Result<()> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let auth = if code == 401 {
        "WWW-Authenticate: Basic realm=\"picket\", charset=\"UTF-8\"\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::metrics::Metrics;

    fn state() -> Arc<HttpState> {
        Arc::new(HttpState {
            metrics: Arc::new(Metrics::new(1).unwrap()),
            ready: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            web: None,
        })
    }

    /// Sends a request and returns what came back (a reset after a refusal returns what was
    /// read before it; a server that never answers fails the test after 30 s).
    fn get(addr: SocketAddr, req: &str) -> String {
        get_within(addr, req, Duration::from_secs(30))
    }

    /// [`get`], failing the test if the answer has not ended within `limit`.
    fn get_within(addr: SocketAddr, req: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(req.as_bytes());
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no whole answer within {limit:?}");
            s.set_read_timeout(Some(left)).unwrap();
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The value of one series in the endpoint's metrics, read in-process.
    fn value(state: &HttpState, series: &str) -> f64 {
        let text = String::from_utf8(state.metrics.render()).unwrap();
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }

    /// Waits up to `secs` for `ok`; false if it never held.
    fn wait_until(secs: u64, mut ok: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if ok() {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// A slowloris client, the `n`th (each from its own loopback address): connects, then sends
    /// a request head a byte every 100 ms without ever ending it. The thread returns true once
    /// the server has closed the connection (a write fails), false if it is still open after
    /// 30 s.
    fn trickle(n: usize, addr: SocketAddr) -> thread::JoinHandle<bool> {
        let src = IpAddr::from([127, 0, 1, u8::try_from(n + 1).unwrap()]);
        let mut s = connect_from(src, addr).unwrap();
        thread::spawn(move || {
            let head = b"GET /metrics HTTP/1.1\r\nX-Slow: ";
            let end = Instant::now() + Duration::from_secs(30);
            for i in 0.. {
                let b = head.get(i).copied().unwrap_or(b'a');
                if s.write_all(&[b]).is_err() {
                    return true;
                }
                if Instant::now() > end {
                    return false;
                }
                thread::sleep(Duration::from_millis(100));
            }
            false
        })
    }

    /// Scrapes `/metrics` until it answers 200, all within `limit`. A connection turned away
    /// at once is tried again; one the server holds is not.
    fn scrape_within(addr: SocketAddr, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let r = get_within(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", left);
            if !r.is_empty() {
                assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
                return r;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// A reader that hands out one byte per read.
    struct OneByte<'a>(&'a [u8]);

    impl Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((&b, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = b;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn read_head_waits_for_the_blank_line_however_it_trickles() {
        let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nbody after the head";
        let mut buf = [0u8; MAX_REQUEST];
        let Head::Complete(n) = read_head(&mut OneByte(req), &mut buf).unwrap() else {
            panic!("not read whole");
        };
        assert_eq!(&buf[..n], &req[..n]);
        assert!(buf[..n].ends_with(b"\r\n\r\n"));
        // Bare line feeds end a head too.
        let Head::Complete(n) = read_head(&mut OneByte(b"GET / HTTP/1.0\n\n"), &mut buf).unwrap()
        else {
            panic!("bare LF head not read");
        };
        assert_eq!(n, 16);
        // The client ends its side before the blank line, or sends what is not HTTP.
        for bad in [
            &b"GET /metrics HTTP/1.1\r\nHost: x\r\n"[..],
            b"\x16\x03\x01\x02\x00",
        ] {
            let r = read_head(&mut OneByte(bad), &mut buf).unwrap();
            assert!(matches!(r, Head::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn read_head_stops_at_the_size_and_field_limits() {
        let mut buf = [0u8; MAX_REQUEST];
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_REQUEST));
        let r = read_head(&mut long.as_bytes(), &mut buf).unwrap();
        assert!(matches!(r, Head::TooLarge));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: a\r\n".repeat(MAX_HEADERS + 1)
        );
        assert!(many.len() < MAX_REQUEST);
        let r = read_head(&mut many.as_bytes(), &mut buf).unwrap();
        assert!(matches!(r, Head::TooLarge));
        let enough = format!("GET / HTTP/1.1\r\n{}\r\n", "X: a\r\n".repeat(MAX_HEADERS));
        let r = read_head(&mut enough.as_bytes(), &mut buf).unwrap();
        assert!(matches!(r, Head::Complete(n) if n == enough.len()));
    }

    #[test]
    fn answer_malformed_heads_get_400_and_too_many_fields_431() {
        let state = state();
        let srv = HttpServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&state)).unwrap();
        let a = srv.addr();
        assert!(get(a, "GET /metrics\r\n\r\n").starts_with("HTTP/1.1 400"));
        assert!(get(a, "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n").starts_with("HTTP/1.1 400"));
        assert!(get(a, "GET /healthz?x=1 HTTP/1.1\n\n").starts_with("HTTP/1.1 200"));
        // Read whole (under 8 KiB), so nothing is left unread and the 431 reaches the client.
        let many = format!(
            "GET /metrics HTTP/1.1\r\n{}\r\n",
            "X: a\r\n".repeat(MAX_HEADERS + 1)
        );
        let r = get(a, &many);
        assert!(r.starts_with("HTTP/1.1 431"), "{r}");
        // Counted once the handler has closed the connection, which the client may see first.
        let too_large = || {
            value(
                &state,
                "picket_http_connections_failed_total{reason=\"too_large\"}",
            )
        };
        assert!(wait_until(5, || too_large() == 1.0), "{}", too_large());
        drop(srv);
    }

    #[test]
    fn serves_metrics_health_ready_and_refuses_the_rest() {
        let state = state();
        let srv = HttpServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&state)).unwrap();
        let a = srv.addr();
        let m = get(a, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(m.starts_with("HTTP/1.1 200 OK"), "{m}");
        assert!(m.contains("picket_packets_total 0"), "{m}");
        assert!(get(a, "GET /healthz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert!(get(a, "GET /ready HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 503"));
        state.ready.store(true, Ordering::Relaxed);
        assert!(get(a, "GET /ready HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert!(get(a, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get(a, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        drop(srv);
    }

    #[test]
    fn answer_head_over_8_kib_gets_its_431_not_a_reset() {
        let state = state();
        let srv = HttpServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&state)).unwrap();
        let a = srv.addr();
        // A long header line, a 1 MB one, and a long request line: the client, which sends all
        // of it before reading, sees the 431 (the rest is read and discarded before the close).
        for (i, huge) in [
            format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000)),
            format!(
                "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
                "a".repeat(1 << 20)
            ),
            format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(100_000)),
        ]
        .iter()
        .enumerate()
        {
            let r = get(a, huge);
            assert!(r.starts_with("HTTP/1.1 431"), "{i}: {r:?}");
        }
        // The server still answers after the refusals, and counted them.
        assert!(get(a, "GET /healthz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        let too_large = || {
            value(
                &state,
                "picket_http_connections_failed_total{reason=\"too_large\"}",
            )
        };
        assert!(wait_until(10, || too_large() == 3.0), "{}", too_large());
        drop(srv);
    }

    /// A connection to `dst` from the loopback address `src`, as another client's would be.
    fn connect_from(src: IpAddr, dst: SocketAddr) -> io::Result<TcpStream> {
        use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};
        use std::os::fd::AsRawFd;
        let (IpAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
            panic!("IPv4 only");
        };
        let fd = socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )?;
        socket::bind(
            fd.as_raw_fd(),
            &SockaddrIn::from(std::net::SocketAddrV4::new(src, 0)),
        )?;
        socket::connect(fd.as_raw_fd(), &SockaddrIn::from(dst))?;
        Ok(TcpStream::from(fd))
    }

    /// One attacker connection, reconnecting as soon as it is closed: each connects from
    /// `src`, sends the start of a request head and holds it idle, until `stop`.
    fn hold_down(src: IpAddr, dst: SocketAddr, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
        thread::spawn(move || {
            let mut connections = 0;
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = connect_from(src, dst) else {
                    continue;
                };
                connections += 1;
                let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nX-Idle: ");
                let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
                let mut b = [0u8; 64];
                // Idle until the server closes it, then at once again.
                while !stop.load(Ordering::Relaxed) {
                    match s.read(&mut b) {
                        Ok(0) => break,
                        Err(e) if waited(&e) => {}
                        _ => break,
                    }
                }
            }
            connections
        })
    }

    #[test]
    fn accept_one_client_holding_16_connections_cannot_keep_another_from_its_scrapes() {
        let state = state();
        let srv = HttpServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&state)).unwrap();
        let a = srv.addr();
        let stop = Arc::new(AtomicBool::new(false));
        let attacker: IpAddr = "127.0.0.2".parse().unwrap();
        let held: Vec<_> = (0..16)
            .map(|_| hold_down(attacker, a, Arc::clone(&stop)))
            .collect();
        // The attacker has filled what it may (its connections are turned away past that).
        let rejected = || value(&state, "picket_http_connections_rejected_total");
        assert!(
            wait_until(20, || rejected() >= 14.0),
            "rejected {}",
            rejected()
        );
        // Every scrape of another client is answered, none turned away or held (30 s is a
        // failure bound, not a figure).
        for i in 0..10 {
            let r = get_within(
                a,
                "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Duration::from_secs(30),
            );
            assert!(r.starts_with("HTTP/1.1 200 OK"), "scrape {i}: {r:?}");
        }
        stop.store(true, Ordering::Relaxed);
        let tries: u64 = held.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(tries >= 16, "{tries}");
        drop(srv);
    }

    #[test]
    fn handle_slow_clients_filling_the_pool_hold_a_scrape_one_deadline_at_most() {
        let state = state();
        let srv = HttpServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&state)).unwrap();
        let a = srv.addr();
        let slow: Vec<_> = (0..HANDLERS).map(|i| trickle(i, a)).collect();
        // The scrape waits in the queue until the slow clients pass their request deadline; a
        // one-connection server would take one deadline per slow client.
        let m = scrape_within(a, REQUEST_DEADLINE + Duration::from_secs(5));
        assert!(m.contains("picket_http_connections_rejected_total"), "{m}");
        // A byte every 100 ms does not keep a connection past its deadline.
        for h in slow {
            assert!(h.join().unwrap(), "a slow client was never cut off");
        }
        // Each was cut at its deadline, or turned away by a full queue when the handlers had
        // not yet taken the others (a busy machine).
        let timeouts = value(
            &state,
            "picket_http_connections_failed_total{reason=\"timeout\"}",
        );
        let rejected = value(&state, "picket_http_connections_rejected_total");
        assert!(
            timeouts >= 1.0 && timeouts + rejected >= HANDLERS as f64,
            "timeouts {timeouts}, rejected {rejected}"
        );
        drop(srv);
    }

    #[test]
    fn accept_a_flood_past_the_queue_is_closed_at_once_and_counted() {
        let state = state();
        let srv = HttpServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&state)).unwrap();
        let a = srv.addr();
        let extra = 3;
        let slow: Vec<_> = (0..HANDLERS + QUEUED + extra)
            .map(|i| trickle(i, a))
            .collect();
        let rejected = || value(&state, "picket_http_connections_rejected_total");
        assert!(
            wait_until(20, || rejected() >= extra as f64),
            "rejected: {}",
            rejected()
        );
        // Once the handlers have cut the slow clients (two rounds at most), a scrape gets in.
        scrape_within(a, 2 * REQUEST_DEADLINE + Duration::from_secs(5));
        for h in slow {
            assert!(h.join().unwrap(), "a slow client was never cut off");
        }
        let timeouts = value(
            &state,
            "picket_http_connections_failed_total{reason=\"timeout\"}",
        );
        assert!(timeouts >= HANDLERS as f64, "timeouts: {timeouts}");
        assert!(
            timeouts + rejected() >= (HANDLERS + QUEUED + extra) as f64,
            "every slow client is counted once, as a timeout or a rejection"
        );
        drop(srv);
    }
}

//! The metrics endpoint: `/metrics` (Prometheus text format), `/healthz` and `/ready`, on a small
//! HTTP/1.1 server with its own thread. Requests are bounded in size and time, and connections are
//! served one at a time, so a misbehaving scraper can slow only itself, never the capture.
//! With a web config ([`super::webconfig`]) it speaks TLS and asks for basic authentication; the
//! file is read again when it changes.

use super::metrics::Metrics;
use super::webconfig::WebConfig;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::thread;
use std::time::SystemTime;
use std::time::{Duration, Instant};

/// Largest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// Time a client has to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a client has to take the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the endpoint serves and when it should stop.
#[derive(Debug)]
pub struct HttpState {
    /// The metrics.
    pub metrics: Arc<Metrics>,
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

/// A running endpoint.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    state: Arc<HttpState>,
    join: Option<thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves in a new thread.
    pub fn start(addr: SocketAddr, state: Arc<HttpState>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let st = Arc::clone(&state);
        let join = thread::Builder::new()
            .name("picket-http".into())
            .spawn(move || serve(&listener, &st))?;
        Ok(HttpServer {
            addr,
            state,
            join: Some(join),
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

fn serve(listener: &TcpListener, state: &HttpState) {
    while !state.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = handle(stream, state) {
                    tracing::debug!(error = %e, "metrics request failed");
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

/// Reads a request head (up to the blank line) within the size and time bounds.
fn read_head(stream: &mut impl Read) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= MAX_REQUEST || Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request too large or slow",
            ));
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

fn handle(stream: TcpStream, state: &HttpState) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    // Both bounds cover the TLS handshake too.
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let web = state.web.as_ref().and_then(WebState::get);
    match web.as_ref().and_then(|w| w.tls()) {
        Some(tls) => {
            let conn = rustls::ServerConnection::new(Arc::clone(tls)).map_err(io::Error::other)?;
            let mut s = rustls::StreamOwned::new(conn, stream);
            let r = answer(&mut s, state, web.as_deref());
            s.conn.send_close_notify();
            let _ = s.flush();
            r
        }
        None => {
            let mut s = stream;
            answer(&mut s, state, web.as_deref())
        }
    }
}

/// The `Authorization` header's value in a request head.
fn authorization(head: &[u8]) -> Option<&[u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|l| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        let colon = l.iter().position(|&b| b == b':')?;
        l[..colon]
            .eq_ignore_ascii_case(b"authorization")
            .then(|| &l[colon + 1..])
    })
}

fn answer<S: Read + Write>(
    stream: &mut S,
    state: &HttpState,
    web: Option<&WebConfig>,
) -> io::Result<()> {
    let head = match read_head(stream) {
        Ok(h) => h,
        Err(_) => return respond(stream, 400, "text/plain", b"bad request\n"),
    };
    if let Some(w) = web {
        if !w.authorized(authorization(&head)) {
            return respond(stream, 401, "text/plain", b"unauthorized\n");
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().unwrap_or(&[]);
    let path = parts.next().unwrap_or(&[]);
    let path = path.split(|&b| b == b'?').next().unwrap_or(&[]);
    if method != b"GET" && method != b"HEAD" {
        return respond(stream, 405, "text/plain", b"method not allowed\n");
    }
    match path {
        b"/metrics" => {
            let body = state.metrics.render();
            respond(
                stream,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
        }
        b"/healthz" => respond(stream, 200, "text/plain", b"ok\n"),
        b"/ready" => {
            if state.ready.load(Ordering::Relaxed) {
                respond(stream, 200, "text/plain", b"ready\n")
            } else {
                respond(stream, 503, "text/plain", b"not ready\n")
            }
        }
        b"/" => respond(
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

    /// Sends a request and returns what came back (a reset after a refusal returns what was
    /// read before it).
    fn get(addr: SocketAddr, req: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(req.as_bytes());
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn serves_metrics_health_ready_and_refuses_the_rest() {
        let state = Arc::new(HttpState {
            metrics: Arc::new(Metrics::new(1).unwrap()),
            ready: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            web: None,
        });
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
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        let r = get(a, &huge);
        assert!(r.is_empty() || r.starts_with("HTTP/1.1 400"), "{r}");
        // The server still answers after the refusal.
        assert!(get(a, "GET /healthz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        drop(srv);
    }
}

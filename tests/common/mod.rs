//! Helpers the integration tests share: writing a generated capture, replaying it with the real
//! binary, and holding `picket replay --listen` open to query its endpoint.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use picket_synth::{self as synth, Packet, PcapFormat};
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Writes packets, sorted by time, as a classic pcap in `dir`.
pub fn write_capture(dir: &Path, name: &str, mut packets: Vec<Packet>) -> PathBuf {
    packets.sort_by_key(|p| p.ts_ns);
    let p = dir.join(name);
    let f = std::fs::File::create(&p).expect("create capture");
    synth::write_pcap(f, PcapFormat::default(), packets).expect("write capture");
    p
}

/// Replays a capture (with extra options) and returns every event written.
pub fn replay(cap: &Path, extra: &[&str]) -> Vec<Value> {
    let args: Vec<&str> = ["--quiet"].iter().chain(extra).copied().collect();
    replay_output(cap, &args).0
}

/// Replays a capture with `args` (the summary on unless they say `--quiet`) and returns every
/// event written and what the replay printed on stdout; fails the test when the replay fails.
pub fn replay_output(cap: &Path, args: &[&str]) -> (Vec<Value>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ev = dir.path().join("ev.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["replay", "--events", ev.to_str().expect("utf-8 path")])
        .args(args)
        .arg(cap)
        .output()
        .expect("picket runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let events = std::fs::read_to_string(&ev)
        .expect("events file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    (events, String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The events of one type.
pub fn of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// The `flow` event of a client address.
pub fn flow_of<'a>(events: &'a [Value], client: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == "flow" && e["src_ip"] == client)
        .unwrap_or_else(|| panic!("no flow from {client}"))
}

/// Events as sorted lines, for comparing multisets.
pub fn sorted(events: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = events.iter().map(Value::to_string).collect();
    v.sort();
    v
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The status line and body of a plain-HTTP GET on loopback, or None when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

/// `picket replay --listen` held open with no capture: it serves its endpoint before it opens
/// its input, and its input is a FIFO that nobody writes. Killed when dropped.
pub struct Listening {
    child: Child,
    /// The loopback port of the endpoint.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Listening {
    /// Starts the sensor with extra options (such as `--web-config FILE`) and waits up to 20 s
    /// for its port to accept connections; fails with its stderr if it exits first.
    pub fn start<S: AsRef<OsStr>>(extra: &[S]) -> Listening {
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("capture.pcap");
        let made = Command::new("mkfifo").arg(&fifo).status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "mkfifo (coreutils) failed or is not installed"
        );
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_picket"))
            .args([
                "replay",
                "--quiet",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(extra)
            .arg(&fifo)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("picket replay starts");
        let mut l = Listening {
            child,
            port,
            _dir: dir,
        };
        l.wait_for("the endpoint", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        l
    }

    /// Waits up to 20 s for `ok`; fails with the sensor's stderr if it exits first.
    pub fn wait_for(&mut self, what: &str, mut ok: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if ok() {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("picket replay --listen exited ({st}) while waiting for {what}:\n{err}");
            }
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The body of a plain-HTTP `GET /metrics` answered with 200.
    pub fn metrics(&mut self) -> String {
        let port = self.port;
        let mut body = String::new();
        self.wait_for("a 200 on /metrics", || match http_get(port, "/metrics") {
            Some((status, b)) if status.contains(" 200 ") => {
                body = b;
                true
            }
            _ => false,
        });
        body
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The metrics text of a sensor that has read nothing, from its real endpoint.
pub fn scrape_metrics() -> String {
    Listening::start::<&str>(&[]).metrics()
}

// ---------------------------------------------------------------------------------------------
// Prerequisites: a test that cannot run here says so, and under CI it fails instead.

/// Whether a missing prerequisite fails the test instead of skipping it: under `CI=true`, and
/// under `PICKET_LIVE_TESTS=1`, which `scripts/check` sets after installing every tool.
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("PICKET_LIVE_TESTS").is_ok_and(|v| v == "1")
}

/// Whether a prerequisite of the test (`what`, which `how` provides) is `present`. When it is
/// not, the test fails under [`strict`]; elsewhere this prints a line starting `SKIPPED:` on
/// stderr and returns false, and the test returns at once.
pub fn require(what: &str, how: &str, present: bool) -> bool {
    if present {
        return true;
    }
    assert!(
        !strict(),
        "{what} is missing: {how}. (With CI=true or PICKET_LIVE_TESTS=1 a missing prerequisite \
         fails the test.)"
    );
    eprintln!("SKIPPED: {what} is missing: {how}");
    false
}

/// Whether the test runs as root, which `why` needs; see [`require`].
pub fn require_root(why: &str) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    require(&format!("root ({why})"), "run the tests as root", root)
}

/// Where an executable is: on PATH, or in the sbin folders PATH may lack.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The path of a tool the test runs, which `package` provides (`"the Debian package
/// tcpreplay"`); None when it is missing and the test is to return (see [`require`]).
pub fn require_tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = find_tool(name);
    let how = format!(
        "install {package}, or run `PICKET_LIVE_TESTS=1 scripts/ensure-deps`, which installs \
         every tool the tests use"
    );
    if require(&format!("`{name}`"), &how, found.is_some()) {
        found
    } else {
        None
    }
}

/// The labelled corpus shared beside the repository: its captures and the scorer that grades a
/// run on them.
pub struct Corpus {
    /// `../shared/corpus` (captures under `pcap/`, labels beside them).
    pub dir: PathBuf,
    /// `../shared/tools/score`, run with python3.
    pub score: PathBuf,
}

/// The shared corpus and its scorer; None when they are absent and the test is to return (see
/// [`require`]).
pub fn require_corpus() -> Option<Corpus> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let c = Corpus {
        dir: shared.join("corpus"),
        score: shared.join("tools/score"),
    };
    let present = c.dir.join("pcap").is_dir() && c.score.is_file();
    let what = format!(
        "the corpus {} or its scorer {}",
        c.dir.display(),
        c.score.display()
    );
    let how = "it is the project's shared folder, checked out as ../shared beside the repository \
               (CI lays a copy there)";
    require(&what, how, present).then_some(c)
}

/// A TCP connection to `port` on 127.0.0.1 from another loopback address, `src`: another
/// client, as the endpoint's per-client limit tells them apart.
pub fn connect_from(src: std::net::Ipv4Addr, port: u16) -> TcpStream {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::net::SocketAddrV4;
    use std::os::fd::AsRawFd;
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    socket::bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(src, 0))).expect("bind");
    let dst = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port);
    socket::connect(fd.as_raw_fd(), &SockaddrIn::from(dst)).expect("connect");
    TcpStream::from(fd)
}

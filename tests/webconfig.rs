//! `--web-config`: the metrics endpoint over TLS with basic authentication, checked with real
//! tools: certificates made by `openssl`, requests made by `curl`, the sensor the real binary.

mod common;

use common::Listening;
use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether `openssl` and `curl` are here; see `common::require`.
fn have_openssl_and_curl() -> bool {
    ["openssl", "curl"]
        .iter()
        .all(|t| common::require_tool(t, &format!("the Debian package {t}")).is_some())
}

fn run(args: &[&str], dir: &Path) {
    let o = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .output()
        .expect("runs");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate.
fn make_pki(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec![
        "openssl",
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
    ];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    run(&ca, dir);
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        let mut req = vec!["openssl", "req", "-subj"];
        let cn = format!("/CN={name}");
        req.push(&cn);
        req.extend(ec);
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        req.extend(["-keyout", &key, "-out", &csr]);
        run(&req, dir);
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext");
        let crt = format!("{name}.crt");
        let extfile = format!("{name}.ext");
        run(
            &[
                "openssl",
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &extfile,
                "-out",
                &crt,
            ],
            dir,
        );
    }
}

/// `picket replay --listen` with the web config, held open until dropped.
fn sensor(web: &Path) -> Listening {
    Listening::start(&[OsStr::new("--web-config"), web.as_os_str()])
}

/// curl's HTTP status for a request (0: no HTTP answer, e.g. a failed handshake).
fn curl(dir: &Path, url: &str, extra: &[&str]) -> u16 {
    let o = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(extra)
        .arg(url)
        .current_dir(dir)
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn tls_and_basic_auth_with_real_curl() {
    if !have_openssl_and_curl() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    make_pki(d);
    let hash = bcrypt::hash("correct horse", 10).expect("bcrypt");
    let web = d.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n\
             basic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .expect("web config");
    let s = sensor(&web);
    let url = format!("https://127.0.0.1:{}/metrics", s.port);
    let ca = ["--cacert", "ca.crt"];
    fn with<'a>(ca: &[&'a str], user: &'a str) -> Vec<&'a str> {
        let mut a = ca.to_vec();
        a.extend(["-u", user]);
        a
    }
    assert_eq!(curl(d, &url, &with(&ca, "prometheus:correct horse")), 200);
    assert_eq!(curl(d, &url, &with(&ca, "prometheus:wrong")), 401);
    assert_eq!(curl(d, &url, &with(&ca, "nobody:correct horse")), 401);
    assert_eq!(curl(d, &url, &ca), 401, "no credentials");
    // TLS 1.2 is below min_version; plain HTTP gets no answer.
    let mut old = with(&ca, "prometheus:correct horse");
    old.extend(["--tls-max", "1.2"]);
    assert_eq!(curl(d, &url, &old), 0);
    let plain = format!("http://127.0.0.1:{}/metrics", s.port);
    assert_eq!(curl(d, &plain, &["-u", "prometheus:correct horse"]), 0);
    // A certificate the client does not trust fails the handshake.
    assert_eq!(curl(d, &url, &["-u", "prometheus:correct horse"]), 0);
    // The body is the metrics.
    let o = Command::new("curl")
        .args([
            "-s",
            "--cacert",
            "ca.crt",
            "-u",
            "prometheus:correct horse",
            &url,
        ])
        .current_dir(d)
        .output()
        .expect("curl");
    assert!(String::from_utf8_lossy(&o.stdout).contains("picket_packets_total"));
    // The 401 asks for basic authentication.
    let o = Command::new("curl")
        .args(["-s", "-i", "--cacert", "ca.crt", &url])
        .current_dir(d)
        .output()
        .expect("curl");
    assert!(String::from_utf8_lossy(&o.stdout).contains("WWW-Authenticate: Basic"));
    drop(s);

    // Client certificates required: none is refused, one signed by the CA passes.
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    )
    .expect("web config");
    let s = sensor(&web);
    let url = format!("https://127.0.0.1:{}/metrics", s.port);
    assert_eq!(curl(d, &url, &ca), 0);
    let mut mtls = ca.to_vec();
    mtls.extend(["--cert", "client.crt", "--key", "client.key"]);
    assert_eq!(curl(d, &url, &mtls), 200);
    // The file is read again when it changes: now basic auth is asked for too.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n\
             basic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .expect("web config");
    assert_eq!(curl(d, &url, &mtls), 401);
    mtls.extend(["-u", "prometheus:correct horse"]);
    assert_eq!(curl(d, &url, &mtls), 200);
    drop(s);
}

/// A client that starts a TLS handshake and never finishes it: a record header announcing 512
/// bytes, then a byte every 100 ms. The thread returns true once the sensor has closed the
/// connection (a write fails), false if it is still open after 30 s.
fn stalled_handshake(n: u8, port: u16) -> std::thread::JoinHandle<bool> {
    // Each from its own loopback address: clients the per-client limit tells apart.
    let mut s = common::connect_from([127, 0, 1, n + 1].into(), port);
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .expect("record header");
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if s.write_all(&[0x01]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    })
}

#[test]
fn stalled_tls_handshakes_do_not_keep_curl_out() {
    use picket::export::http::{HANDLERS, REQUEST_DEADLINE};
    if !have_openssl_and_curl() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    make_pki(d);
    let web = d.join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .expect("web config");
    let s = sensor(&web);
    let port = s.port;
    // Every handler is held by a stalled handshake.
    let stalled: Vec<_> = (0..HANDLERS as u8)
        .map(|i| stalled_handshake(i, port))
        .collect();
    // Give the handlers a moment to take them.
    std::thread::sleep(Duration::from_millis(300));
    // curl waits in the queue until the handshakes pass their deadline, then gets its answer:
    // well within the deadline and a margin (a one-connection server would take one deadline
    // per stalled client). Tried again if it was turned away at once, having come before the
    // handlers took the stalled clients and found the queue full.
    let max = (REQUEST_DEADLINE + Duration::from_secs(5))
        .as_secs()
        .to_string();
    let url = format!("https://127.0.0.1:{port}/metrics");
    let scrape = || {
        Command::new("curl")
            .args(["-s", "--cacert", "ca.crt", "--max-time", &max, &url])
            .current_dir(d)
            .output()
            .expect("curl runs")
    };
    let mut o = scrape();
    // 28: curl's time limit, which a retry must not hide.
    if !o.status.success() && o.status.code() != Some(28) {
        o = scrape();
    }
    let body = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success() && body.contains("picket_packets_total"),
        "curl: {}\n{body}",
        o.status
    );
    for h in stalled {
        assert!(
            h.join().expect("thread"),
            "a stalled handshake was never cut off"
        );
    }
    // The sensor counted them: each stalled handshake was cut at its deadline, or (on a busy
    // machine, when the handlers had not yet taken the others) turned away by a full queue.
    let o = scrape();
    let body = String::from_utf8_lossy(&o.stdout).into_owned();
    let count = |series: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{body}"))
    };
    let timeouts = count("picket_http_connections_failed_total{reason=\"timeout\"}");
    let rejected = count("picket_http_connections_rejected_total");
    let http: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("picket_http_"))
        .collect();
    assert!(
        timeouts >= 1.0 && timeouts + rejected >= HANDLERS as f64,
        "timeouts {timeouts}, rejected {rejected}:\n{}",
        http.join("\n")
    );
}

#[test]
fn a_broken_web_config_stops_the_sensor_with_the_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  prometheus: not-a-hash\n").expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args([
            "replay",
            "--quiet",
            "--listen",
            "127.0.0.1:0",
            "--web-config",
        ])
        .arg(&web)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/demo.pcap"))
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("web.yml") && err.contains("not a bcrypt hash"),
        "{err}"
    );
}

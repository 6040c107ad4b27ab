//! The live sensor with real parts: a veth pair made for the test, `picket live` capturing on one
//! end, tcpreplay sending the demo capture into the other, the metrics endpoint scraped over HTTP
//! and by a real Prometheus server, signals for reload and shutdown.
//!
//! Needs root, `ip` (iproute2) and `tcpreplay`; the Prometheus part needs `prometheus` and
//! `promtool`. `.ci/run` installs them. Each test skips, saying why, when something is missing,
//! and fails instead under `CI=true` or `PICKET_LIVE_TESTS=1`.
#![cfg(feature = "live")]

use serde_json::Value;

mod common;
use common::{free_port, http_get};

/// Packets in the shipped demo capture.
fn demo_packets() -> usize {
    picket_synth::demo().len()
}

/// Flows in the shipped demo capture.
fn demo_flows() -> usize {
    picket_synth::demo_manifest().len()
}
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the live tests can run here: root, `ip` and `tcpreplay`, and the `extra` tools (each
/// with its Debian package). Missing ones fail the test under CI, or skip it saying why.
fn can_run(extra: &[(&str, &str)]) -> bool {
    if !common::require_root("veth pairs and raw capture") {
        return false;
    }
    [("ip", "iproute2"), ("tcpreplay", "tcpreplay")]
        .iter()
        .chain(extra)
        .all(|(tool, package)| {
            common::require_tool(tool, &format!("the Debian package {package}")).is_some()
        })
}

fn sh(cmd: &[&str]) {
    let st = Command::new(cmd[0])
        .args(&cmd[1..])
        .status()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(st.success(), "{cmd:?} failed");
}

/// A veth pair, removed on drop.
struct Veth {
    send: String,
    capture: String,
}

impl Veth {
    fn new(tag: &str) -> Self {
        // The process id keeps two test runs on one machine (worktrees, a
        // developer beside CI) off each other's links; names stay within 15 bytes.
        let id = std::process::id() % 100_000;
        let send = format!("pk{tag}{id}s");
        let capture = format!("pk{tag}{id}c");
        let _ = Command::new("ip").args(["link", "del", &send]).status();
        sh(&[
            "ip", "link", "add", &send, "type", "veth", "peer", "name", &capture,
        ]);
        for dev in [&send, &capture] {
            // No IPv6 on the test link: the kernel's own neighbour discovery stays off it.
            let _ = Command::new("sysctl")
                .args(["-qw", &format!("net.ipv6.conf.{dev}.disable_ipv6=1")])
                .status();
            sh(&["ip", "link", "set", dev, "mtu", "9000"]);
            sh(&["ip", "link", "set", dev, "up"]);
        }
        Veth { send, capture }
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.send])
            .status();
    }
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// The value of one series in a metrics text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

struct Sensor {
    child: Child,
    port: u16,
    events: PathBuf,
}

impl Sensor {
    fn start(dir: &Path, iface: &str, extra: &[&str]) -> Self {
        // Started as root, the sensor runs as nobody once the capture is open: for rotation
        // without logrotate's `create`, its events folder must be writable for that user.
        Self::start_in(dir, 0o777, iface, extra)
    }

    /// [`Sensor::start`] with the events folder set to `mode`.
    fn start_in(dir: &Path, mode: u32, iface: &str, extra: &[&str]) -> Self {
        let port = free_port();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let events = dir.join("live.jsonl");
        // The summary at exit only when its format is asked for.
        let quiet: &[&str] = if extra.contains(&"--format") {
            &[]
        } else {
            &["--quiet"]
        };
        let child = Command::new(env!("CARGO_BIN_EXE_picket"))
            .args(["live", "-i", iface, "--workers", "2"])
            .args(quiet)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--events", events.to_str().expect("utf-8 path")])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("picket live starts");
        let s = Sensor {
            child,
            port,
            events,
        };
        wait_for("/ready", 15, || {
            http_get(port, "/ready").is_some_and(|(status, _)| status.starts_with("HTTP/1.1 200"))
        });
        s
    }

    fn metrics(&self) -> String {
        http_get(self.port, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        sh(&["kill", &format!("-{sig}"), &self.child.id().to_string()]);
    }

    /// SIGTERM, then the exit status and stderr; the sensor must stop within a few seconds.
    fn stop(self) -> (Option<i32>, String) {
        let (code, err, _) = self.stop_with_output();
        (code, err)
    }

    /// [`Sensor::stop`], with what the sensor wrote on stdout (its summary).
    fn stop_with_output(mut self) -> (Option<i32>, String, String) {
        self.signal("TERM");
        let end = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                break st;
            }
            assert!(
                Instant::now() < end,
                "sensor did not stop within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        (status.code(), err, out)
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/demo.pcap")
}

fn send(iface: &str, pcap: &Path) {
    let out = Command::new("tcpreplay")
        .args(["-q", "-i", iface, "--topspeed"])
        .arg(pcap)
        .output()
        .expect("tcpreplay runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `flow` events of a file.
fn read_events(path: &Path) -> Vec<Value> {
    read_all(path)
        .into_iter()
        .filter(|e| e["event"] == "flow")
        .collect()
}

/// Every event of a file.
fn read_all(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Events without what depends on timing (timestamps, why the flow ended).
fn essence(events: &[Value]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for e in events {
        let mut e = e.clone();
        let obj = e.as_object_mut().expect("object");
        // Times and what derives from them (the flow id hashes the first packet's time; the
        // duration and the event's timestamp are times too).
        for k in [
            "ts_start",
            "ts_end",
            "end_reason",
            "flow_id",
            "duration",
            "timestamp",
        ] {
            obj.remove(k);
        }
        let key = format!(
            "{} {}:{} {}:{} {}",
            obj["transport"],
            obj["src_ip"],
            obj["src_port"],
            obj["dst_ip"],
            obj["dst_port"],
            obj.get("sni").map_or(String::new(), Value::to_string)
        );
        out.insert(key, e);
    }
    out
}

fn replay_events(dir: &Path) -> Vec<Value> {
    let ev = dir.join("replay.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["replay", "--quiet", "--events", ev.to_str().expect("utf-8")])
        .arg(demo())
        .output()
        .expect("replay runs");
    assert!(o.status.success());
    read_events(&ev)
}

#[test]
fn live_equals_replay_and_sigterm_loses_no_flow() {
    if !can_run(&[]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let veth = Veth::new("a");
    let sensor = Sensor::start(dir.path(), &veth.capture, &["--format", "json"]);
    send(&veth.send, &demo());
    wait_for("all the demo's packets counted", 20, || {
        metric(&sensor.metrics(), "picket_packets_total") == Some(demo_packets() as f64)
    });
    let m = sensor.metrics();
    assert_eq!(
        metric(&m, "picket_capture_dropped_packets_total{stage=\"kernel\"}"),
        Some(0.0)
    );
    assert_eq!(metric(&m, "picket_tls_client_hellos_total"), Some(22.0));
    // Stop at once: every flow is still open and must still be written.
    let events = sensor.events.clone();
    let (code, err, out) = sensor.stop_with_output();
    assert_eq!(code, Some(0), "{err}");
    let live = read_events(&events);
    let replayed = replay_events(dir.path());
    assert_eq!(live.len(), demo_flows(), "{err}");
    assert_eq!(essence(&live), essence(&replayed));
    // The summary at exit, as JSON: the same totals as the events and the counters.
    let summary: Value = serde_json::from_str(out.trim()).expect("one JSON summary on stdout");
    assert_eq!(summary["totals"]["flows"], demo_flows(), "{out}");
    assert_eq!(summary["totals"]["packets"], demo_packets(), "{out}");
    assert_eq!(summary["totals"]["stopped"], true, "{out}");
}

/// `--queues 2`: two capture handles in one PACKET_FANOUT group, each with its own reader and
/// worker. Both directions of every flow must reach the same queue (a flow split across two
/// workers would be written as two half flows, and its counts would differ from replay's), the
/// kernel's hash must actually spread the flows, and the events must equal replay's — the flows
/// classified from a DNS answer or a STUN exchange seen on the other queue included, at
/// tcpreplay's top speed.
#[test]
fn live_queues_keep_every_flow_on_one_worker_and_equal_replay() {
    if !can_run(&[]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let veth = Veth::new("q");
    let sensor = Sensor::start(dir.path(), &veth.capture, &["--queues", "2"]);
    send(&veth.send, &demo());
    wait_for("all the demo's packets counted", 20, || {
        metric(&sensor.metrics(), "picket_packets_total") == Some(demo_packets() as f64)
    });
    let m = sensor.metrics();
    let per_queue: Vec<f64> = (0..2)
        .map(|q| {
            let series = format!("picket_capture_queue_packets_total{{queue=\"{q}\"}}");
            metric(&m, &series).unwrap_or_else(|| panic!("{series} missing:\n{m}"))
        })
        .collect();
    assert_eq!(per_queue.iter().sum::<f64>(), demo_packets() as f64);
    assert!(
        per_queue.iter().all(|&p| p > 0.0),
        "the kernel's flow hash spread the demo's flows over both queues: {per_queue:?}"
    );
    for q in 0..2 {
        let series = format!("picket_capture_queue_dropped_packets_total{{queue=\"{q}\"}}");
        assert_eq!(metric(&m, &series), Some(0.0), "{series}");
    }
    assert_eq!(
        metric(&m, "picket_capture_dropped_packets_total{stage=\"kernel\"}"),
        Some(0.0)
    );
    assert_eq!(metric(&m, "picket_hint_updates_dropped_total"), Some(0.0));
    assert_eq!(metric(&m, "picket_hint_waits_given_up_total"), Some(0.0));
    let events = sensor.events.clone();
    let (code, err) = sensor.stop();
    assert_eq!(code, Some(0), "{err}");
    let live = read_events(&events);
    assert_eq!(live.len(), demo_flows(), "{err}");
    assert_eq!(essence(&live), essence(&replay_events(dir.path())));
}

/// Classic pcap files with Ethernet frames (what tcpreplay can put on a veth as they are).
fn ethernet_pcap(path: &Path) -> bool {
    let Ok(head) = std::fs::read(path).map(|b| b.get(..24).map(<[u8]>::to_vec)) else {
        return false;
    };
    let Some(h) = head else { return false };
    let link = match h[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => {
            u32::from_le_bytes([h[20], h[21], h[22], h[23]])
        }
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => {
            u32::from_be_bytes([h[20], h[21], h[22], h[23]])
        }
        _ => return false,
    };
    link == 1
}

/// The kernel's fanout hash itself, below the sensor: two handles of one PACKET_FANOUT group read
/// what tcpreplay sent (the demo, and every Ethernet capture of the shared corpus when it is
/// there), and each flow (the sensor's own key: both directions, VLANs, tunnel segment) must have
/// come in on one handle only.
#[test]
fn fanout_hands_both_directions_of_every_flow_to_one_queue() {
    use picket::capture::live::{LiveConfig, LiveSource};
    use picket::capture::{PacketSource, Read};
    use picket::decode::{Decoded, Decoder};
    use picket::flow::FlowKey;
    use std::collections::BTreeSet;
    if !can_run(&[]) {
        return;
    }
    let mut captures = vec![demo()];
    if let Some(c) = common::require_corpus() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(c.dir.join("pcap"))
            .expect("corpus folder")
            .map(|e| e.expect("entry").path())
            .filter(|p| ethernet_pcap(p))
            .collect();
        files.sort();
        captures.extend(files);
    }
    let veth = Veth::new("f");
    let cfg = LiveConfig {
        interface: veth.capture.clone(),
        bpf: None,
        // Headers are enough here; a small snaplen makes small ring blocks, so the rings hold
        // many of them (libpcap retires a block after a millisecond, full or not).
        snaplen: 4096,
        promisc: true,
        buffer_mib: 64,
        timeout_ms: 20,
    };
    let mut queues = LiveSource::open_queues(&cfg, 2, 0x7e57).expect("two queues open");
    // Read both queues in turn while tcpreplay sends, then until both are quiet.
    let mut sender = Command::new("tcpreplay")
        .args(["-q", "-i", &veth.send, "--topspeed"])
        .args(&captures)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpreplay runs");
    let mut seen: std::collections::HashMap<FlowKey, BTreeSet<usize>> =
        std::collections::HashMap::new();
    let mut got = [0u64; 2];
    let mut decoder = Decoder::new();
    let mut quiet = 0;
    let mut done = false;
    while quiet < 10 {
        done = done || sender.try_wait().expect("tcpreplay status").is_some();
        let mut idle = true;
        for (q, src) in queues.iter_mut().enumerate() {
            // Up to a few thousand frames from one queue, then the other's turn.
            for _ in 0..4096 {
                let Read::Packet(p) = src.read().expect("capture reads") else {
                    break;
                };
                idle = false;
                got[q] += 1;
                let meta = match decoder.decode(p.link, p.ts, p.orig_len, p.data) {
                    Ok(Decoded::Frame(m)) => m,
                    Ok(Decoded::Reassembled { meta, .. }) => meta,
                    Err(_) => continue,
                };
                seen.entry(FlowKey::of(&meta).0).or_default().insert(q);
            }
        }
        quiet = if done && idle { quiet + 1 } else { 0 };
    }
    let out = sender.wait_with_output().expect("tcpreplay finishes");
    let sent = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Successful packets:"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("tcpreplay: {}", String::from_utf8_lossy(&out.stderr)));
    let drops: u64 = queues.iter_mut().map(|s| s.drops().kernel).sum();
    eprintln!(
        "{} captures, {sent} packets sent, {} flows, per queue {got:?}, {drops} kernel drops",
        captures.len(),
        seen.len()
    );
    // Every packet sent was read or counted as dropped (a loaded machine may starve this
    // reader; what was read is what the check below covers).
    assert!(
        got[0] + got[1] + drops >= sent,
        "read {got:?} and {drops} dropped of {sent} sent"
    );
    assert!(
        drops * 10 < sent,
        "most packets read: {drops} of {sent} dropped"
    );
    assert!(got.iter().all(|&n| n > 0), "both queues got flows: {got:?}");
    let split: Vec<_> = seen.iter().filter(|(_, qs)| qs.len() > 1).collect();
    assert!(
        split.is_empty(),
        "{} of {} flows came in on both queues, e.g. {:?}",
        split.len(),
        seen.len(),
        split.first()
    );
    assert!(seen.len() >= picket_synth::demo_manifest().len());
}

#[test]
fn live_metrics_agree_with_events_and_reach_a_real_prometheus() {
    if !can_run(&[("prometheus", "prometheus"), ("promtool", "prometheus")]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let veth = Veth::new("b");
    // Short timeouts: every flow ends (and is counted) soon after the replay.
    let sensor = Sensor::start(
        dir.path(),
        &veth.capture,
        &["--tcp-idle", "2", "--udp-idle", "2", "--closing-grace", "1"],
    );
    let prom_port = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: picket\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            sensor.port
        ),
    )
    .expect("write config");
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    send(&veth.send, &demo());
    wait_for("every flow to end", 30, || {
        metric(&sensor.metrics(), "picket_flows_active") == Some(0.0)
            && read_events(&sensor.events).len() == demo_flows()
    });
    let m = sensor.metrics();
    // The exposition passes Prometheus's own linter.
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    let body = m.split("\r\n\r\n").nth(1).unwrap_or(&m).to_string();
    p.stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = p.wait_with_output().expect("promtool finishes");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let all = read_all(&sensor.events);
    assert_eq!(
        metric(&m, "picket_events_written_total"),
        Some(all.len() as f64)
    );
    let alerts = all.iter().filter(|e| e["event"] == "alert").count();
    assert_eq!(
        metric(&m, "picket_alerts_total{app=\"whatsapp\"}"),
        Some(
            all.iter()
                .filter(|e| e["event"] == "alert" && e["app"] == "whatsapp")
                .count() as f64
        )
    );
    assert!(alerts >= 3, "flagged apps alerted: {alerts}");
    let events = read_events(&sensor.events);
    assert_eq!(events.len(), demo_flows());
    let mut per_app: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events {
        *per_app
            .entry(e["app"].as_str().unwrap_or("none").to_string())
            .or_default() += 1;
    }
    for (app, n) in &per_app {
        let verdict = events
            .iter()
            .find(|e| e["app"].as_str().unwrap_or("none") == app)
            .and_then(|e| e["verdict"].as_str())
            .unwrap_or("none");
        let series = format!("picket_flows_total{{app=\"{app}\",verdict=\"{verdict}\"}}");
        assert_eq!(metric(&m, &series), Some(*n as f64), "{series}");
    }
    // A real Prometheus scraped it.
    let whatsapp = events.iter().filter(|e| e["app"] == "whatsapp").count() as f64;
    let query = "/api/v1/query?query=picket_flows_total%7Bapp%3D%22whatsapp%22%7D";
    let mut last = String::new();
    let end = Instant::now() + Duration::from_secs(30);
    let mut got = None;
    while Instant::now() < end && got.is_none() {
        if let Some((_, json)) = http_get(prom_port, query) {
            if let Ok(v) = serde_json::from_str::<Value>(&json) {
                got = v["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|&x| x == whatsapp);
            }
            last = json;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = prom.kill();
    let _ = prom.wait();
    assert_eq!(got, Some(whatsapp), "Prometheus answer: {last}");
    let (code, err) = sensor.stop();
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn live_sighup_with_broken_rules_keeps_the_old_ones() {
    sighup_reloads("c", &[]);
}

/// With `--queues 2` a reload is made once for every queue: counted once, logged once.
#[test]
fn live_queues_sighup_reloads_once_for_every_queue() {
    sighup_reloads("r", &["--queues", "2"]);
}

fn sighup_reloads(tag: &str, extra: &[&str]) {
    if !can_run(&[]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("mkdir");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for f in std::fs::read_dir(&shipped).expect("rules dir") {
        let f = f.expect("entry").path();
        if f.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&f, rules.join(f.file_name().expect("name"))).expect("copy");
        }
    }
    let veth = Veth::new(tag);
    let mut args = vec!["--rules", rules.to_str().expect("utf-8")];
    args.extend(extra);
    let sensor = Sensor::start(dir.path(), &veth.capture, &args);
    // Break a rule file and ask for a reload: refused, counted, the old rules stay.
    std::fs::write(
        rules.join("zoom.toml"),
        "id = \"zoom\"\nverdict = \"maybe\"\n",
    )
    .expect("write");
    sensor.signal("HUP");
    wait_for("the refused reload to be counted", 10, || {
        metric(
            &sensor.metrics(),
            "picket_rules_reloads_total{result=\"error\"}",
        ) == Some(1.0)
    });
    send(&veth.send, &demo());
    wait_for("all packets", 20, || {
        metric(&sensor.metrics(), "picket_packets_total") == Some(demo_packets() as f64)
    });
    // Log rotation: the events file is moved away; SIGHUP reopens the path.
    let rotated = dir.path().join("live.jsonl.1");
    std::fs::rename(&sensor.events, &rotated).expect("rotate");
    // A good policy file then reloads: Zoom becomes `observe`.
    std::fs::copy(shipped.join("zoom.toml"), rules.join("zoom.toml")).expect("restore");
    std::fs::write(
        rules.join("policy.toml"),
        "[verdicts]\nzoom = \"observe\"\n",
    )
    .expect("policy");
    sensor.signal("HUP");
    wait_for("the good reload", 10, || {
        metric(
            &sensor.metrics(),
            "picket_rules_reloads_total{result=\"ok\"}",
        ) == Some(1.0)
    });
    let events = sensor.events.clone();
    let (code, err) = sensor.stop();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err.matches("rule reload refused").count(), 1, "{err}");
    assert_eq!(err.matches("rules reloaded").count(), 1, "{err}");
    // Flows that ended before the rotation are in the old file (the reused 5-tuple's first
    // connection ends when the second one starts); the rest went to the reopened one.
    let before = read_events(&rotated);
    let mut ev = read_events(&events);
    assert!(
        before.len() < ev.len(),
        "{} before, {} after",
        before.len(),
        ev.len()
    );
    ev.extend(before);
    assert_eq!(ev.len(), demo_flows());
    // The broken reload changed nothing: the demo's Zoom flows were classified by the old rules.
    let zoom: Vec<&Value> = ev.iter().filter(|e| e["app"] == "zoom").collect();
    assert_eq!(
        zoom.len(),
        5,
        "two TLS flows, two DNS lookups and the media flow the first one names"
    );
    assert!(zoom.iter().all(|e| e["verdict"] == "flag"));
}

#[test]
fn live_bad_bpf_filter_is_a_clear_error() {
    if !can_run(&[]) {
        return;
    }
    let veth = Veth::new("d");
    let o = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args([
            "live",
            "-i",
            &veth.capture,
            "--bpf",
            "tcp port",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("picket runs");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("invalid BPF filter") && err.contains(&veth.capture),
        "{err}"
    );
    assert!(
        !err.contains("metrics on"),
        "nothing starts before the capture is open: {err}"
    );
}

/// The `Uid:`, `Gid:`, `Cap*:` and `NoNewPrivs:` lines of /proc/PID/status.
fn proc_status(pid: u32) -> BTreeMap<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc status")
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.starts_with("Cap") || ["Uid", "Gid", "Groups", "NoNewPrivs"].contains(k))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

#[test]
fn live_drops_root_and_every_capability_after_opening_the_capture() {
    if !can_run(&[]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let veth = Veth::new("e");
    let sensor = Sensor::start(dir.path(), &veth.capture, &[]);
    let st = proc_status(sensor.child.id());
    let nobody = "65534 65534 65534 65534";
    assert_eq!(st["Uid"], nobody, "{st:?}");
    assert_eq!(st["Gid"], nobody, "{st:?}");
    assert_eq!(st["Groups"], "", "{st:?}");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(st[cap], "0000000000000000", "{cap}: {st:?}");
    }
    assert_eq!(st["NoNewPrivs"], "1");
    // Every thread, not only the main one.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", sensor.child.id())).expect("tasks");
    for t in tasks.flatten() {
        let status = std::fs::read_to_string(t.path().join("status")).expect("task status");
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("CapEff:\t0000000000000000")),
            "{status}"
        );
        assert!(
            status.lines().any(|l| l.starts_with("Uid:\t65534")),
            "{status}"
        );
    }
    // The open capture still works without privileges.
    send(&veth.send, &demo());
    wait_for("all the demo's packets counted", 20, || {
        metric(&sensor.metrics(), "picket_packets_total") == Some(demo_packets() as f64)
    });
    let (code, err) = sensor.stop();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("privileges dropped"), "{err}");
    // A user that does not exist, and root itself, are refused before capturing.
    for (user, want) in [
        (
            "no-such-user-picket",
            "user 'no-such-user-picket' does not exist",
        ),
        ("root", "is root"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_picket"))
            .args(["live", "-i", &veth.capture, "--quiet", "--user", user])
            .args(["--listen", "127.0.0.1:0"])
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{err}");
    }
}

/// The owner's uid and the permission bits of a file.
fn owner_and_mode(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.mode() & 0o777)
}

// See: #15 (part 3)
#[test]
fn live_opens_outputs_before_dropping_root_and_rotates_with_logrotate_create_and_sighup() {
    if !can_run(&[("logrotate", "logrotate")]) {
        return;
    }
    let logrotate = common::find_tool("logrotate").expect("logrotate");
    let dir = tempfile::tempdir().expect("temp dir");
    let veth = Veth::new("l");
    let alerts = dir.path().join("alerts.jsonl");
    // A folder only root may write, as /var/log/picket is: the outputs are opened before the
    // privilege drop and handed to nobody.
    let sensor = Sensor::start_in(
        dir.path(),
        0o755,
        &veth.capture,
        &["--alerts", alerts.to_str().expect("utf-8")],
    );
    for f in [&sensor.events, &alerts] {
        assert_eq!(owner_and_mode(f), (65534, 0o640), "{}", f.display());
    }
    send(&veth.send, &demo());
    wait_for("all packets", 20, || {
        metric(&sensor.metrics(), "picket_packets_total") == Some(demo_packets() as f64)
    });
    // The README's rotation: logrotate moves the files aside and creates new ones for the
    // run-as user; SIGHUP makes the sensor reopen the paths.
    let conf = dir.path().join("picket.logrotate");
    std::fs::write(
        &conf,
        format!(
            "{} {} {{\n    rotate 1\n    create 0640 nobody nogroup\n    missingok\n}}\n",
            sensor.events.display(),
            alerts.display()
        ),
    )
    .expect("write");
    let o = Command::new(logrotate)
        .arg("-f")
        .arg("--state")
        .arg(dir.path().join("logrotate.state"))
        .arg(&conf)
        .output()
        .expect("logrotate runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rotated = dir.path().join("live.jsonl.1");
    assert!(rotated.exists(), "logrotate moved the events aside");
    sensor.signal("HUP");
    let events = sensor.events.clone();
    let (code, err) = sensor.stop();
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("cannot reopen"), "{err}");
    assert!(err.contains("reopened"), "{err}");
    assert_eq!(owner_and_mode(&events), (65534, 0o640));
    // Every flow once: those that ended before the rotation in the old file, the rest (ended
    // at the stop) in the new one.
    let before = read_events(&rotated);
    let after = read_events(&events);
    assert!(!after.is_empty(), "the reopened file was written");
    assert_eq!(before.len() + after.len(), demo_flows(), "{err}");
    for f in [&rotated, &events] {
        let t = std::fs::read_to_string(f).expect("read");
        assert!(t.ends_with('\n'), "whole lines in {}", f.display());
    }
}

//! The analyst's report (`--report`) and the JSON summary (`--format json`) through the real
//! binary on the demo capture: the JSON summary's numbers and the report's embedded data against
//! the events of the same run; the page drawn by headless Chromium (Debian's `chromium`) with no
//! console message, its screenshot kept in `target/test-artifacts/report.png`; server names and
//! file names that are HTML or script shown as text, running nothing. A generated capture with
//! a 1970 and a 2028 record: buckets sized from the bulk, the outliers listed apart, the alerts
//! first and by time, the calls in their table and on the timeline, the per-client view (its
//! screenshot in `target/test-artifacts/report-outliers.png`); the year on an axis that crosses
//! days; an app's colour the same in two reports; tables sorted by header clicks.
//!
//! `PICKET_LIVE_TESTS=1 scripts/ensure-deps` installs Chromium (`scripts/check` does this); when
//! it is missing the browser tests skip, naming the package, or fail under `CI=true` or
//! `PICKET_LIVE_TESTS=1`.

use picket_synth::{client_hello, ClientHelloSpec, Packet, Path as SynthPath, TcpConv};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{of, write_capture};

/// Chromium gets this long to draw a page before the test fails.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// The opening of the element that holds the report's data.
const DATA_OPEN: &str = r#"<script type="application/json" id="picket-data">"#;

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/demo.pcap")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// One replay with events, a report and the JSON summary.
struct Run {
    events: Vec<Value>,
    summary: Value,
    html: String,
    report: PathBuf,
    _dir: tempfile::TempDir,
}

fn replay(cap: &Path, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("report.html");
    let args: Vec<&str> = ["--format", "json", "--report", s(&report)]
        .iter()
        .chain(extra)
        .copied()
        .collect();
    let (events, stdout) = common::replay_output(cap, &args);
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    let summary = serde_json::from_str(&stdout).expect("the summary is JSON");
    let html = std::fs::read_to_string(&report).expect("report file");
    Run {
        events,
        summary,
        html,
        report,
        _dir: dir,
    }
}

/// The JSON embedded in a report.
fn embedded(html: &str) -> Value {
    let start = html.find(DATA_OPEN).expect("data element") + DATA_OPEN.len();
    let len = html[start..]
        .find("</script>")
        .expect("data element closed");
    serde_json::from_str(&html[start..start + len]).expect("embedded data is JSON")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn flow_bytes(e: &Value) -> u64 {
    u(&e["bytes_to_server"]) + u(&e["bytes_to_client"])
}

fn flow_packets(e: &Value) -> u64 {
    u(&e["packets_to_server"]) + u(&e["packets_to_client"])
}

/// Unix seconds of an RFC 3339 UTC time as the events write it.
fn unix_secs(ts: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| -> i64 { ts[r].parse().expect("digits") };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)) as u64
}

#[test]
fn json_summary_matches_the_events() {
    let run = replay(&demo(), &[]);
    let flows = of(&run.events, "flow");
    let alerts = of(&run.events, "alert");
    let j = &run.summary;

    let mut apps: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for f in &flows {
        if let Some(a) = f["app"].as_str() {
            apps.entry(a).or_default().push(f);
        }
    }
    let listed: BTreeSet<&str> = j["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| a["app"].as_str().expect("app id"))
        .collect();
    assert_eq!(listed, apps.keys().copied().collect(), "{j}");
    for a in j["apps"].as_array().expect("apps") {
        let id = a["app"].as_str().expect("app id");
        let fl = &apps[id];
        assert_eq!(u(&a["flows"]), fl.len() as u64, "{id}");
        assert_eq!(
            u(&a["bytes"]),
            fl.iter().map(|f| flow_bytes(f)).sum::<u64>(),
            "{id}"
        );
        let clients: BTreeSet<&str> = fl.iter().filter_map(|f| f["src_ip"].as_str()).collect();
        assert_eq!(u(&a["clients"]), clients.len() as u64, "{id}");
        assert_eq!(a["clients_capped"], false);
        assert_eq!(a["verdict"], fl[0]["verdict"], "{id}");
        let n = alerts.iter().filter(|e| e["app"] == id).count();
        assert_eq!(u(&a["alerts"]), n as u64, "{id}");
    }
    // Flagged apps first, then by flows.
    let order: Vec<(bool, u64)> = j["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| (a["verdict"] != "flag", u64::MAX - u(&a["flows"])))
        .collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");

    let none: Vec<&&Value> = flows.iter().filter(|f| f.get("app").is_none()).collect();
    assert_eq!(u(&j["no_app"]["flows"]), none.len() as u64);
    assert_eq!(
        u(&j["no_app"]["bytes"]),
        none.iter().map(|f| flow_bytes(f)).sum::<u64>()
    );
    let clients: BTreeSet<&str> = none.iter().filter_map(|f| f["src_ip"].as_str()).collect();
    assert_eq!(u(&j["no_app"]["clients"]), clients.len() as u64);

    let t = &j["totals"];
    assert_eq!(u(&t["flows"]), flows.len() as u64);
    assert_eq!(u(&t["flows"]), 30, "pcaps/README.md");
    let hellos = flows
        .iter()
        .filter(|f| f.get("tls_version").is_some())
        .count();
    assert_eq!(u(&t["hellos"]), hellos as u64);
    let in_flows: u64 = flows.iter().map(|f| flow_packets(f)).sum();
    assert_eq!(u(&t["decoded"]), in_flows);
    let skipped = t["skipped"].as_object().expect("skipped by reason");
    assert!(skipped.contains_key("not_ip") && skipped.contains_key("malformed_udp"));
    assert_eq!(
        skipped.len(),
        picket::decode::Skip::ALL.len(),
        "every reason, zeros included"
    );
    let skipped: u64 = skipped.values().map(u).sum();
    assert_eq!(u(&t["packets"]), in_flows + skipped);
    assert_eq!(u(&t["packets"]), 1825, "pcaps/README.md");
    assert_eq!(u(&t["decode_errors"]), 0);
    let evicted = flows
        .iter()
        .filter(|f| f["end_reason"] == "evicted")
        .count();
    assert_eq!(u(&t["evicted"]), evicted as u64);
    assert_eq!(u(&t["files"]), 1);
    assert_eq!(t["errors"], serde_json::json!([]));
    assert_eq!(t["stopped"], false);
    assert!(u(&j["workers"]) >= 1);
    assert!(j["elapsed_secs"].as_f64().expect("elapsed") > 0.0);
}

#[test]
fn json_summary_goes_to_stderr_when_the_events_take_stdout() {
    let o = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["replay", "--format", "json", "--events", "-"])
        .arg(demo())
        .output()
        .expect("picket runs");
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.lines().all(|l| l.starts_with("{\"event\":")), "{out}");
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().expect("summary line");
    let j: Value = serde_json::from_str(last).expect("JSON summary on stderr");
    assert_eq!(u(&j["totals"]["flows"]), 30);
}

#[test]
fn report_data_matches_the_events() {
    let run = replay(&demo(), &[]);
    let d = embedded(&run.html);
    let flows = of(&run.events, "flow");

    // The summary is the --format json one, without what changes from run to run.
    let mut summary = run.summary.clone();
    let obj = summary.as_object_mut().expect("object");
    obj.remove("workers");
    obj.remove("elapsed_secs");
    assert_eq!(d["summary"], summary);
    assert_eq!(d["files"], serde_json::json!([s(&demo())]));
    assert_eq!(d["picket"], env!("CARGO_PKG_VERSION"));
    let first = flows.iter().filter_map(|f| f["ts_start"].as_str()).min();
    let last = flows.iter().filter_map(|f| f["ts_end"].as_str()).max();
    assert_eq!(d["first_packet"].as_str(), first);
    assert_eq!(d["last_packet"].as_str(), last);

    // Flagged flows: every one, ordered by start (not by end, as the events come), with the
    // events' fields.
    let flagged: Vec<&&Value> = flows.iter().filter(|f| f["verdict"] == "flag").collect();
    let rows = d["flows"].as_array().expect("flows");
    assert_eq!(rows.len(), flagged.len());
    assert_eq!(u(&d["flagged_flows"]), flagged.len() as u64);
    assert_eq!(u(&d["flows_left_out"]), 0);
    assert_eq!(u(&d["limits"]["rows"]), 10_000);
    let starts: Vec<&str> = rows
        .iter()
        .map(|r| r["ts_start"].as_str().expect("ts"))
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
    let by_end: Vec<&str> = flagged
        .iter()
        .map(|f| f["ts_start"].as_str().expect("ts"))
        .collect();
    assert_ne!(
        by_end, starts,
        "the demo's flagged flows end in another order than they start"
    );
    for r in rows {
        let e = flagged
            .iter()
            .find(|e| e["flow_id"] == r["flow_id"])
            .unwrap_or_else(|| panic!("no flow event for {r}"));
        for k in [
            "flow_id",
            "ts_start",
            "ts_end",
            "transport",
            "src_ip",
            "src_port",
            "dst_ip",
            "dst_port",
            "sni",
            "dns_name",
            "app",
            "app_source",
        ] {
            assert_eq!(r.get(k), e.get(k), "{k} of {r}");
        }
        assert_eq!(u(&r["bytes"]), flow_bytes(e));
        assert_eq!(u(&r["packets"]), flow_packets(e));
    }
    let signals: BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r["app_source"].as_str())
        .collect();
    assert!(
        signals.len() >= 5,
        "the demo shows many signals: {signals:?}"
    );

    // Timeline: each flow in the bucket where it started, bytes summing to the app's.
    let tl = &d["timeline"];
    let (width, start, n) = (u(&tl["bucket_secs"]), u(&tl["start"]), u(&tl["buckets"]));
    assert!(n >= 10 && n <= u(&d["limits"]["buckets"]), "{tl}");
    assert_eq!(start % width, 0, "buckets are aligned");
    let series = tl["series"].as_array().expect("series");
    assert_eq!(series.last().expect("series")["app"], Value::Null);
    for sr in series {
        let app = sr["app"].as_str();
        let mine: Vec<&&Value> = flows.iter().filter(|f| f["app"].as_str() == app).collect();
        let mut want = vec![0u64; n as usize];
        for f in &mine {
            want[((unix_secs(f["ts_start"].as_str().expect("ts")) - start) / width) as usize] += 1;
        }
        let got: Vec<u64> = sr["flows"]
            .as_array()
            .expect("flows")
            .iter()
            .map(u)
            .collect();
        assert_eq!(got, want, "{app:?}");
        let bytes: u64 = sr["bytes"].as_array().expect("bytes").iter().map(u).sum();
        assert_eq!(
            bytes,
            mine.iter().map(|f| flow_bytes(f)).sum::<u64>(),
            "{app:?}"
        );
    }

    // Top clients and servers of each flagged app, exact at this size.
    let top = d["top"].as_array().expect("top");
    let flagged_apps: Vec<&str> = d["summary"]["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .filter(|a| a["verdict"] == "flag")
        .map(|a| a["app"].as_str().expect("app"))
        .collect();
    let top_apps: Vec<&str> = top
        .iter()
        .map(|t| t["app"].as_str().expect("app"))
        .collect();
    assert_eq!(top_apps, flagged_apps);
    for t in top {
        let app = t["app"].as_str().expect("app");
        for (list, key) in [("clients", "src_ip"), ("servers", "dst_ip")] {
            let mut want: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
            for f in flagged.iter().filter(|f| f["app"] == app) {
                let w = want.entry(f[key].as_str().expect("ip")).or_default();
                w.0 += 1;
                w.1 += flow_bytes(f);
            }
            let l = &t[list];
            assert_eq!(l["exact"], true);
            let entries = l["entries"].as_array().expect("entries");
            assert_eq!(entries.len(), want.len().min(10), "{app} {list}");
            let counts: Vec<u64> = entries.iter().map(|e| u(&e["flows"])).collect();
            assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
            for e in entries {
                let ip = e["ip"].as_str().expect("ip");
                assert_eq!((u(&e["flows"]), u(&e["bytes"])), want[ip], "{app} {ip}");
                assert_eq!(u(&e["over"]), 0);
                if let Some(name) = e.get("name") {
                    assert!(
                        flagged.iter().any(|f| f[key] == ip
                            && (f.get("sni") == Some(name) || f.get("dns_name") == Some(name))),
                        "{app} {ip} {name}"
                    );
                }
            }
        }
    }
}

#[test]
fn report_is_the_same_at_any_worker_count() {
    let one = replay(&demo(), &["--workers", "1"]);
    let three = replay(&demo(), &["--workers", "3"]);
    assert!(
        one.html == three.html,
        "the report differs between 1 and 3 workers"
    );
}

#[test]
fn report_that_cannot_be_created_fails_before_the_replay() {
    let o = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["replay", "--report", "/nonexistent-dir/report.html"])
        .arg(demo())
        .output()
        .expect("picket runs");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot create /nonexistent-dir/report.html"),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "no summary: the replay never ran");
}

// ---------------------------------------------------------------------------------------------
// In the browser

/// Whether headless Chromium is here, which the browser tests open the report in; see
/// `common::require`.
fn have_chromium() -> bool {
    common::require_tool("chromium", "the Debian package chromium").is_some()
}

fn chromium() -> PathBuf {
    common::find_tool("chromium").expect("checked by have_chromium")
}

/// What the browser made of a page.
struct Page {
    dom: String,
    /// Console messages and uncaught errors Chromium logged.
    console: Vec<String>,
}

/// Runs headless Chromium on `page` with `args`, in a fresh profile, for at most
/// [`BROWSER_TIMEOUT`]; returns its standard output and error.
fn browse(page: &Path, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().expect("temp dir");
    let out = profile.path().join("stdout");
    let err = profile.path().join("stderr");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            s(&profile.path().join("profile"))
        ))
        .args(args)
        .arg(format!("file://{}", s(page)))
        .stdin(Stdio::null())
        .stdout(File::create(&out).expect("stdout file"))
        .stderr(File::create(&err).expect("stderr file"))
        .spawn()
        .expect("chromium starts");
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for chromium") {
            break st;
        }
        if t0.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let (o, e) = (read(&out), read(&err));
    assert!(status.success(), "chromium failed ({status}):\n{e}");
    (o, e)
}

/// The page's DOM after its script ran, and what it logged.
fn render(page: &Path) -> Page {
    let (dom, log) = browse(page, &["--dump-dom"]);
    let console = log
        .lines()
        .filter(|l| {
            l.contains(":CONSOLE")
                || l.contains("Uncaught")
                || l.contains("Content Security Policy")
        })
        .map(str::to_string)
        .collect();
    Page { dom, console }
}

/// Keeps a screenshot of the page in `target/test-artifacts/NAME`.
fn screenshot(page: &Path, name: &str) -> PathBuf {
    // The binary is target/<profile>/picket.
    let target = Path::new(env!("CARGO_BIN_EXE_picket"))
        .parent()
        .and_then(Path::parent)
        .expect("target dir");
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    let png = dir.join(name);
    let _ = std::fs::remove_file(&png);
    browse(
        page,
        &[
            &format!("--screenshot={}", s(&png)),
            "--window-size=1280,3600",
        ],
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(bytes.len() > 20_000, "a blank page? {} bytes", bytes.len());
    png
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

fn assert_drawn(page: &Page) {
    assert!(
        page.console.is_empty(),
        "the page logged to the console:\n{}",
        page.console.join("\n")
    );
    assert!(
        page.dom.contains(r#"data-rendered="ok""#),
        "the script did not finish"
    );
    assert!(
        page.dom
            .contains(r#"<p id="failure" class="warn" hidden="">"#),
        "the page reports a failure"
    );
}

#[test]
fn report_renders_in_chromium_without_console_errors() {
    if !have_chromium() {
        return;
    }
    let run = replay(&demo(), &[]);
    let d = embedded(&run.html);
    let page = render(&run.report);
    assert_drawn(&page);
    let dom = &page.dom;

    // Both charts, one bar per (app, bucket) with flows or bytes.
    assert_eq!(count(dom, r#"class="timeline-chart""#), 2);
    let cells = |key: &str| -> usize {
        d["timeline"]["series"]
            .as_array()
            .expect("series")
            .iter()
            .flat_map(|s| s[key].as_array().expect("counts").iter())
            .filter(|v| u(v) > 0)
            .count()
    };
    assert!(cells("flows") > 10);
    assert_eq!(count(dom, r#"class="bar-flows""#), cells("flows"));
    assert_eq!(count(dom, r#"class="bar-bytes""#), cells("bytes"));

    // The apps table, the top lists and the flagged flows, one row per listed flow.
    let apps = d["summary"]["apps"].as_array().expect("apps");
    let apps_table = &dom[dom.find(r#"<table id="apps""#).expect("apps table")..];
    let apps_table = &apps_table[..apps_table.find("</table>").expect("end")];
    assert_eq!(
        count(apps_table, "<tr>"),
        1 + apps.len() + 1,
        "header, apps, (no app)"
    );
    assert_eq!(
        count(dom, r#"class="top-app""#),
        d["top"].as_array().expect("top").len()
    );
    let rows = d["flows"].as_array().expect("flows");
    assert_eq!(count(dom, "<tr data-flow-id="), rows.len());
    for r in rows {
        let id = r["flow_id"].as_str().expect("id");
        assert!(
            dom.contains(&format!(r#"<tr data-flow-id="{id}">"#)),
            "{id}"
        );
    }
    assert!(dom.contains(&format!(
        "Showing {} of {} matching",
        rows.len(),
        rows.len()
    )));
    // The filters offer the apps and signals of the listed flows.
    for r in rows {
        let app = r["app"].as_str().expect("app");
        let signal = r["app_source"].as_str().expect("signal");
        assert!(dom.contains(&format!(r#"<option value="{app}">{app}</option>"#)));
        assert!(dom.contains(&format!(r#"<option value="{signal}">{signal}</option>"#)));
    }

    let png = screenshot(&run.report, "report.png");
    eprintln!("screenshot: {}", png.display());
}

/// 2024-05-01 12:00:00 UTC.
const T0: u64 = 1_714_564_800_000_000_000;
const SEC: u64 = 1_000_000_000;

/// A TLS connection whose ClientHello names `sni`, `at` nanoseconds after [`T0`].
fn tls(client: &str, server: &str, sni: &str, at: u64) -> Vec<Packet> {
    tls_at(client, server, sni, T0 + at)
}

/// A TLS connection whose ClientHello names `sni`, starting at `start` (Unix nanoseconds).
fn tls_at(client: &str, server: &str, sni: &str, start: u64) -> Vec<Packet> {
    let path = SynthPath::new(client.parse().expect("addr"), server.parse().expect("addr"));
    let mut c = TcpConv::new(path, start, start % 1_000_003);
    c.handshake();
    c.client_send(&client_hello(&ClientHelloSpec::new(sni, start % 1_000_003)));
    c.server_send(&[0x17; 900]);
    c.close();
    c.take_packets()
}

#[test]
fn hostile_server_names_show_as_text_and_run_nothing() {
    if !have_chromium() {
        return;
    }
    // Each claims a flagged app's domain, so it lands in every part of the report.
    let hostile = [
        r#"<img src=x onerror="document.body.setAttribute('data-pwned','img')">.whatsapp.net"#,
        r#"</script><script>document.body.setAttribute('data-pwned','script')</script>.g.whatsapp.net"#,
        r#""><svg onload="document.body.setAttribute('data-pwned','svg')">.zoom.us"#,
        r#"<!--<script>document.body.setAttribute('data-pwned','comment')</script>.signal.org"#,
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let mut packets = Vec::new();
    for (i, name) in hostile.iter().enumerate() {
        packets.extend(tls(
            &format!("10.9.0.{}:5000{i}", i + 1),
            &format!("192.0.2.{}:443", i + 1),
            name,
            i as u64 * 1_000_000_000,
        ));
    }
    // The file name is shown too.
    let cap = write_capture(dir.path(), "<b id=pwned>capture.pcap", packets);
    let run = replay(&cap, &[]);

    // The capture says what it should: each name, verbatim, decided a flagged app.
    let flows = of(&run.events, "flow");
    for name in hostile {
        let f = flows
            .iter()
            .find(|f| f["sni"] == name)
            .unwrap_or_else(|| panic!("no flow named {name}"));
        assert_eq!(f["verdict"], "flag", "{f}");
    }

    // The file has exactly its own two scripts and no markup from the capture.
    let html = &run.html;
    assert_eq!(count(html, "<script"), 2, "{html}");
    assert_eq!(count(html, "</script>"), 2);
    for bad in ["<img", "<svg", "<b id", "<!--", "onerror=\"", "onload=\""] {
        assert!(!html.contains(bad), "{bad} in the file");
    }
    // ... and the data still holds every name exactly.
    let d = embedded(html);
    for name in hostile {
        assert!(d["flows"]
            .as_array()
            .expect("flows")
            .iter()
            .any(|r| r["sni"] == name));
    }
    assert!(d["files"][0]
        .as_str()
        .expect("file")
        .ends_with("<b id=pwned>capture.pcap"));

    // The browser shows them as text and runs none of them.
    let page = render(&run.report);
    assert_drawn(&page);
    let dom = &page.dom;
    // Set as an attribute only if one of them ran; as text it is quoted differently.
    assert!(
        !dom.contains("data-pwned=\""),
        "a script from the capture ran"
    );
    for bad in ["<img", "<b id", "<svg onload", "<!--"] {
        assert!(!dom.contains(bad), "{bad} became markup");
    }
    // Text nodes serialise with `<` and `>` escaped: the names are there, as text.
    assert!(
        dom.contains(r#"&lt;img src=x onerror="document.body.setAttribute('data-pwned','img')"&gt;.whatsapp.net"#),
        "the name is shown as text"
    );
    assert!(dom.contains("&lt;/script&gt;&lt;script&gt;document.body.setAttribute("));
    assert!(
        dom.contains("&lt;b id=pwned&gt;capture.pcap"),
        "the file name as text"
    );
    screenshot(&run.report, "report-hostile.png");
}

/// The colour of `app`'s swatch wherever the page shows the app's name after one.
fn swatch_colour(dom: &str, app: &str) -> String {
    let marker = format!("\"></span>{app}<");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no swatch for {app}"));
    let style = dom[..at].rfind("background: ").expect("swatch style") + "background: ".len();
    dom[style..at].trim_end_matches(';').to_string()
}

/// The values of `attr` on the rows of the table `id`, in the order drawn.
fn row_ids(dom: &str, id: &str, attr: &str) -> Vec<String> {
    let start = dom
        .find(&format!(r#"<table id="{id}""#))
        .unwrap_or_else(|| panic!("no table {id}"));
    let table = &dom[start..];
    let table = &table[..table.find("</table>").expect("table end")];
    let open = format!("<tr {attr}=\"");
    table
        .match_indices(&open)
        .map(|(i, _)| {
            let v = &table[i + open.len()..];
            v[..v.find('"').expect("attr end")].to_string()
        })
        .collect()
}

/// The texts of the time labels under the charts.
fn tick_labels(dom: &str) -> Vec<String> {
    let open = r#"class="tick">"#;
    dom.match_indices(open)
        .map(|(i, _)| {
            let v = &dom[i + open.len()..];
            v[..v.find('<').expect("label end")].to_string()
        })
        .collect()
}

/// Ten minutes of flagged traffic in 2024 from eight clients (client 1 uses two flagged apps),
/// two WhatsApp calls, and two flows stamped far away: one in 1970 (the first record) and one
/// in 2028 (the last).
fn outlier_capture(dir: &Path) -> PathBuf {
    use picket_synth::calls::{call, CallSpec, Mark};
    let names = ["g.whatsapp.net", "zoom.us", "chat.signal.org"];
    let mut packets = Vec::new();
    for i in 0..30u64 {
        let client = format!("10.9.1.{}:{}", i % 8 + 1, 40000 + i);
        let server = format!("192.0.2.{}:443", i % 3 + 10);
        // Client 1 (i = 0, 8, 16, 24) goes to WhatsApp, Signal, Zoom, WhatsApp.
        packets.extend(tls(&client, &server, names[(i % 3) as usize], i * 20 * SEC));
    }
    for (n, relayed) in [(0u64, false), (1, true)] {
        packets.extend(call(&CallSpec {
            client: format!("10.9.2.{}:50000", n + 1).parse().expect("addr"),
            public_stun: "74.125.250.129:19302".parse().expect("addr"),
            relay: format!("192.0.2.{}:3478", 100 + n).parse().expect("addr"),
            relay_media_port: 443,
            peer: "198.51.100.90:41000".parse().expect("addr"),
            mark: Mark::MessageType(0x0801),
            relayed,
            start_ns: T0 + (60 + n * 200) * SEC,
            media: 200,
            seed: n + 1,
        }));
    }
    packets.extend(tls_at(
        "10.9.3.1:41000",
        "192.0.2.50:443",
        "old.example.org",
        SEC,
    ));
    let wild = T0 + 4 * 365 * 86_400 * SEC;
    packets.extend(tls_at(
        "10.9.3.2:41001",
        "192.0.2.51:443",
        "late.example.org",
        wild,
    ));
    write_capture(dir, "outliers.pcap", packets)
}

#[test]
fn report_of_a_capture_with_outliers_sizes_buckets_from_the_bulk_and_lists_them_apart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = replay(&outlier_capture(dir.path()), &[]);
    let d = embedded(&run.html);
    let tl = &d["timeline"];
    // Ten minutes in at most 120 buckets: 10 s ones, not the 16-day ones 58 years would need.
    assert_eq!(u(&tl["bucket_secs"]), 10, "{tl}");
    assert!(
        u(&tl["start"]) >= T0 / SEC && u(&tl["start"]) < T0 / SEC + 10,
        "{tl}"
    );
    let outliers = tl["outliers"].as_array().expect("outliers");
    assert_eq!(outliers.len(), 2, "{outliers:?}");
    assert!(outliers[0]["first"]
        .as_str()
        .expect("ts")
        .starts_with("1970-01-01T00:00:01"));
    assert!(outliers[1]["first"]
        .as_str()
        .expect("ts")
        .starts_with("2028-"));
    for o in outliers {
        assert_eq!(u(&o["flows"]), 1, "{o}");
    }
    // The header still says the whole span.
    assert!(d["first_packet"].as_str().expect("ts").starts_with("1970-"));

    // Alerts by time, as the events have them.
    let alerts = of(&run.events, "alert");
    let listed = d["alerts"].as_array().expect("alerts");
    assert!(alerts.len() >= 30, "{}", alerts.len());
    assert_eq!(listed.len(), alerts.len());
    let ts: Vec<&str> = listed
        .iter()
        .map(|a| a["ts"].as_str().expect("ts"))
        .collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    let mut want: Vec<&str> = alerts
        .iter()
        .map(|a| a["ts"].as_str().expect("ts"))
        .collect();
    want.sort_unstable();
    assert_eq!(ts, want);
    for a in listed {
        let e = alerts
            .iter()
            .find(|e| e["flow_id"] == a["flow_id"] && e["ts"] == a["ts"])
            .unwrap_or_else(|| panic!("no alert event for {a}"));
        for k in ["src_ip", "src_port", "dst_ip", "app", "app_source", "sni"] {
            assert_eq!(a.get(k), e.get(k), "{k} of {a}");
        }
    }

    // Calls as the call events have them, by start.
    let calls = of(&run.events, "call");
    let rows = d["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(rows.len(), 2);
    for (r, e) in rows.iter().zip(&calls) {
        for k in [
            "call_id", "app", "src_ip", "ts_start", "ts_end", "path", "flows",
        ] {
            assert_eq!(r.get(k), e.get(k), "{k} of {r}");
        }
        assert_eq!(u(&r["media_packets"][0]), u(&e["media_packets_to_server"]));
        assert_eq!(u(&r["media_bytes"][1]), u(&e["media_bytes_to_client"]));
    }

    // Client 1 used three flagged apps, listed by first use; each app's first and last flow are
    // its own.
    let clients = d["clients"].as_array().expect("clients");
    let c1 = clients
        .iter()
        .find(|c| c["ip"] == "10.9.1.1")
        .expect("client 1");
    let apps: Vec<&str> = c1["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| a["app"].as_str().expect("app"))
        .collect();
    assert_eq!(apps, ["whatsapp", "signal", "zoom"], "by first use: {c1}");
    assert_eq!(u(&c1["apps"][0]["flows"]), 2);
    assert!(c1["apps"][0]["last"].as_str() > c1["apps"][1]["last"].as_str());
    let firsts: Vec<&str> = clients
        .iter()
        .map(|c| c["first"].as_str().expect("ts"))
        .collect();
    assert!(firsts.windows(2).all(|w| w[0] <= w[1]), "{firsts:?}");

    if !have_chromium() {
        return;
    }
    let page = render(&run.report);
    assert_drawn(&page);
    let dom = &page.dom;
    // The alerts come first, the earliest first.
    let main = &dom[dom.find("<main>").expect("main")..];
    assert!(
        main["<main>".len()..]
            .trim_start()
            .starts_with(r#"<section id="alerts">"#),
        "the alerts are not the first section"
    );
    let drawn = row_ids(dom, "alerts-table", "data-alert");
    assert_eq!(drawn.len(), listed.len());
    assert_eq!(drawn[0], listed[0]["flow_id"].as_str().expect("id"));
    // The outliers are listed apart; the axis shows times of day (one day, no date).
    assert_eq!(count(dom, r#"<li class="outlier">"#), 2);
    assert!(dom.contains("1970-01-01 00:00:01.000"));
    let ticks = tick_labels(dom);
    assert!(!ticks.is_empty());
    assert!(
        ticks.iter().all(|t| t.len() == 8 && t.starts_with("12:")),
        "{ticks:?}"
    );
    // The calls: a row each and a bar each on the timeline.
    assert_eq!(row_ids(dom, "calls-table", "data-call-id").len(), 2);
    assert_eq!(count(dom, r#"class="call-bar""#), 2);
    assert!(row_ids(dom, "clients-table", "data-client").contains(&"10.9.1.1".to_string()));

    let png = screenshot(&run.report, "report-outliers.png");
    eprintln!("screenshot: {}", png.display());
}

#[test]
fn report_shows_the_year_when_the_axis_crosses_days() {
    if !have_chromium() {
        return;
    }
    // Two capture files' worth of traffic a day apart, as much on each day.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut packets = Vec::new();
    for day in 0..2u64 {
        for i in 0..6u64 {
            packets.extend(tls(
                &format!("10.9.4.{}:4100{i}", day + 1),
                "192.0.2.20:443",
                "g.whatsapp.net",
                day * 86_400 * SEC + i * 60 * SEC,
            ));
        }
    }
    let run = replay(&write_capture(dir.path(), "days.pcap", packets), &[]);
    let d = embedded(&run.html);
    assert_eq!(d["timeline"]["outliers"], serde_json::json!([]));
    let page = render(&run.report);
    assert_drawn(&page);
    let ticks = tick_labels(&page.dom);
    let dated = |t: &String| {
        let b = t.as_bytes();
        t.len() == 16 && t.starts_with("2024-05-0") && b[10] == b' ' && b[13] == b':'
    };
    assert!(ticks.len() >= 2 && ticks.iter().all(dated), "{ticks:?}");
    assert!(
        ticks.iter().any(|t| t.starts_with("2024-05-02")),
        "{ticks:?}"
    );
}

#[test]
fn report_colours_an_app_the_same_in_every_report() {
    if !have_chromium() {
        return;
    }
    // The demo sees many apps; this capture sees Signal and Zoom alone, in another order.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut packets = tls("10.9.5.1:41000", "192.0.2.30:443", "chat.signal.org", 0);
    packets.extend(tls("10.9.5.2:41000", "192.0.2.31:443", "zoom.us", SEC));
    packets.extend(tls(
        "10.9.5.3:41000",
        "192.0.2.32:443",
        "chat.signal.org",
        2 * SEC,
    ));
    let small = replay(&write_capture(dir.path(), "two.pcap", packets), &[]);
    let demo = replay(&demo(), &[]);
    let (a, b) = (render(&small.report), render(&demo.report));
    assert_drawn(&a);
    assert_drawn(&b);
    for app in ["signal", "zoom"] {
        assert_eq!(
            swatch_colour(&a.dom, app),
            swatch_colour(&b.dom, app),
            "{app}"
        );
    }
    let apps = ["whatsapp", "zoom", "signal", "telegram", "discord", "teams"];
    let colours: BTreeSet<String> = apps.iter().map(|a| swatch_colour(&b.dom, a)).collect();
    assert_eq!(
        colours.len(),
        apps.len(),
        "two apps share a colour: {colours:?}"
    );
}

#[test]
fn report_tables_sort_on_a_header_click() {
    if !have_chromium() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let run = replay(&outlier_capture(dir.path()), &[]);
    let d = embedded(&run.html);
    let alerts = d["alerts"].as_array().expect("alerts");
    // The page replays header clicks named in its fragment: client once, then the flagged
    // flows' bytes twice (the second click sorts the other way).
    let url = format!(
        "{}#click=alerts-table:client,flows:bytes,flows:bytes",
        s(&run.report)
    );
    let page = render(Path::new(&url));
    assert_drawn(&page);
    let dom = &page.dom;
    let drawn = row_ids(dom, "alerts-table", "data-alert");
    let mut want: Vec<(&str, &str)> = alerts
        .iter()
        .map(|a| {
            (
                a["src_ip"].as_str().expect("ip"),
                a["flow_id"].as_str().expect("id"),
            )
        })
        .collect();
    // A stable sort by client of the rows in time order.
    want.sort_by_key(|w| w.0);
    let want: Vec<&str> = want.iter().map(|w| w.1).collect();
    assert_eq!(drawn, want);
    assert_ne!(
        drawn,
        alerts
            .iter()
            .map(|a| a["flow_id"].as_str().expect("id"))
            .collect::<Vec<_>>(),
        "sorting by client changed nothing"
    );
    assert!(
        dom.contains(r#"<th data-key="client" class="sorted-asc">client</th>"#),
        "the header says so"
    );
    let flows = d["flows"].as_array().expect("flows");
    let by_id: BTreeMap<&str, u64> = flows
        .iter()
        .map(|f| (f["flow_id"].as_str().expect("id"), u(&f["bytes"])))
        .collect();
    let drawn: Vec<u64> = row_ids(dom, "flows", "data-flow-id")
        .iter()
        .map(|id| by_id[id.as_str()])
        .collect();
    assert_eq!(drawn.len(), flows.len());
    assert!(drawn.windows(2).all(|w| w[0] >= w[1]), "{drawn:?}");
    assert!(drawn.first() > drawn.last(), "{drawn:?}");
}

/// The corpus's own captures with wild timestamps: Zoom's 2019 capture holds two flows in 2023,
/// Discord's 2022 capture a 1970 record and a run of packets three days earlier.
#[test]
fn corpus_reports_size_buckets_from_the_bulk_and_list_wild_times_apart() {
    let Some(corpus) = common::require_corpus() else {
        return;
    };
    for (file, width, outliers) in [
        ("zoom.pcap", 1, &["2023-01-11T"][..]),
        ("discord.pcap", 30, &["1970-01-01T", "2022-07-04T"][..]),
    ] {
        let run = replay(&corpus.dir.join("pcap").join(file), &[]);
        let d = embedded(&run.html);
        let tl = &d["timeline"];
        assert_eq!(u(&tl["bucket_secs"]), width, "{file}: {tl}");
        let got: Vec<&str> = tl["outliers"]
            .as_array()
            .expect("outliers")
            .iter()
            .map(|o| o["first"].as_str().expect("ts"))
            .collect();
        assert_eq!(got.len(), outliers.len(), "{file}: {got:?}");
        for (g, w) in got.iter().zip(outliers) {
            assert!(g.starts_with(w), "{file}: {g} is not {w}…");
        }
        // Every flow is counted, on the axis or off it.
        let flows = of(&run.events, "flow").len() as u64;
        let on_axis: u64 = tl["series"]
            .as_array()
            .expect("series")
            .iter()
            .flat_map(|s| s["flows"].as_array().expect("flows").iter().map(u))
            .sum();
        let off_axis: u64 = tl["outliers"]
            .as_array()
            .expect("outliers")
            .iter()
            .map(|o| u(&o["flows"]))
            .sum();
        assert_eq!(on_axis + off_axis, flows, "{file}");
    }
}

#[test]
fn report_says_how_many_rows_past_its_caps_are_not_shown() {
    if !have_chromium() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let run = replay(&outlier_capture(dir.path()), &[]);
    // The data of a report that hit its caps: three alerts and one call listed of many.
    let mut d = embedded(&run.html);
    let alerts = d["alerts"].as_array().expect("alerts").len() as u64;
    d["alerts"].as_array_mut().expect("alerts").truncate(3);
    d["alerts_left_out"] = (alerts - 3).into();
    d["limits"]["alerts"] = 3.into();
    d["calls"].as_array_mut().expect("calls").truncate(1);
    d["calls_left_out"] = 1.into();
    d["limits"]["calls"] = 1.into();
    d["client_flows_left_out"] = 17.into();
    d["limits"]["clients"] = 8.into();
    let start = run.html.find(DATA_OPEN).expect("data") + DATA_OPEN.len();
    let end = start + run.html[start..].find("</script>").expect("end");
    let json = serde_json::to_string(&d).expect("json");
    let html = format!(
        "{}{}{}",
        &run.html[..start],
        picket::export::report::script_safe(&json),
        &run.html[end..]
    );
    let capped = dir.path().join("capped.html");
    std::fs::write(&capped, html).expect("write");
    let page = render(&capped);
    assert_drawn(&page);
    let dom = &page.dom;
    assert_eq!(row_ids(dom, "alerts-table", "data-alert").len(), 3);
    assert!(
        dom.contains(&format!(
            "Showing 3 of 3 alerts. The report lists at most 3: {} more not shown",
            alerts - 3
        )),
        "alerts note"
    );
    assert!(dom.contains("Showing 1 of 1 calls. The report lists at most 1: 1 more not shown"));
    assert!(dom.contains("Past 8 clients, 17 flows of further clients are not shown"));
}

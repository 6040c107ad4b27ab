//! The demo capture through the real binary: every flow's server name and app as
//! `pcaps/README.md` states them, the summary, the same answers at any worker count, in every
//! capture format and link type, and split over several files.

use picket_synth::{self as synth, Interface, LinkType, PcapFormat, PcapngWriter};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn picket(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(args)
        .output()
        .expect("picket runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    o
}

fn demo_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/demo.pcap")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Replays files and returns (flow events, stdout).
fn replay(files: &[&Path], extra: &[&str]) -> (Vec<Value>, String) {
    let (all, out) = replay_all(files, extra);
    (
        all.into_iter().filter(|e| e["event"] == "flow").collect(),
        out,
    )
}

/// Replays files and returns (every event, stdout).
fn replay_all(files: &[&Path], extra: &[&str]) -> (Vec<Value>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ev = dir.path().join("ev.jsonl");
    let mut args = vec!["replay", "--events", s(&ev)];
    args.extend_from_slice(extra);
    args.extend(files.iter().map(|f| s(f)));
    let o = picket(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let events = std::fs::read_to_string(&ev)
        .expect("events file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    (events, String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The expected app of each demo server name under the embedded rules (pcaps/README.md).
fn expected_app(sni: Option<&str>) -> Option<&'static str> {
    match sni? {
        "g.whatsapp.net" | "mmg.whatsapp.net" | "web.whatsapp.com" => Some("whatsapp"),
        "zoom.us" | "us05web.zoom.us" => Some("zoom"),
        "chat.signal.org" | "cdn.signal.org" => Some("signal"),
        "web.telegram.org" => Some("telegram"),
        "teams.microsoft.com" => Some("teams"),
        "discord.com" => Some("discord"),
        // A visit to WhatsApp's web site is not WhatsApp (rules/whatsapp_site.toml).
        "www.whatsapp.com" => Some("whatsapp_site"),
        // The ECH outer name and unrelated sites belong to no app.
        _ => None,
    }
}

fn flow_key(e: &Value) -> String {
    format!(
        "{} {}:{} {}:{} {}",
        e["transport"].as_str().unwrap_or(""),
        e["src_ip"].as_str().unwrap_or(""),
        e["src_port"],
        e["dst_ip"].as_str().unwrap_or(""),
        e["dst_port"],
        e["ts_start"].as_str().unwrap_or("")
    )
}

#[test]
fn shipped_demo_is_what_the_generator_writes() {
    // As `picket-synth demo` writes it (its own tests run the binary).
    let fresh = synth::write_pcap(Vec::new(), PcapFormat::default(), synth::demo()).expect("write");
    let shipped = std::fs::read(demo_path()).expect("pcaps/demo.pcap is shipped");
    assert!(
        fresh == shipped,
        "pcaps/demo.pcap is stale: rerun `cargo run -p picket-synth -- demo pcaps/demo.pcap`"
    );
}

#[test]
fn demo_every_flow_has_its_sni_and_app() {
    let (events, stdout) = replay(&[&demo_path()], &[]);
    let manifest = synth::demo_manifest();
    for want in &manifest {
        let client = want.client;
        let server = want.server;
        let matching: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["src_ip"] == client.ip().to_string()
                    && e["src_port"] == client.port()
                    && e["dst_ip"] == server.ip().to_string()
                    && e["dst_port"] == server.port()
            })
            .collect();
        assert!(!matching.is_empty(), "no flow for {}", want.description);
        let got: Vec<Option<&str>> = matching.iter().map(|e| e["sni"].as_str()).collect();
        assert!(
            got.contains(&want.sni),
            "{}: want SNI {:?}, got {got:?}",
            want.description,
            want.sni
        );
        let e = matching
            .iter()
            .find(|e| e["sni"].as_str() == want.sni)
            .expect("found above");
        // DNS lookups are classified by the name they ask for.
        // What other flows revealed: DNS answers and a call's STUN exchange.
        let (want_app, want_source) = match (server.port(), client.ip().to_string().as_str()) {
            (53, "10.1.0.26") => (Some("telegram"), "dns_query"),
            (53, "10.1.0.33" | "10.1.0.35") => (Some("zoom"), "dns_query"),
            (53, "10.1.0.36") => (Some("discord"), "dns_query"),
            (8801, _) => (Some("zoom"), "dns_answer"),
            (443, "10.1.0.21") => (Some("discord"), "dns_answer"),
            (3478, _) => (Some("whatsapp"), "stun"),
            (40_000, _) => (Some("whatsapp"), "peer_cache"),
            _ => (expected_app(want.sni), "sni"),
        };
        assert_eq!(e["app"].as_str(), want_app, "{}: {e}", want.description);
        if let Some(app) = e["app"].as_str() {
            let verdict = if matches!(app, "whatsapp" | "zoom" | "signal") {
                "flag"
            } else {
                "observe"
            };
            assert_eq!(e["verdict"], verdict);
            assert_eq!(e["app_source"], want_source);
            assert!(
                e["rule"]
                    .as_str()
                    .is_some_and(|r| r.starts_with(&format!("{app}.toml:"))),
                "{e}"
            );
            // The stable id and the category come from the app's own rule file.
            assert_eq!(e["rule_id"], format!("picket:{app}"), "{e}");
            assert!(
                e["app_category"].as_str().is_some_and(|c| [
                    "messaging",
                    "conferencing",
                    "social",
                    "web_visit"
                ]
                .contains(&c)),
                "{e}"
            );
        }
    }
    // One event per manifest flow: the reused 5-tuple is two flows, not one.
    assert_eq!(events.len(), manifest.len());
    // Specific hard cases.
    let by_sni = |n: &str| -> Vec<&Value> { events.iter().filter(|e| e["sni"] == n).collect() };
    assert_eq!(by_sni("cloudflare-ech.com")[0]["ech"], "real");
    assert_eq!(by_sni("cloudflare-ech.com")[0]["sni_trusted"], false);
    assert!(by_sni("web.telegram.org")
        .iter()
        .any(|e| e["packets_to_client"] == 0));
    assert_eq!(
        by_sni("us05web.zoom.us")[0]["vlan"],
        serde_json::json!([200, 20])
    );
    assert_eq!(
        by_sni("web.telegram.org")
            .iter()
            .filter(|e| e["vlan"] == serde_json::json!([300, 30, 3]))
            .count(),
        1
    );
    assert!(events
        .iter()
        .any(|e| e["syn_seen"] == false && e.get("sni").is_none()));
    let teams_rst = by_sni("teams.microsoft.com");
    assert!(teams_rst.iter().any(|e| e["end_reason"] == "rst"));
    // The summary table.
    let row = |app: &str| -> Vec<String> {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(app))
            .unwrap_or_else(|| panic!("no summary row for {app}:\n{stdout}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let count = |app: &str| {
        events
            .iter()
            .filter(|e| e["app"] == app)
            .count()
            .to_string()
    };
    for app in ["whatsapp", "zoom", "signal"] {
        assert_eq!(row(app)[1], "flag");
        assert_eq!(row(app)[2], count(app));
    }
    assert_eq!(row("discord")[1], "observe");
    assert!(
        stdout.contains(&format!("flows     {} (", manifest.len())),
        "{stdout}"
    );
}

/// Events as sorted lines, for multiset comparison.
fn sorted_lines(events: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = events.iter().map(Value::to_string).collect();
    v.sort();
    v
}

#[test]
fn demo_same_events_at_any_worker_count() {
    let (one, _) = replay_all(&[&demo_path()], &["--workers", "1"]);
    assert!(one.iter().any(|e| e["event"] == "alert"));
    for w in ["2", "4"] {
        let (many, _) = replay_all(&[&demo_path()], &["--workers", w]);
        assert_eq!(sorted_lines(&one), sorted_lines(&many), "--workers {w}");
    }
}

#[test]
fn many_flows_same_events_at_any_worker_count_and_counts_add_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = dir.path().join("many.pcap");
    let f = BufWriter::new(std::fs::File::create(&cap).expect("create"));
    // `picket-synth many-flows --flows 3000` (seed 1).
    synth::write_pcap(f, PcapFormat::default(), synth::many_flows(3000, 1))
        .and_then(|mut f| f.flush())
        .expect("write");
    let (one, out1) = replay(&[&cap], &["--workers", "1"]);
    assert_eq!(one.len(), 3000);
    for w in ["2", "4"] {
        let (many, out) = replay(&[&cap], &["--workers", w]);
        assert_eq!(sorted_lines(&one), sorted_lines(&many), "--workers {w}");
        assert_eq!(
            out1.lines().find(|l| l.starts_with("packets")),
            out.lines().find(|l| l.starts_with("packets"))
        );
    }
    // Every packet read is in a flow or counted as skipped, and the flows' packets add up.
    let packets: u64 = one
        .iter()
        .map(|e| {
            e["packets_to_server"].as_u64().unwrap_or(0)
                + e["packets_to_client"].as_u64().unwrap_or(0)
        })
        .sum();
    let line = out1
        .lines()
        .find(|l| l.starts_with("packets"))
        .expect("packets line");
    assert!(
        line.starts_with(&format!(
            "packets   {packets} read, {packets} into flows, 0 skipped"
        )),
        "{line}"
    );
}

/// Events reduced to what survives a change of link type or file format.
fn essence(events: &[Value]) -> BTreeMap<String, (Value, Value, Value, Value)> {
    events
        .iter()
        .map(|e| {
            (
                flow_key(e),
                (
                    e["sni"].clone(),
                    e["app"].clone(),
                    e["packets_to_server"].clone(),
                    e["packets_to_client"].clone(),
                ),
            )
        })
        .collect()
}

#[test]
fn demo_same_answers_in_every_format_and_link_type() {
    let (base, _) = replay(&[&demo_path()], &[]);
    let base = essence(&base);
    let dir = tempfile::tempdir().expect("temp dir");
    let variants: [(&str, LinkType, bool, bool); 6] = [
        ("be-ns", LinkType::Ethernet, true, true),
        ("sll", LinkType::LinuxSll, false, false),
        ("sll2", LinkType::LinuxSll2, false, true),
        ("raw", LinkType::Raw, true, false),
        ("null", LinkType::Null, false, false),
        ("ipv4-only", LinkType::Ipv4, false, false),
    ];
    for (name, link, big_endian, nanos) in variants {
        let path = dir.path().join(format!("{name}.pcap"));
        let packets = synth::demo().into_iter().filter(|p| {
            link != LinkType::Ipv4
                || synth::to_linktype(&p.frame, LinkType::Raw)
                    .first()
                    .map(|b| b >> 4)
                    == Some(4)
        });
        let f = std::fs::File::create(&path).expect("create");
        let fmt = PcapFormat {
            big_endian,
            nanos,
            link,
            snaplen: 262_144,
        };
        synth::write_pcap(f, fmt, packets).expect("write");
        let (ev, _) = replay(&[&path], &[]);
        let got = essence(&ev);
        if link == LinkType::Ipv4 {
            for (k, v) in &got {
                assert_eq!(base.get(k), Some(v), "{name}: {k}");
            }
            assert!(got.len() >= base.len() - 3, "{name}");
        } else {
            assert_eq!(got, base, "{name}");
        }
    }
    // pcapng: two sections (one big-endian), four interfaces with µs and ns resolutions.
    let path = dir.path().join("demo.pcapng");
    let mut w = PcapngWriter::new(std::fs::File::create(&path).expect("create"));
    let demo = synth::demo();
    let half = demo.len() / 2;
    w.section(
        false,
        vec![
            Interface::new("eth0", LinkType::Ethernet, 6),
            Interface::new("eth1", LinkType::Ethernet, 9),
        ],
    )
    .expect("section");
    for (i, p) in demo[..half].iter().enumerate() {
        w.write(i % 2, p).expect("write");
    }
    w.section(
        true,
        vec![
            Interface::new("any", LinkType::LinuxSll2, 9),
            Interface::new("eth2", LinkType::Ethernet, 6),
        ],
    )
    .expect("section");
    for (i, p) in demo[half..].iter().enumerate() {
        w.write(i % 2, p).expect("write");
    }
    drop(w);
    let (ev, _) = replay(&[&path], &[]);
    assert_eq!(essence(&ev), base, "pcapng");
}

#[test]
fn demo_split_over_two_files_is_one_timeline() {
    let (base, _) = replay(&[&demo_path()], &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = synth::demo();
    let half = demo.len() / 2;
    let a = dir.path().join("a.pcap");
    let b = dir.path().join("b.pcap");
    for (path, part) in [(&a, &demo[..half]), (&b, &demo[half..])] {
        let f = std::fs::File::create(path).expect("create");
        synth::write_pcap(f, PcapFormat::default(), part.iter().cloned()).expect("write");
    }
    let (split, _) = replay(&[&a, &b], &[]);
    assert_eq!(sorted_lines(&base), sorted_lines(&split));
}

/// Flows that pass their idle timeout just before the input ends: whether a worker's sweep or
/// the end of input reaches them first must not change their events (`end_reason` included).
#[test]
fn idle_near_the_end_same_events_at_any_worker_count() {
    use picket_synth::{Path as SynthPath, UdpConv};
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = dir.path().join("idle.pcap");
    let t0 = 1_700_000_000_000_000_000u64;
    let mut packets = Vec::new();
    for i in 0..8u8 {
        let path = SynthPath::new(
            format!("10.2.0.{}:4000", i + 1).parse().expect("addr"),
            "192.0.2.99:5000".parse().expect("addr"),
        );
        let mut u = UdpConv::new(path, t0, u64::from(i));
        u.send(true, b"hello");
        packets.extend(u.take_packets());
    }
    let late = SynthPath::new(
        "10.2.1.1:4000".parse().expect("addr"),
        "192.0.2.98:5000".parse().expect("addr"),
    );
    for at in [59_500_000_000u64, 60_300_000_000] {
        let mut u = UdpConv::new(late.clone(), t0 + at, 9);
        u.send(true, b"late");
        packets.extend(u.take_packets());
    }
    packets.sort_by_key(|p| p.ts_ns);
    let f = std::fs::File::create(&cap).expect("create");
    synth::write_pcap(f, PcapFormat::default(), packets).expect("write");
    let (one, _) = replay(&[&cap], &["--workers", "1"]);
    let idle = one.iter().filter(|e| e["end_reason"] == "idle").count();
    assert_eq!(
        idle, 8,
        "the eight flows at t=0 are past 60 s of silence at the end"
    );
    for w in ["2", "4", "2", "4"] {
        let (many, _) = replay(&[&cap], &["--workers", w]);
        assert_eq!(sorted_lines(&one), sorted_lines(&many), "--workers {w}");
    }
}

/// `picket bench` on the demo: every stage counts every packet, every worker count ends every
/// flow, and each worker's CPU cost is reported (times are printed, never asserted).
#[test]
fn bench_reports_every_stage_and_every_worker() {
    let o = picket(&[
        "bench",
        s(&demo_path()),
        "--workers",
        "1,2",
        "--repeat",
        "1",
    ]);
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("1825 packets"), "every record is read:\n{out}");
    for stage in [
        "read (no header touched)",
        "read + decode",
        "full pipeline, 1 worker(s)",
        "full pipeline, 2 worker(s)",
    ] {
        assert!(out.contains(stage), "{stage}:\n{out}");
    }
    assert_eq!(
        out.matches(" 30 flows").count(),
        2,
        "both widths end all 30 flows:\n{out}"
    );
    let cpu: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("CPU: read-ahead") && l.contains(", reader "))
        .collect();
    assert_eq!(cpu.len(), 2, "{out}");
    let per_worker = |l: &str| {
        l.rsplit_once("ns per own packet: ")
            .map(|(_, v)| v.trim_end_matches(')').split(", ").count())
    };
    assert_eq!(per_worker(cpu[0]), Some(1), "{}", cpu[0]);
    assert_eq!(per_worker(cpu[1]), Some(2), "{}", cpu[1]);
}

//! Floods and evasions (`picket-synth hostile`) through the real binary: no crash, memory held by
//! `--max-flows`, every anomaly counted by kind, and the ordinary flows among them classified as
//! they would be alone.

use picket_synth::PcapFormat;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;

mod common;
use common::flow_of;

fn picket(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(args)
        .output()
        .expect("picket runs")
}

#[test]
fn floods_and_evasions_are_counted_and_ordinary_flows_still_classified() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = dir.path().join("hostile.pcap");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    // `picket-synth hostile --flows 20000` (seed 1).
    let f = BufWriter::new(std::fs::File::create(&cap).expect("create"));
    picket_synth::write_pcap(f, PcapFormat::default(), picket_synth::hostile(20_000, 1))
        .and_then(|mut f| f.flush())
        .expect("write");
    let ev = dir.path().join("ev.jsonl");
    let o = picket(&[
        "replay",
        "--workers",
        "2",
        "--max-flows",
        "5000",
        "--events",
        &s(&ev),
        &s(&cap),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&ev)
        .expect("events")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    // The ordinary flows, before and after the flood.
    for (client, app) in [
        ("10.66.0.1", "whatsapp"),
        ("10.66.0.2", "zoom"),
        ("10.66.0.3", "signal"),
    ] {
        assert_eq!(flow_of(&events, client)["app"], app, "{client}");
        assert_eq!(flow_of(&events, client)["app_source"], "sni");
    }
    // Overlapping bytes: the first arrival is kept (the policy), and the conflict counted.
    assert_eq!(flow_of(&events, "10.66.2.1")["sni"], "zoom.us");
    // One-byte segments, each opening a hole: holes are bounded by bytes, not by count.
    // See: #14
    assert_eq!(flow_of(&events, "10.66.3.1")["sni"], "chat.signal.org");
    // A huge server name is cut in the event and decides nothing.
    let huge = flow_of(&events, "10.66.4.1");
    assert!(huge.get("app").is_none(), "{huge}");
    assert_eq!(huge["sni_trusted"], false);
    assert!(huge["sni"].as_str().is_some_and(|n| n.len() <= 255));
    // Every kind of anomaly was counted.
    let line = out
        .lines()
        .find(|l| l.starts_with("anomalies "))
        .unwrap_or_else(|| panic!("no anomalies line:\n{out}"));
    for kind in [
        "reassembly_conflict",
        "hello_incomplete",
        "tls_malformed",
        "sni_oversized",
        "quic_undecryptable",
        "dns_malformed",
        "stun_malformed",
    ] {
        let n: u64 = line
            .split(", ")
            .find_map(|p| {
                p.trim_start_matches("anomalies ")
                    .strip_prefix(&format!("{kind} "))
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(n >= 1, "{kind} not counted: {line}");
    }
    // Damaged headers at each layer: IP twice (a short header, a total length past the frame),
    // TCP (a header offset past the segment), UDP (a length past the datagram).
    assert!(out.contains("(4 decode errors)"), "{out}");
    for reason in ["malformed_ip 2", "truncated_tcp 1", "malformed_udp 1"] {
        assert!(out.contains(reason), "{reason}: {out}");
    }
    // The flood: the table stayed within --max-flows, the rest was evicted and still reported.
    let evicted: u64 = out
        .lines()
        .find(|l| l.starts_with("flows "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no eviction count:\n{out}"));
    assert!(evicted >= 20_000 - 5_000, "{out}");
    let flows = events.iter().filter(|e| e["event"] == "flow").count();
    assert!(
        flows > 20_000,
        "every flow reported, evicted or not: {flows}"
    );
}

//! DPI evasion through the real binary (issue 14): `pcaps/evasion.pcap`, one conversation per
//! technique of zapret, GoodbyeDPI, ByeDPI, SpoofDPI and Geneva, each yields the real name, or
//! every name and an `evasion` anomaly on the flow's own event; the decoys are counted; a
//! capture of connections that each hold a reassembly hole stays within the memcap, counted;
//! and two QUIC connections on one 5-tuple are two flows (issue 17).

mod common;

use common::{flow_of, replay_output, write_capture};
use picket_synth::evasion::{self, DECOY, REAL, TECHNIQUES};
use picket_synth::{self as synth, PcapFormat};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/evasion.pcap")
}

fn strs(v: &Value, k: &str) -> Vec<String> {
    v[k].as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn shipped_evasion_capture_is_what_the_generator_writes() {
    let fresh =
        synth::write_pcap(Vec::new(), PcapFormat::default(), evasion::evasion()).expect("write");
    let shipped = std::fs::read(shipped()).expect("pcaps/evasion.pcap is shipped");
    assert!(
        fresh == shipped,
        "pcaps/evasion.pcap is stale: rerun `cargo run -p picket-synth -- evasion pcaps/evasion.pcap`"
    );
}

#[test]
fn evasion_every_technique_yields_the_real_name_or_every_candidate() {
    let (events, stdout) = replay_output(&shipped(), &[]);
    for t in TECHNIQUES {
        let client = format!("10.77.0.{}", t.n);
        let f = flow_of(&events, &client);
        let what = format!("{} ({client}): {f}", t.name);
        if t.real_sni {
            assert_eq!(f["sni"], REAL, "{what}");
        } else {
            let names = strs(f, "sni_candidates");
            assert!(names.iter().any(|n| n == REAL), "{what}");
            assert!(names.iter().any(|n| n == DECOY), "{what}");
            assert!(
                strs(f, "anomalies").iter().any(|a| a == "evasion"),
                "{what}"
            );
        }
        // Whatever the decoy said, the flagged app is found and alerts.
        assert_eq!(f["app"], "whatsapp", "{what}");
        let alerted = events
            .iter()
            .any(|e| e["event"] == "alert" && e["src_ip"] == client.as_str());
        assert!(alerted, "{what}");
        // A decoy's name is never the name read, and it is kept beside it.
        if strs(f, "anomalies").iter().any(|a| a == "decoy_hello") {
            assert!(
                strs(f, "sni_candidates").iter().any(|n| n == DECOY),
                "{what}"
            );
        }
        // A forged RST is not believed: the flow ends with its FINs, its hello read.
        assert_ne!(f["end_reason"], "rst", "{what}");
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("anomalies "))
        .unwrap_or_else(|| panic!("no anomalies line:\n{stdout}"));
    for kind in ["evasion", "decoy_hello", "duplicate_sni"] {
        assert!(line.contains(&format!("{kind} ")), "{kind}: {line}");
    }
}

/// Two QUIC connections with different names, one after the other from one client socket:
/// two flow events, each with its own name, the first ended as `reused`.
// See: #17
#[test]
fn issue_17_quic_connections_on_a_reused_five_tuple_are_two_flows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = write_capture(
        dir.path(),
        "reconnect.pcap",
        evasion::quic_reconnect(REAL, "zoom.us", 500),
    );
    let (events, _) = replay_output(&cap, &[]);
    let flows: Vec<&Value> = events.iter().filter(|e| e["event"] == "flow").collect();
    assert_eq!(flows.len(), 2, "{flows:?}");
    assert_eq!(flows[0]["sni"], REAL, "{}", flows[0]);
    assert_eq!(flows[0]["end_reason"], "reused", "{}", flows[0]);
    assert_eq!(flows[1]["sni"], "zoom.us", "{}", flows[1]);
    assert_eq!(flows[0]["src_port"], flows[1]["src_port"]);
    for f in &flows {
        assert!(
            f.get("anomalies").is_none(),
            "a reconnection is no decoy: {f}"
        );
    }
}

/// Connections that each hold one byte at stream offset 16,383 keep the reassembly pool within
/// the memcap: the oldest buffers are dropped, counted, and every flow is still reported.
// See: #14
#[test]
fn issue_14_hole_holding_connections_are_dropped_past_the_memcap_and_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = write_capture(
        dir.path(),
        "holes.pcap",
        evasion::hole_hold(2_000, 7).collect(),
    );
    let (events, stdout) = replay_output(&cap, &["--reassembly-memcap", "4m", "--workers", "1"]);
    let flows = events.iter().filter(|e| e["event"] == "flow").count();
    assert_eq!(flows, 2_000, "every flow is still tracked and reported");
    let dropped: u64 = stdout
        .lines()
        .find(|l| l.starts_with("anomalies "))
        .and_then(|l| {
            l.trim_start_matches("anomalies ")
                .split(", ")
                .find_map(|p| p.strip_prefix("reassembly_memcap "))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no reassembly_memcap count:\n{stdout}"));
    // 18 KiB a flow: about 230 fit in 4 MiB, every later one pushes an older one out.
    assert!(dropped >= 1_700, "{dropped}: {stdout}");
}

//! Helpers the integration tests share: writing a generated capture and replaying it with the
//! real binary.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use picket::synth::{self, Packet, PcapFormat};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

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
    let dir = tempfile::tempdir().expect("temp dir");
    let ev = dir.path().join("ev.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args([
            "replay",
            "--quiet",
            "--events",
            ev.to_str().expect("utf-8 path"),
        ])
        .args(extra)
        .arg(cap)
        .output()
        .expect("picket runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(&ev)
        .expect("events file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
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

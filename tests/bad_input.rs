//! Hostile and broken input through the real binary: clear messages naming the file and the
//! packet or line, documented exit codes, what was read before the damage still reported, and
//! never a panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn picket(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(args)
        .output()
        .expect("picket runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn no_panic(o: &Output) {
    let err = text(&o.stderr);
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_ne!(o.status.code(), Some(101), "panic exit: {err}");
}

/// A classic little-endian µs pcap with Ethernet frames, one second apart.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let packets = frames
        .iter()
        .enumerate()
        .map(|(i, f)| picket_synth::Packet {
            ts_ns: (1_700_000_000 + i as u64) * 1_000_000_000,
            frame: f.clone(),
        });
    picket_synth::write_pcap(Vec::new(), picket_synth::PcapFormat::default(), packets)
        .expect("in-memory write")
}

/// An Ethernet/IPv4/UDP frame from 10.0.0.1:5000+i to 192.0.2.1:53.
fn udp_frame(i: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [192, 0, 2, 1], 64)
        .udp(5000 + i, 53);
    let payload = [0xAB; 20];
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).expect("frame builds");
    out
}

struct Tmp(tempfile::TempDir);

impl Tmp {
    fn new() -> Self {
        Tmp(tempfile::tempdir().expect("temp dir"))
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).expect("write temp file");
        p
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn flow_lines(events: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(events)
        .expect("events written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[test]
fn replay_not_a_capture_exits_1_naming_the_file() {
    let t = Tmp::new();
    let f = t.file(
        "notes.txt",
        b"this is not a capture file at all, just words\n",
    );
    let o = picket(&["replay", s(&f)]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("notes.txt") && err.contains("not a pcap or pcapng file"),
        "{err}"
    );
}

#[test]
fn replay_empty_and_missing_files_exit_1() {
    let t = Tmp::new();
    let f = t.file("empty.pcap", b"");
    let o = picket(&["replay", s(&f), s(&t.path("missing.pcap"))]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("empty.pcap") && err.contains("too short"),
        "{err}"
    );
    assert!(err.contains("missing.pcap"), "{err}");
}

#[test]
fn replay_truncated_capture_exits_3_and_keeps_what_was_read() {
    let t = Tmp::new();
    let frames: Vec<Vec<u8>> = (0..5).map(udp_frame).collect();
    let mut bytes = pcap(&frames);
    bytes.truncate(bytes.len() - 10);
    let f = t.file("cut.pcap", &bytes);
    let ev = t.path("ev.jsonl");
    let o = picket(&["replay", "--events", s(&ev), s(&f)]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("cut.pcap: packet 5 at byte offset") && err.contains("truncated"),
        "{err}"
    );
    // The four whole packets are four UDP flows (distinct source ports).
    assert_eq!(flow_lines(&ev).len(), 4);
    assert!(
        text(&o.stdout).contains("packets   4 read"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn replay_impossible_record_length_exits_3() {
    let t = Tmp::new();
    let mut bytes = pcap(&[udp_frame(0)]);
    bytes.extend(1_700_000_100u32.to_le_bytes());
    bytes.extend(0u32.to_le_bytes());
    bytes.extend(0x7FFF_FFF0u32.to_le_bytes());
    bytes.extend(60u32.to_le_bytes());
    bytes.extend([0u8; 64]);
    let f = t.file("huge.pcap", &bytes);
    let o = picket(&["replay", s(&f)]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(3));
    let err = text(&o.stderr);
    assert!(
        err.contains("packet 2") && err.contains("impossible captured length"),
        "{err}"
    );
}

#[test]
fn replay_garbage_frames_are_counted_not_fatal() {
    let t = Tmp::new();
    let mut x: u32 = 12345;
    let mut frames = vec![udp_frame(1)];
    for i in 0..300 {
        let mut f = udp_frame(2);
        let len = (x as usize) % f.len();
        for b in &mut f[14..] {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        f.truncate(len.max(i % 40));
        frames.push(f);
    }
    let f = t.file("garbage.pcap", &pcap(&frames));
    let ev = t.path("ev.jsonl");
    let o = picket(&["replay", "--events", s(&ev), s(&f)]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("packets   301 read"), "{out}");
    assert!(out.contains("skipped"), "{out}");
    assert!(flow_lines(&ev).iter().any(|e| e["src_port"] == 5001));
}

#[test]
fn replay_second_file_damaged_first_still_reported() {
    let t = Tmp::new();
    let good = t.file("good.pcap", &pcap(&[udp_frame(7)]));
    let bad = t.file("bad.pcap", b"\x0a\x0d\x0d\x0a\xff\xff\xff\xff garbage");
    let ev = t.path("ev.jsonl");
    let o = picket(&["replay", "--events", s(&ev), s(&good), s(&bad)]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o.stderr).contains("bad.pcap"), "{}", text(&o.stderr));
    assert_eq!(flow_lines(&ev).len(), 1);
}

#[test]
fn rules_check_reports_file_line_col_and_exits_1() {
    let t = Tmp::new();
    t.file(
        "chat.toml",
        b"id = \"chat\"\nrule_id = \"t:chat\"\nname = \"Chat\"\ncategory = \"messaging\"\nverdict = \"block\"\ndomains = [\"a..b\"]\n",
    );
    let o = picket(&["rules", "check", s(t.0.path())]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("chat.toml:5:11: unknown verdict 'block'"),
        "{err}"
    );
    assert!(err.contains("chat.toml:6:12:"), "{err}");
    assert!(err.contains("2 error(s)"), "{err}");
}

#[test]
fn rules_check_accepts_the_shipped_rules_folder() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let o = picket(&["rules", "check", s(&dir)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("flagged: signal, whatsapp, zoom"));
}

#[test]
fn replay_with_broken_rules_refuses_to_start() {
    let t = Tmp::new();
    t.file("x.toml", b"id = \"x\"\nname = \"X\"\n");
    let cap = t.file("c.pcap", &pcap(&[udp_frame(0)]));
    let o = picket(&["replay", "--rules", s(t.0.path()), s(&cap)]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("invalid rules") && err.contains("x.toml"),
        "{err}"
    );
}

#[test]
fn replay_events_sink_full_still_reports_and_says_so() {
    let full = Path::new("/dev/full").exists();
    if !common::require(
        "/dev/full",
        "a Linux /dev has it (mknod /dev/full c 1 7)",
        full,
    ) {
        return;
    }
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/demo.pcap");
    let o = picket(&["replay", "--events", "/dev/full", s(&demo)]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("writing events failed"),
        "{}",
        text(&o.stderr)
    );
    // Everything was still classified and summarised.
    assert!(
        text(&o.stdout).contains("whatsapp       flag"),
        "{}",
        text(&o.stdout)
    );
}

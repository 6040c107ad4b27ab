//! The `picket-synth` binary: the shipped demo capture is what it writes, its options change the
//! format as they say, and an output it cannot create is a clear error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn synth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_picket-synth"))
        .args(args)
        .output()
        .expect("picket-synth runs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn shipped_demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pcaps/demo.pcap")
}

#[test]
fn demo_is_byte_identical_to_the_shipped_capture() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("demo.pcap");
    let o = synth(&["demo", s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with("wrote 1825 packets to "),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let fresh = std::fs::read(&out).expect("written");
    let shipped = std::fs::read(shipped_demo()).expect("pcaps/demo.pcap is shipped");
    assert!(
        fresh == shipped,
        "pcaps/demo.pcap is stale: rerun `cargo run -p picket-synth -- demo pcaps/demo.pcap`"
    );
}

#[test]
fn pcapng_and_link_options_change_the_format() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ng = dir.path().join("flows.pcapng");
    let o = synth(&[
        "many-flows",
        s(&ng),
        "--flows",
        "10",
        "--pcapng",
        "--link",
        "sll2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b = std::fs::read(&ng).expect("written");
    // Section Header Block, then an Interface Description Block of LINKTYPE_LINUX_SLL2 (276).
    assert_eq!(b[..4], [0x0a, 0x0d, 0x0d, 0x0a]);
    let shb_len = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")) as usize;
    let idb = &b[shb_len..];
    assert_eq!(idb[..4], 1u32.to_le_bytes());
    assert_eq!(idb[8..10], 276u16.to_le_bytes());
    let raw = dir.path().join("raw.pcap");
    let o = synth(&[
        "bulk",
        s(&raw),
        "--flows",
        "2",
        "--packets-per-flow",
        "5",
        "--link",
        "raw",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b = std::fs::read(&raw).expect("written");
    // Classic pcap, microseconds, little-endian, LINKTYPE_RAW (101).
    assert_eq!(b[..4], 0xa1b2_c3d4u32.to_le_bytes());
    assert_eq!(b[20..24], 101u32.to_le_bytes());
}

#[test]
fn an_output_it_cannot_create_is_a_usage_error() {
    let o = synth(&["demo", "/nonexistent-dir/demo.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("picket-synth: cannot create /nonexistent-dir/demo.pcap"),
        "{err}"
    );
}

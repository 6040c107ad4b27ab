//! Replay the way analysts hold captures: many files as one timeline whatever their order, a
//! clock that wild timestamps cannot move, folders, compressed files, standard input, and open
//! errors that say what is wrong.

mod common;

use picket_synth::{self as synth, Path as SynthPath, PcapFormat, UdpConv};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const T0: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

fn picket(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_picket"));
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("picket runs");
    let input = stdin.unwrap_or_default().to_vec();
    let mut pipe = child.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let o = child.wait_with_output().expect("picket ends");
    let _ = feeder.join();
    o
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Replays `inputs` with `extra` options: the events and the JSON summary.
fn replay(inputs: &[&str], extra: &[&str], stdin: Option<&[u8]>) -> (Vec<Value>, Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ev = dir.path().join("ev.jsonl");
    let mut args = vec!["replay", "--format", "json", "--events", s(&ev)];
    args.extend(extra);
    args.extend(inputs);
    let o = picket(&args, stdin);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let events = std::fs::read_to_string(&ev)
        .expect("events")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let summary = serde_json::from_slice(&o.stdout).expect("JSON summary");
    (events, summary)
}

fn flows(events: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "flow")
        .map(Value::to_string)
        .collect();
    v.sort();
    v
}

fn udp(client: &str, start: u64, seed: u64, n: usize, gap: u64) -> Vec<synth::Packet> {
    let path = SynthPath::new(
        client.parse().expect("addr"),
        "192.0.2.50:5000".parse().expect("addr"),
    );
    let mut u = UdpConv::new(path, start, seed);
    for _ in 0..n {
        u.send(true, b"ping ping ping");
        u.wait(gap);
    }
    u.take_packets()
}

/// Writes packets as a pcap in the order given (not sorted).
fn write(dir: &Path, name: &str, packets: Vec<synth::Packet>) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).expect("create");
    synth::write_pcap(f, PcapFormat::default(), packets).expect("write");
    p
}

/// The demo split in two files: given in either order, at 1, 2 and 4 workers, the flows are
/// those of the whole demo; `--order given` with the later file first reads it that way.
#[test]
fn inputs_in_any_order_make_the_timeline_of_the_whole_capture() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = synth::demo();
    let whole = write(dir.path(), "whole.pcap", demo.clone());
    let half = demo.len() / 2;
    let a = write(dir.path(), "a.pcap", demo[..half].to_vec());
    let b = write(dir.path(), "b.pcap", demo[half..].to_vec());
    let (base, _) = replay(&[s(&whole)], &["--workers", "1"], None);
    for w in ["1", "2", "4"] {
        for order in [[&b, &a], [&a, &b]] {
            let (ev, sum) = replay(&[s(order[0]), s(order[1])], &["--workers", w], None);
            assert_eq!(flows(&ev), flows(&base), "--workers {w}");
            assert_eq!(sum["totals"]["files"], 2);
            assert_eq!(sum["totals"]["clock_behind"], 0);
        }
    }
    let (_, given) = replay(&[s(&b), s(&a)], &["--order", "given"], None);
    assert!(
        given["totals"]["clock_behind"].as_u64() > Some(0),
        "{given}"
    );
}

/// Records stamped a year ahead in the middle of a capture do not move the clock, so the flows
/// open around them do not end; they are counted, and their own flow is tracked at its time.
#[test]
fn a_record_far_ahead_does_not_move_the_clock() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Twenty datagrams 10 s apart: one flow (under the 60 s UDP timeout throughout).
    let mut pk = udp("10.0.0.1:4000", T0, 1, 20, 10 * SEC);
    // Two records a year ahead, a second apart: they agree with each other, not with the
    // capture (a clock that believes a jump its next packet confirms would end the flow).
    let wild = udp("10.0.0.2:4000", T0 + 400 * 86_400 * SEC, 2, 2, SEC);
    pk.splice(5..5, wild);
    let cap = write(dir.path(), "wild.pcap", pk);
    for w in ["1", "2", "4"] {
        let (ev, sum) = replay(&[s(&cap)], &["--workers", w], None);
        let f = flows(&ev);
        assert_eq!(f.len(), 2, "--workers {w}: {f:#?}");
        let main = ev
            .iter()
            .find(|e| e["event"] == "flow" && e["src_ip"] == "10.0.0.1")
            .expect("the conversation's flow");
        assert_eq!(main["packets_to_server"], 20, "{main}");
        assert_eq!(sum["totals"]["clock_ahead"], 2);
        let odd = ev
            .iter()
            .find(|e| e["event"] == "flow" && e["src_ip"] == "10.0.0.2")
            .expect("the wild packet's flow");
        assert!(
            odd["ts_start"]
                .as_str()
                .is_some_and(|t| t.starts_with("2024-12-")),
            "its own time: {odd}"
        );
    }
}

/// Time going backwards inside a file (a day-old conversation written after a newer one) never
/// turns its packets into one-packet flows: they are tracked at the clock's time.
#[test]
fn time_going_back_makes_no_one_packet_flows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut pk = udp("10.0.0.1:4000", T0, 1, 5, SEC);
    pk.extend(udp("10.0.0.3:4000", T0 - 86_400 * SEC, 3, 30, SEC));
    let cap = write(dir.path(), "back.pcap", pk);
    for w in ["1", "2", "4"] {
        let (ev, sum) = replay(&[s(&cap)], &["--workers", w], None);
        let f = flows(&ev);
        assert_eq!(f.len(), 2, "--workers {w}: {f:#?}");
        assert_eq!(sum["totals"]["clock_behind"], 30);
    }
}

/// Folders (recursive, by content), gzip/xz/zstd by magic, and `-` for standard input give the
/// flows of the plain files.
#[test]
fn folders_compressed_files_and_stdin_read_like_plain_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = synth::demo();
    let whole = write(dir.path(), "whole.pcap", demo.clone());
    let (base, _) = replay(&[s(&whole)], &[], None);
    let bytes = std::fs::read(&whole).expect("read");
    let folder = dir.path().join("caps");
    std::fs::create_dir_all(folder.join("deeper")).expect("mkdir");
    let half = demo.len() / 2;
    write(&folder, "part-1", demo[..half].to_vec());
    let b = write(dir.path(), "b.pcap", demo[half..].to_vec());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&std::fs::read(&b).expect("read"))
        .expect("gzip");
    std::fs::write(folder.join("deeper/part-2.gz"), gz.finish().expect("gzip")).expect("write");
    std::fs::write(folder.join("deeper/notes.txt"), b"not a capture").expect("write");
    let (ev, sum) = replay(&[s(&folder)], &[], None);
    assert_eq!(flows(&ev), flows(&base), "a folder");
    assert_eq!(sum["totals"]["files"], 2);
    let (ev, _) = replay(&["-"], &[], Some(&bytes));
    assert_eq!(flows(&ev), flows(&base), "standard input");
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&bytes).expect("xz");
    let (ev, _) = replay(&["-"], &[], Some(&xz.finish().expect("xz")));
    assert_eq!(flows(&ev), flows(&base), "xz on standard input");
}

/// A missing input, a folder without captures: exit 1 with the reason, before any replay. A
/// capture of a link type the sensor does not decode is an error naming the type.
#[test]
fn unreadable_inputs_say_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.pcap");
    let o = picket(&["replay", s(&missing)], None);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("missing.pcap: no such file"), "{err}");
    assert!(o.stdout.is_empty(), "no table for a run that never started");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let o = picket(&["replay", s(&empty)], None);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("a folder with no capture file"), "{err}");
    // 802.11: the header's link type patched to 105.
    let wifi = write(dir.path(), "wifi.pcap", udp("10.0.0.1:4000", T0, 1, 3, SEC));
    let mut b = std::fs::read(&wifi).expect("read");
    b[20..24].copy_from_slice(&105u32.to_le_bytes());
    std::fs::write(&wifi, b).expect("write");
    let o = picket(&["replay", "--quiet", s(&wifi)], None);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("link type 105 (IEEE 802.11)") && err.contains("wifi.pcap"),
        "{err}"
    );
}

/// The corpus pair of the issue: zoom.pcap and the older whatsappfiles.pcap, in both orders at
/// 1, 2 and 4 workers, give the same flows, about as many as the files merged by time (the
/// old reading of the later file first gave 653, 620 of them one-packet flows).
#[test]
fn corpus_pair_in_both_orders_is_one_timeline() {
    let Some(c) = common::require_corpus() else {
        return;
    };
    let zoom = c.dir.join("pcap/zoom.pcap");
    let wa = c.dir.join("pcap/whatsappfiles.pcap");
    let (base, _) = replay(&[s(&zoom), s(&wa)], &["--workers", "1"], None);
    let n = flows(&base).len();
    assert!((20..=60).contains(&n), "{n} flows");
    for w in ["1", "2", "4"] {
        for order in [[&zoom, &wa], [&wa, &zoom]] {
            let (ev, _) = replay(&[s(order[0]), s(order[1])], &["--workers", w], None);
            assert_eq!(flows(&ev), flows(&base), "--workers {w}");
        }
    }
}

/// `--bpf` in replay keeps what the same filter keeps live: here only the UDP flows, the TCP
/// packets left out and counted; a bad expression fails before the replay.
#[test]
fn bpf_in_replay_keeps_what_live_would_capture() {
    let dir = tempfile::tempdir().expect("temp dir");
    let whole = write(dir.path(), "whole.pcap", synth::demo());
    let (all, _) = replay(&[s(&whole)], &[], None);
    let (udp, sum) = replay(&[s(&whole)], &["--bpf", "udp"], None);
    let want: Vec<String> = all
        .iter()
        .filter(|e| e["event"] == "flow" && e["transport"] == "udp")
        .map(Value::to_string)
        .collect::<Vec<_>>();
    let mut want = want;
    want.sort();
    assert!(!want.is_empty() && want.len() < flows(&all).len());
    assert_eq!(flows(&udp), want);
    assert!(sum["totals"]["packets"].as_u64() > Some(0));
    let o = picket(&["replay", "--bpf", "udp and and", s(&whole)], None);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid BPF filter"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A FIFO named on the command line (`tcpdump -w fifo`) is read once, from its first byte: the
/// look at its first packet that orders the inputs by time loses nothing.
#[test]
fn a_fifo_among_files_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = synth::demo();
    let whole = write(dir.path(), "whole.pcap", demo.clone());
    let (base, _) = replay(&[s(&whole)], &[], None);
    let half = demo.len() / 2;
    let a = write(dir.path(), "a.pcap", demo[..half].to_vec());
    let b = write(dir.path(), "b.pcap", demo[half..].to_vec());
    let fifo = dir.path().join("live.pcap");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !common::require(
        "mkfifo",
        "coreutils has it",
        made.is_ok_and(|s| s.success()),
    ) {
        return;
    }
    let bytes = std::fs::read(&b).expect("read");
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut w = std::fs::OpenOptions::new()
                .write(true)
                .open(&fifo)
                .expect("open fifo");
            let _ = w.write_all(&bytes);
        })
    };
    let (ev, sum) = replay(&[s(&fifo), s(&a)], &[], None);
    writer.join().expect("writer");
    assert_eq!(flows(&ev), flows(&base));
    assert_eq!(sum["totals"]["files"], 2);
}

//! No allocation per packet in the steady state: replaying long flows three times as long must
//! not allocate more than a handful of times more (buffers, batches and chunks are recycled; per-flow
//! state is allocated once per flow) — also with DNS lookups among them and every event written
//! to a file, as a user runs it; and writing an event allocates nothing once the writer's buffer
//! has grown.

// The only unsafe code in the project: a counting global allocator must implement the unsafe
// `GlobalAlloc` trait. It forwards every call to the system allocator unchanged.
#![allow(unsafe_code)]

use picket::export::events::EventWriter;
use picket::export::record::{Record, RecordBatch};
use picket::export::sink::{Sink, SinkOptions};
use picket::flow::FlowConfig;
use picket::pipeline;
use picket_synth::{self as synth, PcapFormat};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is the only
// addition and touches no memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counter is global: the tests of this file take turns, so one's allocations are not
/// counted in another's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

const FLOWS: usize = 12;

fn replay_counting(path: &Path, workers: usize) -> (u64, u64) {
    let rules = Arc::new(picket::rules::defaults().expect("embedded rules"));
    let cfg = pipeline::Config {
        low_latency: false,
        workers,
        flow: FlowConfig::default(),
        ..pipeline::Config::default()
    };
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut flows = 0;
    let r = pipeline::replay(
        &[path.to_path_buf()],
        &cfg,
        rules,
        pipeline::Hooks::default(),
        |o| {
            flows += o
                .records
                .iter()
                .filter(|e| matches!(e, Record::Flow(_)))
                .count()
        },
    );
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(flows, FLOWS);
    assert!(r.read.errors.is_empty());
    (r.read.packets, allocs)
}

#[test]
fn steady_state_packets_do_not_allocate() {
    let _turn = turn();
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, ppf: usize| {
        let p = dir.path().join(name);
        let f = std::fs::File::create(&p).expect("create");
        synth::write_pcap(
            std::io::BufWriter::new(f),
            PcapFormat::default(),
            synth::bulk(FLOWS, ppf, 3),
        )
        .expect("write");
        p
    };
    let short = write("short.pcap", 2_000);
    let long = write("long.pcap", 6_000);
    for workers in [1, 2] {
        let (p_short, a_short) = replay_counting(&short, workers);
        let (p_long, a_long) = replay_counting(&long, workers);
        let extra_packets = p_long - p_short;
        let extra_allocs = a_long.saturating_sub(a_short);
        eprintln!(
            "workers {workers}: {p_short} packets {a_short} allocations; {p_long} packets {a_long} allocations"
        );
        assert!(extra_packets > 40_000, "{extra_packets}");
        // Read chunks are recycled once workers release them; a few more may be made when the
        // workers lag. Anything per packet would be tens of thousands.
        assert!(
            extra_allocs * 1000 < extra_packets,
            "workers {workers}: {extra_allocs} more allocations for {extra_packets} more packets"
        );
    }
}

/// Long flows with DNS lookups among them (a lookup before each flow, answered), `ppf` packets
/// per long flow.
fn bulk_with_dns(path: &Path, ppf: usize) {
    use std::net::{Ipv4Addr, SocketAddr};
    let mut packets: Vec<synth::Packet> = synth::bulk(FLOWS, ppf, 3).collect();
    for i in 0..40u32 {
        let client = SocketAddr::from(([10, 9, 0, 1], 30_000 + i as u16));
        let resolver = SocketAddr::from(([10, 9, 0, 53], 53));
        let start = packets.first().map_or(0, |p| p.ts_ns) + u64::from(i) * 1_000_000;
        let mut c = synth::UdpConv::new(synth::Path::new(client, resolver), start, u64::from(i));
        c.dns("g.whatsapp.net", Ipv4Addr::new(192, 0, 2, 10 + i as u8));
        packets.extend(c.take_packets());
    }
    packets.sort_by_key(|p| p.ts_ns);
    let f = std::fs::File::create(path).expect("create");
    synth::write_pcap(std::io::BufWriter::new(f), PcapFormat::default(), packets).expect("write");
}

/// Replays `path` with every event written to a file through the consumer a user's replay uses;
/// (packets, allocations, events written).
fn replay_with_events(path: &Path, events: &Path) -> (u64, u64, u64) {
    let rules = Arc::new(picket::rules::defaults().expect("embedded rules"));
    let cfg = pipeline::Config {
        low_latency: false,
        workers: 1,
        flow: FlowConfig::default(),
        ..pipeline::Config::default()
    };
    let opts = SinkOptions {
        events: Some(events.to_path_buf()),
        alerts: None,
        sensor: Some("alloc-test".into()),
        workers: 1,
        alert_interval_ns: 60_000_000_000,
        clients: Default::default(),
        community_id_seed: 0,
        format: Default::default(),
        udp_idle_ns: 60_000_000_000,
        flow_update_ns: 0,
        existing: Default::default(),
    };
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut sink = Sink::new(&opts, None, Arc::new(AtomicBool::new(false))).expect("sink");
    let r = pipeline::replay(
        &[path.to_path_buf()],
        &cfg,
        rules,
        pipeline::Hooks::default(),
        |o: &mut RecordBatch| sink.output(o),
    );
    sink.finish().expect("events written");
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert!(r.read.errors.is_empty());
    let lines = std::fs::read_to_string(events)
        .expect("events")
        .lines()
        .count() as u64;
    (r.read.packets, allocs, lines)
}

#[test]
fn steady_state_with_dns_and_events_written_does_not_allocate_per_packet() {
    let _turn = turn();
    let dir = tempfile::tempdir().expect("temp dir");
    let (short, long) = (dir.path().join("short.pcap"), dir.path().join("long.pcap"));
    bulk_with_dns(&short, 2_000);
    bulk_with_dns(&long, 6_000);
    let (p_short, a_short, e_short) = replay_with_events(&short, &dir.path().join("s.jsonl"));
    let (p_long, a_long, e_long) = replay_with_events(&long, &dir.path().join("l.jsonl"));
    eprintln!("{p_short} packets {a_short} allocations {e_short} events; {p_long} packets {a_long} allocations {e_long} events");
    // The same flows (12 long ones, 40 DNS lookups), so the same per-flow allocations; events
    // of the long flows' updates come on top, and must not allocate either.
    assert!(e_short >= (FLOWS + 40) as u64, "{e_short} events");
    let extra_packets = p_long - p_short;
    assert!(extra_packets > 40_000, "{extra_packets}");
    let extra_allocs = a_long.saturating_sub(a_short);
    assert!(
        extra_allocs * 1000 < extra_packets,
        "{extra_allocs} more allocations for {extra_packets} more packets"
    );
}

#[test]
fn writing_an_event_allocates_nothing_once_warm() {
    let _turn = turn();
    use picket::capture::Timestamp;
    use picket::export::record::FlowRecord;
    // A realistic flow record, from a replay of the demo's first TLS flow.
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = dir.path().join("demo.pcap");
    let f = std::fs::File::create(&cap).expect("create");
    synth::write_pcap(
        std::io::BufWriter::new(f),
        PcapFormat::default(),
        synth::demo(),
    )
    .expect("write");
    let rules = Arc::new(picket::rules::defaults().expect("embedded rules"));
    let mut rec: Option<FlowRecord> = None;
    pipeline::replay(
        &[cap],
        &pipeline::Config::default(),
        rules,
        pipeline::Hooks::default(),
        |o| {
            for r in o.records.drain(..) {
                if let Record::Flow(f) = r {
                    if rec.is_none() && f.flow.tls.is_some() && f.flow.app.is_some() {
                        rec = Some(f);
                    }
                }
            }
        },
    );
    let rec = rec.expect("a classified TLS flow in the demo");
    let mut w = EventWriter::new(std::io::sink(), Some("edge-1".into()));
    let write = |w: &mut EventWriter<std::io::Sink>, n: u64| {
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..n {
            w.flow(&rec).expect("write");
            w.alert(Timestamp(1), &rec.flow).expect("write");
        }
        ALLOCS.load(Ordering::Relaxed) - before
    };
    write(&mut w, 10);
    assert_eq!(write(&mut w, 10_000), 0, "20,000 events allocated");
    assert_eq!(w.written(), 20_020);
}

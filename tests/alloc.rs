//! No allocation per packet in the steady state: replaying long flows three times as long must
//! not allocate more than a handful of times more (buffers, batches and chunks are recycled; per-flow
//! state is allocated once per flow).

// The only unsafe code in the project: a counting global allocator must implement the unsafe
// `GlobalAlloc` trait. It forwards every call to the system allocator unchanged.
#![allow(unsafe_code)]

use picket::export::record::Record;
use picket::flow::FlowConfig;
use picket::pipeline;
use picket_synth::{self as synth, PcapFormat};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
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

//! The event writer alone: flow events of real records (every flow of the generated demo) into
//! a buffered file, against formatting the same lines into memory in the same run. The figure to
//! hold: at least a million flow events a second on one core.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use picket::export::events::EventWriter;
use picket::export::record::{FlowRecord, Record};
use picket::pipeline;
use picket_synth::{self as synth, PcapFormat};
use std::io::BufWriter;
use std::sync::Arc;

/// Every ended flow of the demo capture, as the workers hand them to export.
fn demo_records() -> Vec<FlowRecord> {
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = dir.path().join("demo.pcap");
    let f = std::fs::File::create(&cap).expect("create");
    synth::write_pcap(BufWriter::new(f), PcapFormat::default(), synth::demo()).expect("write demo");
    let rules = Arc::new(picket::rules::defaults().expect("embedded rules"));
    let mut out = Vec::new();
    pipeline::replay(
        &[cap],
        &pipeline::Config::default(),
        rules,
        pipeline::Hooks::default(),
        |o| {
            out.extend(o.records.drain(..).filter_map(|r| match r {
                Record::Flow(f) => Some(f),
                _ => None,
            }))
        },
    );
    out
}

fn bench(c: &mut Criterion) {
    let records = demo_records();
    assert_eq!(
        records.len(),
        synth::demo_manifest().len(),
        "every flow of the demo"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.jsonl");
    let mut g = c.benchmark_group("events");
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("flow_events_into_memory", |b| {
        let mut w = EventWriter::new(std::io::sink(), Some("edge-1".into()));
        b.iter(|| {
            for r in &records {
                w.flow(r).expect("write");
            }
        });
        assert!(w.written() >= records.len() as u64);
    });
    g.bench_function("flow_events_into_a_file", |b| {
        let file = std::fs::File::create(&path).expect("create");
        let mut w = EventWriter::new(
            BufWriter::with_capacity(1 << 16, file),
            Some("edge-1".into()),
        );
        b.iter(|| {
            for r in &records {
                w.flow(r).expect("write");
            }
        });
        w.flush().expect("flush");
        let lines = std::fs::read_to_string(&path)
            .expect("read")
            .lines()
            .count() as u64;
        assert_eq!(lines, w.written(), "every event a whole line in the file");
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

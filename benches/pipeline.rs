//! The whole pipeline on a generated bulk capture (long flows, each opened by a ClientHello),
//! against the bare read of the same file in the same run.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use picket::capture::file::FileSource;
use picket::export::record::Record;
use picket::flow::FlowConfig;
use picket::pipeline;
use picket_synth::{self as synth, PcapFormat};
use std::sync::Arc;

const FLOWS: usize = 40;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bulk.pcap");
    let file = std::fs::File::create(&path).expect("create");
    synth::write_pcap(
        std::io::BufWriter::new(file),
        PcapFormat::default(),
        synth::bulk(FLOWS, 2000, 1),
    )
    .expect("write bulk capture");
    let paths = vec![path.clone()];
    let rules = Arc::new(picket::rules::defaults().expect("embedded rules"));
    let read_all = || {
        let mut src = FileSource::open(&path).expect("open");
        let mut n = 0u64;
        while src.next_packet().expect("read").is_some() {
            n += 1;
        }
        n
    };
    let packets = read_all();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(packets));
    g.sample_size(20);
    g.bench_function("baseline_read_only", |b| {
        b.iter(|| assert_eq!(read_all(), packets))
    });
    for workers in [1, 2] {
        let cfg = pipeline::Config {
            low_latency: false,
            workers,
            flow: FlowConfig::default(),
            ..pipeline::Config::default()
        };
        g.bench_function(format!("full_pipeline_{workers}_workers"), |b| {
            b.iter(|| {
                let mut flows = 0;
                let r = pipeline::replay(
                    &paths,
                    &cfg,
                    Arc::clone(&rules),
                    pipeline::Hooks::default(),
                    |o| {
                        flows += o
                            .records
                            .iter()
                            .filter(|e| matches!(e, Record::Flow(_)))
                            .count()
                    },
                );
                assert_eq!(r.read.packets, packets);
                assert_eq!(flows, FLOWS);
                flows
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

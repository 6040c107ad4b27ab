//! Frame decoding on the demo's 1,495 frames, against a baseline that only touches each frame.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use picket::capture::{LinkType, Timestamp};
use picket::decode;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let frames: Vec<Vec<u8>> = picket_synth::demo().into_iter().map(|p| p.frame).collect();
    let ok = frames
        .iter()
        .filter(|f| decode::decode(LinkType::Ethernet, Timestamp(0), 0, f).is_ok())
        .count();
    assert_eq!(ok, frames.len(), "every demo frame decodes");
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("baseline_touch_frames", |b| {
        b.iter(|| {
            let n: usize = frames.iter().map(|f| usize::from(black_box(f)[12])).sum();
            black_box(n)
        })
    });
    g.bench_function("decode_demo_frames", |b| {
        b.iter(|| {
            let n = frames
                .iter()
                .filter(|f| {
                    decode::decode(LinkType::Ethernet, Timestamp(0), 0, black_box(f)).is_ok()
                })
                .count();
            assert_eq!(n, ok);
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

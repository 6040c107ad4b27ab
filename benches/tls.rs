//! ClientHello parsing: a Chrome-like post-quantum hello (about 1.8 KB) in one record and split
//! over three records, against a baseline that scans the same bytes once.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use picket::proto::tls::parse_client_hello;
use picket_synth::{client_hello, ClientHelloSpec};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut spec = ClientHelloSpec::new("mmg.whatsapp.net", 7);
    spec.post_quantum = true;
    let one = client_hello(&spec);
    spec.record_split = Some(700);
    let three = client_hello(&spec);
    let mut scratch = Vec::new();
    for s in [&one, &three] {
        let ch = parse_client_hello(s, &mut scratch).expect("generated hello parses");
        assert_eq!(ch.sni, Some(&b"mmg.whatsapp.net"[..]));
    }
    let mut g = c.benchmark_group("tls");
    g.throughput(Throughput::Bytes(one.len() as u64));
    g.bench_function("baseline_sum_bytes", |b| {
        b.iter(|| black_box(&one).iter().map(|&x| u32::from(x)).sum::<u32>())
    });
    for (name, bytes) in [
        ("client_hello_one_record", &one),
        ("client_hello_three_records", &three),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let ch = parse_client_hello(black_box(bytes), &mut scratch).expect("parses");
                assert!(ch.sni.is_some());
                ch.alpn.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Rule lookup of server names against the embedded rules, against a baseline that only
//! lower-cases the same names.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

const NAMES: &[&str] = &[
    "g.whatsapp.net",
    "media-fra3-1.cdn.whatsapp.net",
    "web.whatsapp.com",
    "www.whatsapp.com",
    "us05web.zoom.us",
    "chat.signal.org",
    "EU-Prod.AsyncGW.Teams.Microsoft.com.",
    "discord.com",
    "www.example.com",
    "a.very.long.name.under.some.cdn.akamaiedge.net",
    "github.com",
    "static.xx.fbcdn.net",
];

fn bench(c: &mut Criterion) {
    let rules = picket::rules::defaults().expect("embedded rules load");
    let matched = NAMES
        .iter()
        .filter(|n| rules.match_host(n.as_bytes()).is_some())
        .count();
    assert_eq!(matched, 8, "the names the embedded rules claim");
    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(NAMES.len() as u64));
    g.bench_function("baseline_lowercase_names", |b| {
        let mut buf = [0u8; 256];
        b.iter(|| {
            let mut n = 0;
            for name in NAMES {
                let s = &mut buf[..name.len()];
                s.copy_from_slice(black_box(name).as_bytes());
                s.make_ascii_lowercase();
                n += usize::from(s[0]);
            }
            n
        })
    });
    g.bench_function("match_host", |b| {
        b.iter(|| {
            let n = NAMES
                .iter()
                .filter(|name| rules.match_host(black_box(name).as_bytes()).is_some())
                .count();
            assert_eq!(n, matched);
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

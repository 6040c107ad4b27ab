//! Rule loading at organisation scale: a rule file of 10,000, 100,000 and 1,000,000 domains,
//! and a plain list file of 10,000 and 1,000,000, parsed, validated and compiled (`rules::load`). Loading must grow linearly with the number of
//! domains: the per-domain time of the three sizes should be about the same.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use picket::rules::{load, Source};
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

/// A rule file with `n` distinct domains, one a line, as an organisation's block list would be.
fn toml_file(n: usize) -> Source {
    let mut text = String::from(
        "id = \"blocked\"\nrule_id = \"org:blocked\"\nname = \"Blocked\"\ncategory = \"local_block\"\nverdict = \"flag\"\ndomains = [\n",
    );
    for i in 0..n {
        writeln!(text, "  \"host{i}.zone{}.example\",", i % 1000).expect("write to String");
    }
    text.push_str("]\n");
    Source {
        path: PathBuf::from("blocked.toml"),
        name: "blocked.toml".into(),
        text,
    }
}

/// A plain list file of `n` domains (one a line after a short header).
fn list_file(n: usize) -> Source {
    let mut text = String::from(
        "id = blocked\nrule_id = org:blocked\ncategory = local_block\nverdict = flag\n",
    );
    for i in 0..n {
        writeln!(text, "host{i}.zone{}.example", i % 1000).expect("write to String");
    }
    Source {
        path: PathBuf::from("blocked.list"),
        name: "blocked.list".into(),
        text,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("rules_load");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    for n in [10_000, 100_000, 1_000_000] {
        let src = toml_file(n);
        let rules = load(std::slice::from_ref(&src), None).expect("the file loads");
        assert_eq!(rules.domain_count(), n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("toml", n), &src, |b, src| {
            b.iter(|| load(std::slice::from_ref(black_box(src)), None).map(|r| r.domain_count()))
        });
    }
    for n in [10_000, 1_000_000] {
        let src = list_file(n);
        let rules = load(std::slice::from_ref(&src), None).expect("the list loads");
        assert_eq!(rules.domain_count(), n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("list", n), &src, |b, src| {
            b.iter(|| load(std::slice::from_ref(black_box(src)), None).map(|r| r.domain_count()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

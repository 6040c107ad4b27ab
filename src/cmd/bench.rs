//! `picket bench FILE`: throughput of each stage on one capture, measured in one run, each as a
//! ratio to the bare read rate of the same file measured in the same run.
//!
//! Stages are timed as whole passes over the file (read; read + decode; read + decode +
//! dispatch + flows + classification), so nothing reads a clock per packet; a stage's own cost is
//! the difference between consecutive passes. Last comes what a user runs: this binary's whole
//! `replay --events FILE` process, start to exit, as `time` sees it.

use super::load_rules;
use anyhow::{Context, Result};
use picket::capture::file::FileSource;
use picket::decode;
use picket::export::record::Record;
use picket::flow::FlowConfig;
use picket::pipeline;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Examples shown after the options, and in the man page.
pub const EXAMPLES: &str = "\
Examples:
  picket bench pcaps/demo.pcap
  picket bench bulk.pcap --workers 1,2 --repeat 5";

/// Options of `picket bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The capture to measure (read several times; the first pass warms the page cache).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Worker counts to measure the full pipeline with, comma-separated, e.g. `1,2`.
    #[arg(long, value_name = "N", value_delimiter = ',', default_value = "1")]
    workers: Vec<u16>,
    /// Passes per stage; the fastest is reported.
    #[arg(long, value_name = "N", default_value_t = 3)]
    repeat: u32,
    /// Most flows held at once (as for replay).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    max_flows: usize,
}

/// CPU time of a full pipeline pass: the read-ahead thread, the reader, and each worker's
/// (packets, CPU time).
struct Cpu {
    ahead: Duration,
    reader: Duration,
    workers: Vec<(u64, Duration)>,
}

struct Pass {
    packets: u64,
    bytes: u64,
    elapsed: Duration,
    /// Full pipeline passes only.
    cpu: Option<Cpu>,
}

fn best<F: FnMut() -> Result<Pass>>(repeat: u32, mut f: F) -> Result<Pass> {
    let mut best: Option<Pass> = None;
    for _ in 0..repeat.max(1) {
        let p = f()?;
        if best.as_ref().is_none_or(|b| p.elapsed < b.elapsed) {
            best = Some(p);
        }
    }
    best.context("no pass ran")
}

/// Reads every record, touching no header.
fn pass_read(file: &PathBuf) -> Result<Pass> {
    let t = Instant::now();
    let mut src = FileSource::open(file)?;
    let (mut packets, mut bytes) = (0u64, 0u64);
    while let Some(p) = src.next_packet()? {
        packets += 1;
        bytes += p.data.len() as u64;
    }
    Ok(Pass {
        packets,
        bytes,
        elapsed: t.elapsed(),
        cpu: None,
    })
}

/// Reads and decodes every record.
fn pass_decode(file: &PathBuf) -> Result<(Pass, u64)> {
    let t = Instant::now();
    let mut src = FileSource::open(file)?;
    let (mut packets, mut bytes, mut decoded) = (0u64, 0u64, 0u64);
    while let Some(p) = src.next_packet()? {
        packets += 1;
        bytes += p.data.len() as u64;
        decoded += u64::from(decode::decode(p.link, p.ts, p.orig_len, p.data).is_ok());
    }
    Ok((
        Pass {
            packets,
            bytes,
            elapsed: t.elapsed(),
            cpu: None,
        },
        decoded,
    ))
}

fn row(name: &str, p: &Pass, base: &Pass) {
    let secs = p.elapsed.as_secs_f64().max(1e-9);
    println!(
        "{:<28} {:>9.3} s {:>10.2} Mpkt/s {:>8.2} Gbit/s {:>8.2}",
        name,
        secs,
        p.packets as f64 / secs / 1e6,
        p.bytes as f64 * 8.0 / secs / 1e9,
        base.elapsed.as_secs_f64() / secs
    );
}

/// CPU time per packet of the read-ahead thread and the reader (all packets) and of each worker
/// (its own packets): a worker's cost stays flat as workers are added when the work splits
/// without overhead.
fn cpu_rows(packets: u64, ahead: Duration, reader: Duration, workers: &[(u64, Duration)]) {
    let per = |d: Duration, n: u64| d.as_nanos() as f64 / n.max(1) as f64;
    let worker_cpu: Duration = workers.iter().map(|w| w.1).sum();
    let each: Vec<String> = workers
        .iter()
        .map(|&(n, d)| format!("{:.0}", per(d, n)))
        .collect();
    println!(
        "{:<28} CPU: read-ahead {:.3} s ({:.0} ns/pkt), reader {:.3} s ({:.0} ns/pkt), workers {:.3} s (ns per own packet: {})",
        "",
        ahead.as_secs_f64(),
        per(ahead, packets),
        reader.as_secs_f64(),
        per(reader, packets),
        worker_cpu.as_secs_f64(),
        each.join(", ")
    );
}

/// One whole `picket replay --quiet --workers N --events FILE CAPTURE` process, as `time` sees
/// it: wall time from start to exit, and the child's user and system CPU.
struct Whole {
    wall: Duration,
    user: Duration,
    sys: Duration,
}

/// CPU time of the waited-for children so far.
fn children_cpu() -> Result<(Duration, Duration)> {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage")?;
    let d = |t: nix::sys::time::TimeVal| {
        Duration::new(
            t.tv_sec().max(0) as u64,
            (t.tv_usec().max(0) as u32) * 1_000,
        )
    };
    Ok((d(u.user_time()), d(u.system_time())))
}

/// Runs this binary's `replay` on `file` with events written to a file, once.
fn pass_whole(
    file: &PathBuf,
    workers: u16,
    max_flows: usize,
    events: &std::path::Path,
) -> Result<Whole> {
    let exe = std::env::current_exe().context("cannot find this program to run its replay")?;
    let (u0, s0) = children_cpu()?;
    let t = Instant::now();
    let out = std::process::Command::new(exe)
        .arg("replay")
        .arg("--quiet")
        .arg("--workers")
        .arg(workers.to_string())
        .arg("--max-flows")
        .arg(max_flows.to_string())
        .arg("--events")
        .arg(events)
        .arg(file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .context("cannot start the replay")?;
    let wall = t.elapsed();
    let (u1, s1) = children_cpu()?;
    if !out.status.success() {
        anyhow::bail!(
            "the replay failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(Whole {
        wall,
        user: u1.saturating_sub(u0),
        sys: s1.saturating_sub(s0),
    })
}

/// Runs `picket bench`.
pub fn run(a: Args) -> Result<ExitCode> {
    let rules = Arc::new(load_rules(None, &[], None)?);
    pass_read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let read = best(a.repeat, || pass_read(&a.file))?;
    let mut decoded = 0;
    let dec = best(a.repeat, || {
        let (p, d) = pass_decode(&a.file)?;
        decoded = d;
        Ok(p)
    })?;
    println!(
        "{}: {} packets, {} frame bytes, {} decoded as TCP/UDP",
        a.file.display(),
        read.packets,
        read.bytes,
        decoded
    );
    println!(
        "{:<28} {:>11} {:>17} {:>15} {:>8}",
        "stage", "time", "rate", "", "x read"
    );
    row("read (no header touched)", &read, &read);
    row("read + decode", &dec, &read);
    for w in &a.workers {
        let cfg = pipeline::Config {
            low_latency: false,
            workers: usize::from(*w),
            flow: FlowConfig {
                max_flows: a.max_flows,
                ..FlowConfig::default()
            },
            ..pipeline::Config::default()
        };
        let mut flows = 0u64;
        let full = best(a.repeat, || {
            let mut n = 0u64;
            let r = pipeline::replay(
                std::slice::from_ref(&a.file),
                &cfg,
                Arc::clone(&rules),
                pipeline::Hooks::default(),
                |o| {
                    n += o
                        .records
                        .iter()
                        .filter(|e| matches!(e, Record::Flow(_)))
                        .count() as u64
                },
            );
            flows = n;
            Ok(Pass {
                packets: r.read.packets,
                bytes: read.bytes,
                elapsed: r.elapsed,
                cpu: Some(Cpu {
                    ahead: r.read.helper_cpu,
                    reader: r.reader_cpu,
                    workers: r.workers.cpu,
                }),
            })
        })?;
        row(&format!("full pipeline, {w} worker(s)"), &full, &read);
        println!("{:<28} {flows} flows", "");
        if let Some(c) = &full.cpu {
            cpu_rows(full.packets, c.ahead, c.reader, &c.workers);
        }
        // What a user runs: the whole process, start-up, events file and exit included.
        let events =
            std::env::temp_dir().join(format!("picket-bench-{}.jsonl", std::process::id()));
        let mut runs = Vec::with_capacity(a.repeat.max(1) as usize);
        for _ in 0..a.repeat.max(1) {
            runs.push(pass_whole(&a.file, *w, a.max_flows, &events));
        }
        let _ = std::fs::remove_file(&events);
        let mut runs = runs.into_iter().collect::<Result<Vec<_>>>()?;
        runs.sort_by_key(|r| r.wall);
        let median = &runs[runs.len() / 2];
        let whole = Pass {
            packets: full.packets,
            bytes: read.bytes,
            elapsed: runs[0].wall,
            cpu: None,
        };
        row(&format!("whole replay --events, {w} w."), &whole, &read);
        println!(
            "{:<28} as `time` sees it: best {:.3} s, median {:.3} s wall (user {:.3} s, sys {:.3} s); {:.2}x the pipeline's time",
            "",
            runs[0].wall.as_secs_f64(),
            median.wall.as_secs_f64(),
            median.user.as_secs_f64(),
            median.sys.as_secs_f64(),
            runs[0].wall.as_secs_f64() / full.elapsed.as_secs_f64().max(1e-9),
        );
    }
    println!("(x read: the stage's rate as a fraction of the bare read rate, same run; best of {} passes)", a.repeat.max(1));
    Ok(ExitCode::SUCCESS)
}

//! `picket replay FILE...`: classify every flow of capture files.

use super::{load_rules, EXIT_DAMAGED, EXIT_UNREADABLE};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use picket::engine::{self, EngineConfig};
use picket::export::events::EventWriter;
use picket::export::summary::Summary;
use picket::flow::FlowConfig;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Inputs smaller than this get no progress bar.
const PROGRESS_MIN_BYTES: u64 = 16 << 20;

/// Options of `picket replay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Capture files (pcap or pcapng), processed in this order as one timeline.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Write JSON-lines events to PATH ('-' for standard output; the summary then goes to
    /// standard error).
    #[arg(long, value_name = "PATH")]
    events: Option<PathBuf>,
    /// Use the rule files of DIR instead of the embedded defaults.
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
    /// A policy file that overrides the rules' default verdicts.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Worker threads [default: cores - 1, at least 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,
    /// Most flows held at once, for the whole sensor; the least recently seen is evicted past it.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    max_flows: usize,
    /// Seconds without a packet after which an open TCP connection ends.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    tcp_idle: u64,
    /// Seconds without a packet after which a UDP conversation ends.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    udp_idle: u64,
    /// Seconds a TCP connection is kept after FIN both ways or a RST.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    closing_grace: u64,
    /// No summary and no progress bar.
    #[arg(long, short)]
    quiet: bool,
}

const SEC: u64 = 1_000_000_000;

/// Opens the events output: standard output, or a file created with mode 0640.
fn open_events(path: &PathBuf) -> Result<Box<dyn Write + Send>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufWriter::new(io::stdout())));
    }
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o640);
    }
    let f = opts
        .open(path)
        .with_context(|| format!("cannot create events file {}", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(1 << 16, f)))
}

/// Runs `picket replay`.
pub fn run(a: Args) -> Result<ExitCode> {
    let rules = Arc::new(load_rules(a.rules.as_deref(), a.policy.as_deref())?);
    let cfg = EngineConfig {
        workers: a.workers.map_or_else(engine::default_workers, usize::from),
        flow: FlowConfig {
            tcp_idle_ns: a.tcp_idle.saturating_mul(SEC),
            udp_idle_ns: a.udp_idle.saturating_mul(SEC),
            closing_grace_ns: a.closing_grace.saturating_mul(SEC),
            max_flows: a.max_flows.max(1),
        },
    };
    let events_to_stdout = a.events.as_ref().is_some_and(|p| p.as_os_str() == "-");
    let mut writer = match &a.events {
        Some(p) => Some(EventWriter::new(open_events(p)?)),
        None => None,
    };
    let total: u64 = a
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = (!a.quiet && io::stderr().is_terminal() && total >= PROGRESS_MIN_BYTES).then(|| {
        let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let progress = |pos: u64| {
        if let Some(b) = &bar {
            b.set_position(pos);
        }
    };
    let mut summary = Summary::default();
    let mut write_error: Option<io::Error> = None;
    let report = engine::replay(
        &a.files,
        &cfg,
        rules,
        engine::Hooks {
            progress: Some(&progress),
            ..Default::default()
        },
        |rec| {
            summary.add(&rec);
            if let (Some(w), None) = (writer.as_mut(), write_error.as_ref()) {
                if let Err(e) = w.flow(&rec) {
                    write_error = Some(e);
                }
            }
        },
    );
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(w) = writer.as_mut() {
        if let Err(e) = w.flush() {
            write_error.get_or_insert(e);
        }
    }
    for e in &report.read.errors {
        eprintln!("picket: {e}");
    }
    if !a.quiet {
        let text = summary.render(&report);
        if events_to_stdout {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    if let Some(e) = write_error {
        anyhow::bail!("writing events failed: {e}");
    }
    Ok(if report.read.errors.is_empty() {
        ExitCode::SUCCESS
    } else if report.read.packets == 0 {
        ExitCode::from(EXIT_UNREADABLE)
    } else {
        ExitCode::from(EXIT_DAMAGED)
    })
}

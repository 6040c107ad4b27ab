//! `picket replay FILE...`: classify every flow of capture files.

use super::common::{self, CommonArgs, SummaryFormat};
use super::{EXIT_DAMAGED, EXIT_UNREADABLE};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use picket::capture::file::{expand, Filter, Input, Order};
use picket::export::lines::Replacement;
use picket::export::metrics::Metrics;
use picket::export::report::Report;
use picket::export::sink::Sink;
use picket::pipeline::{self, Control, Hooks};
use std::io::{self, BufWriter, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Examples shown after the options, and in the man page.
pub const EXAMPLES: &str = "\
Examples:
  picket replay capture.pcapng
  picket replay --events flows.jsonl a.pcap b.pcap
  picket replay --events - capture.pcap | jq .
  picket replay --report report.html capture.pcap
  picket replay --format json capture.pcap
  picket replay --rules my-rules/ --policy policy.toml capture.pcap";

/// `--order`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum OrderArg {
    /// Packets of all inputs merged by time.
    Time,
    /// Each input to its end, in the order given.
    Given,
}

/// Inputs smaller than this get no progress bar.
const PROGRESS_MIN_BYTES: u64 = 16 << 20;

/// Options of `picket replay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Captures (pcap or pcapng, plain or gzip/zstd/xz-compressed), folders of them (read
    /// recursively, captures picked by content), or `-` for standard input; their packets make
    /// one timeline.
    #[arg(required = true, value_name = "PATH")]
    files: Vec<PathBuf>,
    /// How several inputs make one timeline: merged by packet time whatever their order, as
    /// mergecap does, or each read to its end in the order given.
    #[arg(long, value_enum, value_name = "MODE", default_value = "time")]
    order: OrderArg,
    /// Read only what this BPF expression (tcpdump syntax) accepts, as `picket live --bpf`
    /// captures it (needs the `live` feature: libpcap compiles the expression).
    #[arg(long, value_name = "EXPR")]
    bpf: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
    /// Serve /metrics, /healthz and /ready on this address while replaying [default: no
    /// endpoint].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// No summary and no progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Summary format: a table, or one JSON object for scripts.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "table")]
    format: SummaryFormat,
    /// Write the analyst's report to PATH: one self-contained HTML file (per-app totals, a
    /// timeline, top clients and servers of flagged apps, a filterable table of flagged flows,
    /// at most 10,000 rows). Written beside PATH (mode 0640; created before the replay starts, so a
    /// folder that cannot be written fails at once) and renamed over it once whole.
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
}

/// Creates the report's replacement beside its path (mode 0640), so a path that cannot be
/// written fails before the replay; renamed over the path once the report is whole.
fn create_report(path: &Path) -> Result<Replacement> {
    Replacement::create(path).with_context(|| format!("cannot create {}", path.display()))
}

/// The `--bpf` filter, compiled by libpcap; an error without the `live` feature.
fn bpf_filter(expr: Option<&str>) -> Result<Option<Filter>> {
    let Some(expr) = expr else {
        return Ok(None);
    };
    #[cfg(feature = "live")]
    {
        let f = picket::capture::bpf::Bpf::new(expr).map_err(anyhow::Error::msg)?;
        Ok(Some(Box::new(f)))
    }
    #[cfg(not(feature = "live"))]
    {
        anyhow::bail!(
            "--bpf {expr:?}: this picket was built without the `live` feature, and only libpcap \
             compiles BPF; build with `--features live` or filter with tcpdump -r FILE -w - EXPR"
        )
    }
}

/// Runs `picket replay`.
pub fn run(a: Args) -> Result<ExitCode> {
    common::init_logs(a.common.log_format);
    common::check_outputs(
        &a.files,
        &[
            ("--events", a.common.events.as_deref()),
            ("--alerts", a.common.alerts.as_deref()),
            ("--report", a.report.as_deref()),
        ],
    )?;
    // An input that cannot be opened is named and the others are read (exit 1 at the end).
    let expanded = expand(&a.files);
    for e in &expanded.errors {
        eprintln!("picket: {e}");
    }
    let unopened = expanded.errors.len();
    if expanded.inputs.is_empty() {
        return Ok(ExitCode::from(EXIT_UNREADABLE));
    }
    let inputs = expanded.inputs;
    let filter = bpf_filter(a.bpf.as_deref())?;
    let order = match a.order {
        OrderArg::Time => Order::Time,
        OrderArg::Given => Order::Given,
    };
    let rules = Arc::new(a.common.load_rules()?);
    let cfg = a.common.pipeline();
    let control = Arc::new(Control::default());
    let reopen = Arc::new(AtomicBool::new(false));
    common::watch_signals(Arc::clone(&control), Arc::clone(&reopen))?;
    let metrics = match a.listen {
        Some(_) => Some(Arc::new(Metrics::new(cfg.workers)?)),
        None => None,
    };
    let server = match (a.listen, &metrics) {
        (Some(addr), Some(m)) => {
            m.flow_capacity(cfg.flow.max_flows);
            m.rules_loaded(&rules);
            Some(common::serve_metrics(
                addr,
                m,
                a.common.web_config.as_ref(),
            )?)
        }
        _ => None,
    };
    if let Some((_, state)) = &server {
        state.ready.store(true, Ordering::Relaxed);
    }
    let opts = a.common.sink(cfg.workers)?;
    let mut sink = Sink::new(&opts, metrics.clone(), reopen)?;
    let report_out = a.report.as_deref().map(create_report).transpose()?;
    if report_out.is_some() {
        sink.report =
            Some(Report::new(a.common.sensor_name.clone()).with_client_addrs(opts.clients.clone()));
    }
    let total: u64 = inputs
        .iter()
        .filter_map(|i| match i {
            Input::Path(p) => std::fs::metadata(p).ok(),
            Input::Stdin => None,
        })
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
    let reload_rules = || a.common.reload();
    let hooks = Hooks {
        control: Some(&control),
        metrics: metrics.as_deref(),
        reload: Some(&reload_rules),
        progress: Some(&progress),
    };
    let report = pipeline::replay_inputs(&inputs, order, filter, &cfg, rules, hooks, |o| {
        sink.output(o)
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let flushed = sink.finish();
    for e in &report.read.errors {
        eprintln!("picket: {e}");
    }
    let written = match (report_out, &sink.report, &a.report) {
        (Some(mut out), Some(r), Some(path)) => {
            let files: Vec<String> = inputs
                .iter()
                .map(|i| i.name().display().to_string())
                .collect();
            r.write_html(
                BufWriter::with_capacity(1 << 16, out.file()),
                &sink.summary,
                &report,
                &files,
            )
            .and_then(|()| out.commit())
            .with_context(|| format!("writing the report {} failed", path.display()))
        }
        _ => Ok(()),
    };
    if !a.quiet {
        common::print_summary(&sink, &report, a.common.events_to_stdout(), a.format);
    }
    written?;
    if let Err(e) = flushed {
        anyhow::bail!("writing events failed: {e}");
    }
    if sink.dropped() > 0 {
        anyhow::bail!("writing events failed: {} events dropped", sink.dropped());
    }
    if let Some(code) = common::stop_status().filter(|_| report.stopped) {
        return Ok(ExitCode::from(code));
    }
    Ok(if report.read.errors.is_empty() && unopened == 0 {
        ExitCode::SUCCESS
    } else if report.read.files == 0 || unopened > 0 {
        ExitCode::from(EXIT_UNREADABLE)
    } else {
        ExitCode::from(EXIT_DAMAGED)
    })
}

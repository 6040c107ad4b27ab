//! `picket live -i IFACE`: the sensor on a span or mirror port.

use super::common::{self, CommonArgs};
use anyhow::{Context, Result};
use picket::capture::live::{LiveConfig, LiveSource};
use picket::capture::privilege;
use picket::export::metrics::Metrics;
use picket::export::sink::Sink;
use picket::pipeline::{self, Control, Hooks, PumpEnd};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Examples shown after the options, and in the man page.
pub const EXAMPLES: &str = "\
Examples:
  picket live -i eth1 --events /var/log/picket/flows.jsonl
  picket live -i eth1 --bpf 'not port 22' --listen 0.0.0.0:9898 --log-format json
  picket live -i eth1 --web-config web.yml --sensor-name edge-1 --client-addresses hash
  picket live -i eth1 --queues 4 --events /var/log/picket/flows.jsonl";

/// With --queues, the read timeout is at most this (ms).
const QUEUE_TIMEOUT_MS: i32 = 5;

/// Options of `picket live`.

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The interface to capture on (a span or mirror port).
    #[arg(short, long, value_name = "IFACE")]
    interface: String,
    /// Capture only what this BPF expression (tcpdump syntax) accepts.
    #[arg(long, value_name = "EXPR")]
    bpf: Option<String>,
    /// Bytes kept per packet (the snap length).
    #[arg(long, value_name = "BYTES", default_value_t = 262_144)]
    snaplen: i32,
    /// Once the capture is open, run as this user [default: nobody when started as root; else
    /// stay as started]. Every capability is shed either way.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Do not put the interface in promiscuous mode.
    #[arg(long)]
    no_promisc: bool,
    /// Kernel capture buffer in MiB: what absorbs bursts while the pipeline catches up.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    buffer_mib: i32,
    /// Read timeout in milliseconds: how long packets may wait on a quiet link.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    timeout_ms: i32,
    /// Capture queues (Linux): N handles on the interface in one PACKET_FANOUT group, which the
    /// kernel hands each flow to (a symmetric hash, fragments reassembled first); each queue has
    /// its own reader and worker, so --workers is N, and --timeout-ms is at most 5. 1: one handle
    /// and --workers workers.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=picket::capture::live::MAX_QUEUES as i64))]
    queues: u16,
    #[command(flatten)]
    common: CommonArgs,
    /// Serve /metrics, /healthz and /ready here (loopback unless you say otherwise).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9898")]
    listen: SocketAddr,
    /// No summary at exit.
    #[arg(long, short)]
    quiet: bool,
    /// Summary format at exit: a table, or one JSON object for scripts.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "table")]
    format: common::SummaryFormat,
}

/// Runs `picket live`.
pub fn run(a: Args) -> Result<ExitCode> {
    common::init_logs(a.common.log_format);
    let rules = Arc::new(a.common.load_rules()?);
    let queues = usize::from(a.queues);
    let mut cfg = pipeline::Config {
        low_latency: true,
        ..a.common.pipeline()
    };
    let live = LiveConfig {
        interface: a.interface.clone(),
        bpf: a.bpf.clone(),
        snaplen: a.snaplen,
        promisc: !a.no_promisc,
        buffer_mib: a.buffer_mib,
        // A quiet queue says how far it has read each time it wakes, and the other queues'
        // workers wait for that (pipeline::queues): it wakes often.
        timeout_ms: if queues > 1 {
            a.timeout_ms.min(QUEUE_TIMEOUT_MS)
        } else {
            a.timeout_ms
        },
    };
    let mut srcs = if queues > 1 {
        cfg.workers = queues;
        // A fanout group id unique on this host among running sensors.
        let group = (std::process::id() & 0xffff) as u16;
        LiveSource::open_queues(&live, queues, group)
    } else {
        LiveSource::open(&live).map(|s| vec![s])
    }
    .context("live capture")?;
    let mut metrics = Metrics::new(cfg.workers)?;
    if queues > 1 {
        metrics = metrics.with_queues(queues);
    }
    let metrics = Arc::new(metrics);
    let reopen = Arc::new(AtomicBool::new(false));
    // The outputs before the privilege drop, so they may go where only root creates files (the
    // README's /var/log/picket); replaced files are renamed into place now, while the folder may
    // still be written, and every file is handed to the user the sensor becomes, so a SIGHUP
    // reopen of the same path still works after the drop.
    let mut sink = Sink::new(
        &a.common.sink(cfg.workers)?,
        Some(Arc::clone(&metrics)),
        Arc::clone(&reopen),
    )?;
    sink.commit()?;
    if let Some((uid, gid)) = privilege::switch_ids(a.user.as_deref())? {
        for f in sink.files() {
            std::os::unix::fs::fchown(f, Some(uid), Some(gid))
                .context("handing an output file to the run-as user")?;
        }
    }
    // Before any thread starts: every later thread inherits the reduced state.
    let dropped = privilege::drop_privileges(a.user.as_deref()).context("dropping privileges")?;
    tracing::info!(
        user = dropped.user.as_deref().unwrap_or("(unchanged)"),
        uid = dropped.uid,
        gid = dropped.gid,
        "privileges dropped: no capabilities, no_new_privs"
    );
    metrics.flow_capacity(cfg.flow.max_flows);
    metrics.rules_loaded(&rules);
    let (server, http) = common::serve_metrics(a.listen, &metrics, a.common.web_config.as_ref())?;
    let control = Arc::new(Control::default());
    common::watch_signals(Arc::clone(&control), Arc::clone(&reopen))?;

    tracing::info!(
        interface = %a.interface,
        link = ?srcs[0].link(),
        queues,
        workers = cfg.workers,
        apps = rules.apps().len(),
        "capturing"
    );
    let reload_rules = || a.common.reload();
    let hooks = Hooks {
        control: Some(&control),
        metrics: Some(&metrics),
        reload: Some(&reload_rules),
        progress: None,
    };
    let mut failure = None;
    let report = if queues > 1 {
        http.ready.store(true, Ordering::Relaxed);
        let end = pipeline::queues::run_queues(&cfg, rules, hooks, |o| sink.output(o), srcs);
        srcs = end.sources;
        failure = end.failure;
        end.report
    } else {
        pipeline::run(
            &cfg,
            rules,
            hooks,
            |o| sink.output(o),
            |reader| {
                http.ready.store(true, Ordering::Relaxed);
                match reader.pump(&mut srcs[0]) {
                    PumpEnd::Stopped => true,
                    PumpEnd::End => false,
                    PumpEnd::Failed(e) => {
                        failure = Some(e);
                        false
                    }
                }
            },
        )
    };
    http.ready.store(false, Ordering::Relaxed);
    sink.finish().context("writing events")?;
    metrics.refresh();
    drop(server);
    let drops: Vec<_> = srcs.iter_mut().map(LiveSource::drops).collect();
    tracing::info!(
        packets = report.read.packets,
        kernel_drops = drops.iter().map(|d| d.kernel).sum::<u64>(),
        kernel_drops_per_queue = ?drops.iter().map(|d| d.kernel).collect::<Vec<_>>(),
        interface_drops = drops.iter().map(|d| d.interface).max().unwrap_or(0),
        flows = sink.summary.flows(),
        "stopped"
    );
    if !a.quiet {
        common::print_summary(&sink, &report, a.common.events_to_stdout(), a.format);
    }
    if let Some(e) = failure {
        anyhow::bail!("{e}");
    }
    Ok(ExitCode::SUCCESS)
}

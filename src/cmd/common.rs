//! What replay and live share: options, rules, the events sink, metrics and its endpoint,
//! signals, logs, and the consumer of ended flows.

use super::load_rules;
use anyhow::{Context, Result};
use picket::engine::{self, Control, EngineConfig};
use picket::export::events::EventWriter;
use picket::export::http::{HttpServer, HttpState};
use picket::export::metrics::Metrics;
use picket::export::summary::Summary;
use picket::flow::{FlowConfig, FlowRecord};
use picket::rules::CompiledRules;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const SEC: u64 = 1_000_000_000;

/// Log line format.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    /// Plain text for people.
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Options replay and live share.
#[derive(clap::Args, Debug)]
pub struct CommonArgs {
    /// Write JSON-lines events to PATH ('-' for standard output; the summary then goes to
    /// standard error). The file is created with mode 0640 and reopened on SIGHUP (rotation).
    #[arg(long, value_name = "PATH")]
    pub events: Option<PathBuf>,
    /// Use the rule files of DIR instead of the embedded defaults (reloaded on SIGHUP).
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// A policy file that overrides the rules' default verdicts (reloaded on SIGHUP).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Worker threads [default: cores - 1, at least 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
    /// Most flows held at once, for the whole sensor; the least recently seen is evicted past it.
    /// About 300 bytes each when full.
    #[arg(long, value_name = "N", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub max_flows: u64,
    /// Seconds without a packet after which an open TCP connection ends.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub tcp_idle: u64,
    /// Seconds without a packet after which a UDP conversation ends.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub udp_idle: u64,
    /// Seconds a TCP connection is kept after FIN both ways or a RST.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub closing_grace: u64,
    /// Log line format on standard error.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
}

impl CommonArgs {
    /// The engine configuration these options describe.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            workers: self
                .workers
                .map_or_else(engine::default_workers, usize::from),
            flow: FlowConfig {
                tcp_idle_ns: self.tcp_idle.saturating_mul(SEC),
                udp_idle_ns: self.udp_idle.saturating_mul(SEC),
                closing_grace_ns: self.closing_grace.saturating_mul(SEC),
                max_flows: usize::try_from(self.max_flows).unwrap_or(usize::MAX),
            },
        }
    }

    /// Loads the rules these options name.
    pub fn load_rules(&self) -> Result<CompiledRules> {
        load_rules(self.rules.as_deref(), self.policy.as_deref())
    }

    /// Whether events go to standard output.
    pub fn events_to_stdout(&self) -> bool {
        self.events.as_ref().is_some_and(|p| p.as_os_str() == "-")
    }
}

/// Sets up logging to standard error.
pub fn init_logs(format: LogFormat) {
    let b = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_target(false);
    // A second initialisation (tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Human => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}

/// Opens the events output: standard output, or a file created with mode 0640 (appending, so a
/// reopen after rotation never truncates what a shipper has not read).
fn open_events(path: &PathBuf, truncate: bool) -> io::Result<Box<dyn Write + Send>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufWriter::new(io::stdout())));
    }
    let mut opts = OpenOptions::new();
    opts.create(true);
    if truncate {
        opts.write(true).truncate(true);
    } else {
        opts.append(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o640);
    }
    Ok(Box::new(BufWriter::with_capacity(
        1 << 16,
        opts.open(path)?,
    )))
}

/// The consumer side of a run: the summary, the events file and the per-flow metrics.
pub struct Sink {
    path: Option<PathBuf>,
    writer: Option<EventWriter<Box<dyn Write + Send>>>,
    /// Per-app totals.
    pub summary: Summary,
    metrics: Option<Arc<Metrics>>,
    reopen: Arc<AtomicBool>,
    failed: bool,
    /// Events that could not be written.
    pub dropped: u64,
}

impl Sink {
    /// Opens the events file (truncating it, as a fresh run does).
    pub fn new(
        path: Option<PathBuf>,
        metrics: Option<Arc<Metrics>>,
        reopen: Arc<AtomicBool>,
    ) -> Result<Self> {
        let writer = match &path {
            Some(p) => Some(EventWriter::new(open_events(p, true).with_context(
                || format!("cannot create events file {}", p.display()),
            )?)),
            None => None,
        };
        Ok(Sink {
            path,
            writer,
            summary: Summary::default(),
            metrics,
            reopen,
            failed: false,
            dropped: 0,
        })
    }

    /// Takes a batch of ended flows and flushes their events, so a live sensor's events reach
    /// the file as flows end.
    pub fn records(&mut self, recs: &[FlowRecord]) {
        for r in recs {
            self.record(r);
        }
        if let Some(w) = self.writer.as_mut() {
            if w.flush().is_err() && !self.failed {
                tracing::error!("flushing events failed");
                self.failed = true;
            }
        }
    }

    /// Takes one ended flow.
    fn record(&mut self, rec: &FlowRecord) {
        self.summary.add(rec);
        if let Some(m) = &self.metrics {
            let f = &rec.flow;
            let app = f.app.as_deref().map(|a| (&*a.app, a.verdict.as_str()));
            m.flow_ended(app, f.to_server.bytes + f.to_client.bytes);
        }
        if Control::take(&self.reopen) {
            self.reopen_file();
        }
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        let ok = w.flow(rec).is_ok();
        if !ok {
            self.dropped += 1;
            if !self.failed {
                tracing::error!("writing events failed; events are dropped and counted until SIGHUP reopens the file");
                self.failed = true;
            }
        }
        if let Some(m) = &self.metrics {
            m.event(ok);
        }
    }

    fn reopen_file(&mut self) {
        let Some(p) = &self.path else { return };
        if let Some(w) = self.writer.as_mut() {
            let _ = w.flush();
        }
        match open_events(p, false) {
            Ok(f) => {
                self.writer = Some(EventWriter::new(f));
                self.failed = false;
                tracing::info!(path = %p.display(), "events file reopened");
            }
            Err(e) => tracing::error!(path = %p.display(), error = %e, "cannot reopen events file"),
        }
    }

    /// Flushes the events file.
    pub fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

/// Signal handling: SIGTERM and SIGINT ask for a clean stop; SIGHUP asks for a rule reload and an
/// events-file reopen. A second SIGINT or SIGTERM while stopping exits at once.
pub fn watch_signals(control: Arc<Control>, reopen: Arc<AtomicBool>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM])
        .context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("picket-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                match sig {
                    SIGHUP => {
                        tracing::info!("SIGHUP: reloading rules, reopening the events file");
                        control.reload.store(true, Ordering::Relaxed);
                        reopen.store(true, Ordering::Relaxed);
                    }
                    _ => {
                        if control.stop.swap(true, Ordering::Relaxed) {
                            tracing::warn!("second stop signal: exiting now");
                            std::process::exit(130);
                        }
                        tracing::info!("stop requested: draining queues and ending every flow");
                    }
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// Starts the metrics endpoint.
pub fn serve_metrics(
    addr: SocketAddr,
    metrics: &Arc<Metrics>,
) -> Result<(HttpServer, Arc<HttpState>)> {
    let state = Arc::new(HttpState {
        metrics: Arc::clone(metrics),
        ready: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let srv = HttpServer::start(addr, Arc::clone(&state))
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(addr = %srv.addr(), "metrics on http://{}/metrics", srv.addr());
    Ok((srv, state))
}

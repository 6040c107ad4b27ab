//! What replay and live share: options, rules, metrics and its endpoint, signals, logs, and how
//! the options configure the pipeline and the consumer (`export::sink`).

use super::load_rules;
use anyhow::{Context, Result};
use picket::export::events::{ClientAddrs, EventFormat};
use picket::export::http::{HttpServer, HttpState, WebState};
use picket::export::lines::Existing;
use picket::export::metrics::Metrics;
use picket::export::record::RunReport;
use picket::export::sink::{Sink, SinkOptions};
use picket::flow::FlowConfig;
use picket::pipeline::{self, Control};
use picket::rules::CompiledRules;
use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
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
    /// standard error). An existing file is replaced atomically (a new file with mode 0640,
    /// renamed over it at the first write) unless --append is given; reopened for appending on
    /// SIGHUP (rotation). Only whole lines ever reach the file.
    #[arg(long, value_name = "PATH")]
    pub events: Option<PathBuf>,
    /// Append to existing events and alerts files instead of replacing them (a partial last
    /// line is cut off first).
    #[arg(long)]
    pub append: bool,
    /// Use the rule files of DIR instead of the embedded defaults (reloaded on SIGHUP).
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Layer the rule files (`*.toml`, `*.list`) of DIR on the rules in force (repeatable): a
    /// file whose app id is already defined replaces that app's file; others are added.
    #[arg(long, value_name = "DIR")]
    pub rules_add: Vec<PathBuf>,
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
    /// Most memory for reassembling handshakes (TCP streams and QUIC CRYPTO data), for the whole
    /// sensor (BYTES, or with a k, m or g suffix); past it the oldest pending buffers are dropped
    /// and counted (`picket_anomalies_total{kind="reassembly_memcap"}`), their flows still tracked.
    #[arg(long, value_name = "BYTES", default_value = "32m", value_parser = parse_size)]
    pub reassembly_memcap: u64,
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
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "human")]
    pub log_format: LogFormat,
    /// Write alerts alone to PATH too (JSON lines; reopened on SIGHUP like the events file).
    #[arg(long, value_name = "PATH")]
    pub alerts: Option<PathBuf>,
    /// At most one alert per client and app per this many seconds; later ones are counted and
    /// reported in an `alert_suppressed` event when the interval closes (0: every one alerts).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub alert_interval: u64,
    /// A flow that lives longer emits a `flow_update` event every SECS seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub flow_update: u64,
    /// A packet more than SECS seconds ahead of the sensor's clock and of the median of the
    /// recent packets (a damaged or forged timestamp) does not move the clock, so no flow ends
    /// for it; it is counted.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub clock_bound: u64,
    /// This sensor's name: in every event, and prefixed to flow ids so they are unique across a
    /// fleet.
    #[arg(long, value_name = "NAME")]
    pub sensor_name: Option<String>,
    /// Most entries in each shared cache: addresses from DNS answers for app names
    /// (`dns_answer`) and endpoints of calls' STUN exchanges (`peer_cache`); the oldest go first.
    #[arg(long, value_name = "N", default_value_t = 65_536,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub hint_cache: u64,
    /// Client addresses in events: as captured, truncated to the network (/24, /48), or a keyed
    /// hash; flow ids are keyed too in the last two, so they cannot be reversed.
    #[arg(long, value_enum, value_name = "MODE", default_value = "keep")]
    pub client_addresses: ClientAddrMode,
    /// The layout of events: Picket's field names, or the Elastic Common Schema's (for
    /// Elasticsearch and OpenSearch without an ingest pipeline).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "picket")]
    pub events_format: EventsFormat,
    /// The seed of events' `community_id` (Community ID v1): the one the tools whose records are
    /// joined with these use.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub community_id_seed: u16,
    /// Key for `--client-addresses hash`: a file of at least 32 bytes (the same key gives the
    /// same hashes across runs and sensors) [default: a random key for this run].
    #[arg(long, value_name = "FILE")]
    pub client_hash_key: Option<PathBuf>,
    /// TLS and basic authentication for the metrics endpoint: a web config file in the
    /// Prometheus exporter-toolkit format (tls_server_config, basic_auth_users with bcrypt
    /// hashes); read again when it changes.
    #[arg(long, value_name = "FILE")]
    pub web_config: Option<PathBuf>,
}

/// `--events-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EventsFormat {
    /// Picket's field names.
    Picket,
    /// Elastic Common Schema names.
    Ecs,
}

/// `--client-addresses`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAddrMode {
    /// As captured.
    Keep,
    /// IPv4 /24, IPv6 /48.
    Truncate,
    /// HMAC-SHA-256 under a key, 16 hex digits.
    Hash,
}

/// A size in bytes, with an optional k, m or g suffix (powers of 1024).
fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (num, shift) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (BYTES, or a number with k, m or g)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// 32 random bytes from the kernel.
fn random_key() -> Result<[u8; 32]> {
    use std::io::Read;
    let mut k = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut k))
        .context("reading /dev/urandom for a key")?;
    Ok(k)
}

impl CommonArgs {
    /// The pipeline configuration these options describe.
    pub fn pipeline(&self) -> pipeline::Config {
        pipeline::Config {
            low_latency: false,
            workers: self
                .workers
                .map_or_else(pipeline::default_workers, usize::from),
            flow: FlowConfig {
                tcp_idle_ns: self.tcp_idle.saturating_mul(SEC),
                udp_idle_ns: self.udp_idle.saturating_mul(SEC),
                closing_grace_ns: self.closing_grace.saturating_mul(SEC),
                max_flows: usize::try_from(self.max_flows).unwrap_or(usize::MAX),
                update_ns: self.flow_update.saturating_mul(SEC),
                reassembly_memcap: usize::try_from(self.reassembly_memcap).unwrap_or(usize::MAX),
            },
            hint_capacity: usize::try_from(self.hint_cache).unwrap_or(usize::MAX),
            clock_bound: self.clock_bound.saturating_mul(SEC),
        }
    }

    /// Loads the rules these options name.
    pub fn load_rules(&self) -> Result<CompiledRules> {
        load_rules(
            self.rules.as_deref(),
            &self.rules_add,
            self.policy.as_deref(),
        )
    }

    /// How the consumer writes, for `workers` workers.
    pub fn sink(&self, workers: usize) -> Result<SinkOptions> {
        Ok(SinkOptions {
            events: self.events.clone(),
            alerts: self.alerts.clone(),
            sensor: self.sensor_name.clone(),
            workers,
            alert_interval_ns: self.alert_interval.saturating_mul(SEC),
            clients: self.client_addrs()?,
            community_id_seed: self.community_id_seed,
            format: match self.events_format {
                EventsFormat::Picket => EventFormat::Picket,
                EventsFormat::Ecs => EventFormat::Ecs,
            },
            udp_idle_ns: self.udp_idle.saturating_mul(SEC),
            flow_update_ns: self.flow_update.saturating_mul(SEC),
            existing: if self.append {
                Existing::Append
            } else {
                Existing::Replace
            },
        })
    }

    /// How client addresses appear in events.
    pub fn client_addrs(&self) -> Result<ClientAddrs> {
        if self.client_hash_key.is_some() && self.client_addresses != ClientAddrMode::Hash {
            anyhow::bail!("--client-hash-key is only for --client-addresses hash");
        }
        Ok(match self.client_addresses {
            ClientAddrMode::Keep => ClientAddrs::Keep,
            ClientAddrMode::Truncate => ClientAddrs::Truncate {
                key: Arc::new(random_key()?),
            },
            ClientAddrMode::Hash => {
                let key = match &self.client_hash_key {
                    Some(path) => {
                        let bytes = std::fs::read(path).with_context(|| {
                            format!("cannot read the client hash key {}", path.display())
                        })?;
                        if bytes.len() < 32 {
                            anyhow::bail!(
                                "{}: a client hash key needs at least 32 bytes, this one has {}",
                                path.display(),
                                bytes.len()
                            );
                        }
                        // Any length: condensed to 32 bytes.
                        let (prk, _) = hkdf::Hkdf::<sha2::Sha256>::extract(None, &bytes);
                        prk.into()
                    }
                    None => random_key()?,
                };
                ClientAddrs::Hash { key: Arc::new(key) }
            }
        })
    }

    /// Loads the rules again (SIGHUP), as a shareable set or the reason it was refused.
    pub fn reload(&self) -> Result<Arc<CompiledRules>, String> {
        self.load_rules()
            .map(Arc::new)
            .map_err(|e| format!("{e:#}"))
    }

    /// Whether events go to standard output.
    pub fn events_to_stdout(&self) -> bool {
        self.events.as_ref().is_some_and(|p| p.as_os_str() == "-")
    }
}

/// A file's device and inode.
type FileId = (u64, u64);

/// Refuses, before anything is written, an output that is one of the inputs (the same file,
/// by device and inode, whatever the path says) or another output. `outputs` are (option, path).
pub fn check_outputs(inputs: &[PathBuf], outputs: &[(&str, Option<&Path>)]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &Path| {
        (p.as_os_str() != "-")
            .then(|| std::fs::metadata(p).ok())
            .flatten()
            .map(|m| (m.dev(), m.ino()))
    };
    let inputs: Vec<_> = inputs.iter().filter_map(|p| Some((p, id(p)?))).collect();
    let mut seen: Vec<(&str, &Path, Option<FileId>)> = Vec::new();
    for &(opt, path) in outputs {
        let Some(path) = path else { continue };
        if path.as_os_str() == "-" {
            continue;
        }
        let out = id(path);
        if let Some((input, _)) = inputs.iter().find(|(_, i)| Some(*i) == out) {
            anyhow::bail!(
                "{opt} {} is the input {}: refusing to overwrite a capture",
                path.display(),
                input.display()
            );
        }
        if let Some((other, _, _)) = seen
            .iter()
            .find(|(_, p, i)| *p == path || (out.is_some() && *i == out))
        {
            anyhow::bail!("{opt} {} is also the {other} file", path.display());
        }
        seen.push((opt, path, out));
    }
    Ok(())
}

/// Sets up logging to standard error.
pub fn init_logs(format: LogFormat) {
    // Colour only for a person at a terminal, and not when NO_COLOR is set (no-color.org).
    let colour =
        io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let b = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(colour)
        .with_max_level(tracing::Level::INFO)
        .with_target(false);
    // A second initialisation (tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Human => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}

/// How the run summary is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SummaryFormat {
    /// A table for people.
    #[default]
    Table,
    /// One JSON object on one line, for scripts (its fields are listed in README.md).
    Json,
}

/// Prints the run summary: to standard output, or to standard error when the events go there.
pub fn print_summary(
    sink: &Sink,
    report: &RunReport,
    events_to_stdout: bool,
    format: SummaryFormat,
) {
    let text = match format {
        SummaryFormat::Table => sink.summary.render(report),
        SummaryFormat::Json => {
            let json = serde_json::to_string(&sink.summary.json(report))
                .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string());
            json + "\n"
        }
    };
    if events_to_stdout {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// The stop signal (SIGINT or SIGTERM) that stopped the run, 0 when none did.
static STOPPED_BY: AtomicI32 = AtomicI32::new(0);

/// The exit status shells expect of a run a stop signal ended (130 for SIGINT, 143 for SIGTERM),
/// when one did.
pub fn stop_status() -> Option<u8> {
    match STOPPED_BY.load(Ordering::Relaxed) {
        0 => None,
        sig => u8::try_from(128 + sig).ok(),
    }
}

/// Signal handling: SIGTERM and SIGINT ask for a clean stop (every event and the report are
/// still written); SIGHUP asks for a rule reload and an events-file reopen. A second stop signal
/// only warns; a third exits at once, removing temporary files not yet renamed over their paths
/// (the files they were to replace stay as they were).
pub fn watch_signals(control: Arc<Control>, reopen: Arc<AtomicBool>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM])
        .context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("picket-signals".into())
        .spawn(move || {
            let mut stops = 0;
            for sig in signals.forever() {
                match sig {
                    SIGHUP => {
                        tracing::info!("SIGHUP: reloading rules, reopening the events file");
                        control.reload.store(true, Ordering::Relaxed);
                        reopen.store(true, Ordering::Relaxed);
                    }
                    _ => {
                        stops += 1;
                        match stops {
                            1 => {
                                let _ = STOPPED_BY.compare_exchange(
                                    0,
                                    sig,
                                    Ordering::Relaxed,
                                    Ordering::Relaxed,
                                );
                                control.stop.store(true, Ordering::Relaxed);
                                tracing::info!(
                                    "stop requested: draining queues, ending every flow, writing                                      every event and the report"
                                );
                            }
                            2 => tracing::warn!(
                                "still stopping, writing every event and the report; a third                                  stop signal exits at once without them"
                            ),
                            _ => {
                                tracing::warn!("third stop signal: exiting now");
                                picket::export::lines::remove_temporary_files();
                                let code = 128 + STOPPED_BY.load(Ordering::Relaxed).max(sig);
                                std::process::exit(code);
                            }
                        }
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
    web_config: Option<&PathBuf>,
) -> Result<(HttpServer, Arc<HttpState>)> {
    let web = web_config
        .map(|p| WebState::load(p.clone()))
        .transpose()
        .context("--web-config")?;
    let scheme = match &web {
        Some(_) => "https or http per --web-config",
        None => "http",
    };
    let state = Arc::new(HttpState {
        metrics: metrics.clone(),
        ready: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        web,
    });
    let srv = HttpServer::start(addr, Arc::clone(&state))
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(addr = %srv.addr(), scheme, "metrics on {}/metrics", srv.addr());
    Ok((srv, state))
}

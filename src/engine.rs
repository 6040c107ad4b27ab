//! The engine: packet sources through decode and the worker pipeline, ended flows to one consumer
//! thread. Replay (capture files, in the order given, as one timeline) and live capture drive the
//! same code; only the source differs.
//!
//! Between packets the reader looks around every few thousand packets and whenever a live link is
//! quiet: it publishes its counters, applies a requested rule reload, and stops when asked. Those
//! checks are plain loads of flags; nothing is locked per packet.

use crate::capture::file::FileSource;
use crate::capture::{PacketSource, Read, Timestamp};
use crate::classify::hints::{HintWriter, Hints};
use crate::decode::{DecodeStats, Decoded, Decoder, Skip, Transport};
use crate::dispatch::WorkerOutput;
use crate::dispatch::{Pipeline, WorkerReport};
use crate::export::metrics::Metrics;
use crate::flow::FlowConfig;
use crate::rules::CompiledRules;
use crossbeam_channel::bounded;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How the engine runs.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Live capture: favour latency (partly filled batches are sent after a short while).
    pub low_latency: bool,
    /// Flow timeouts and limits, for the whole sensor (split across workers).
    pub flow: FlowConfig,
    /// Entries in each of the shared caches (DNS answers, call endpoints).
    pub hint_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: default_workers(),
            low_latency: false,
            flow: FlowConfig::default(),
            hint_capacity: crate::classify::hints::DEFAULT_CAPACITY,
        }
    }
}

/// Cores − 1 (one is the reader's), at least 1.
pub fn default_workers() -> usize {
    thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

/// What reading and decoding saw.
#[derive(Clone, Debug, Default)]
pub struct ReadStats {
    /// Sources opened successfully.
    pub files: usize,
    /// Packets read.
    pub packets: u64,
    /// Their bytes on the wire.
    pub bytes: u64,
    /// Packets handed to the workers (TCP/UDP over IP; a reassembled datagram counts once).
    pub decoded: u64,
    /// Packets skipped, by [`Skip::index`].
    pub skips: [u64; Skip::ALL.len()],
    /// Tunnels seen and fragment reassembly.
    pub decode: DecodeStats,
    /// Errors, each naming its source (file, packet and byte offset for captures).
    pub errors: Vec<String>,
    /// CPU time of the sources' helper threads (files read ahead), summed when each ends.
    pub helper_cpu: Duration,
}

impl ReadStats {
    /// Packets skipped for any reason.
    pub fn skipped(&self) -> u64 {
        self.skips.iter().sum()
    }

    /// Packets skipped because they were damaged (truncated or malformed headers).
    pub fn decode_errors(&self) -> u64 {
        Skip::ALL
            .iter()
            .filter(|k| k.is_error())
            .map(|k| self.skips[k.index()])
            .sum()
    }
}

/// Everything a run counted.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// Reading and decoding.
    pub read: ReadStats,
    /// The workers' counters.
    pub workers: WorkerReport,
    /// Worker threads used.
    pub workers_used: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// CPU time of the reader thread (reading, decoding, dispatching) while it fed the workers.
    pub reader_cpu: Duration,
    /// The run was stopped on request before its input ended.
    pub stopped: bool,
}

/// Requests from outside (signal handlers): plain flags the reader looks at between packets.
#[derive(Debug, Default)]
pub struct Control {
    /// Stop reading, end every flow, and return.
    pub stop: AtomicBool,
    /// Reload the rules.
    pub reload: AtomicBool,
}

impl Control {
    /// Takes a flag: true once after it was set.
    pub fn take(flag: &AtomicBool) -> bool {
        flag.load(Ordering::Relaxed) && flag.swap(false, Ordering::Relaxed)
    }
}

/// Loads a fresh rule set, for reloads.
pub type Reloader<'a> = &'a (dyn Fn() -> Result<Arc<CompiledRules>, String> + Sync);

/// Progress callback: bytes of input consumed so far.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// Optional companions of a run.
#[derive(Clone, Copy, Default)]
pub struct Hooks<'a> {
    /// Stop and reload requests.
    pub control: Option<&'a Control>,
    /// Where counters are published.
    pub metrics: Option<&'a Metrics>,
    /// How to reload rules (on `control.reload`).
    pub reload: Option<Reloader<'a>>,
    /// Progress reports.
    pub progress: Option<Progress<'a>>,
}

/// Batches of ended flows queued for the consumer (each at most a worker batch's worth), so a
/// slow events sink bounds memory and slows the workers instead.
const RECORD_BATCHES: usize = 64;

/// Look around every this many packets.
const TICK_EVERY: u64 = 4096;

/// How a source's pumping ended.
#[derive(Debug)]
pub enum PumpEnd {
    /// The source has no more packets.
    End,
    /// A stop was requested.
    Stopped,
    /// The source failed; the message names it and the place.
    Failed(String),
}

/// Feeds sources into the running pipeline.
pub struct Feeder<'s, 'h> {
    pipe: Pipeline<'s>,
    /// Decoding, with the reassembly of fragments.
    decoder: Decoder,
    /// Time of the latest packet read.
    last_ts: Timestamp,
    /// Reading and decoding counters so far.
    pub read: ReadStats,
    hooks: Hooks<'h>,
    /// Bytes of finished inputs, for progress.
    done_bytes: u64,
    /// The rules in force (the hint writer classifies DNS names and STUN marks with them).
    rules: Arc<CompiledRules>,
    /// Fills the caches of DNS answers and call endpoints, in capture order.
    hints: HintWriter,
}

impl Feeder<'_, '_> {
    /// Reads `src` until it ends, fails, or a stop is requested.
    pub fn pump<S: PacketSource + ?Sized>(&mut self, src: &mut S) -> PumpEnd {
        self.read.files += 1;
        let mut since_tick = 0u64;
        loop {
            match src.read() {
                Ok(Read::Packet(p)) => {
                    self.read.packets += 1;
                    self.read.bytes += u64::from(p.orig_len);
                    self.last_ts = p.ts;
                    match self.decoder.decode(p.link, p.ts, p.orig_len, p.data) {
                        Ok(decoded) => {
                            self.read.decoded += 1;
                            // A reassembled datagram's payload lies in the decoder's buffer.
                            let (meta, frame, copied) = match decoded {
                                Decoded::Frame(m) => (m, p.data, false),
                                Decoded::Reassembled { meta, frame } => (meta, frame, true),
                            };
                            if may_hint(&meta, frame) {
                                let (src, dst) = (meta.src.ip(), meta.dst.ip());
                                self.hints.observe(
                                    &self.rules,
                                    meta.transport == Transport::Tcp,
                                    SocketAddr::new(src, meta.sport),
                                    SocketAddr::new(dst, meta.dport),
                                    meta.payload(frame),
                                    meta.ts,
                                );
                            }
                            if copied {
                                self.pipe.push_copy(&meta, frame);
                            } else {
                                self.pipe.push(&meta, p.data, p.chunk);
                            }
                        }
                        Err(skip) => self.read.skips[skip.index()] += 1,
                    }
                    since_tick += 1;
                    if since_tick == TICK_EVERY {
                        since_tick = 0;
                        // Every worker's progress moves on, even one that gets no packets.
                        self.pipe.tick(Timestamp(0));
                        if self.tick(src) {
                            return PumpEnd::Stopped;
                        }
                    }
                }
                Ok(Read::Idle) => {
                    match src.now() {
                        Some(now) => {
                            self.pipe.tick(now);
                            self.decoder.expire(now);
                        }
                        None => self.pipe.flush(),
                    }
                    if self.tick(src) {
                        return PumpEnd::Stopped;
                    }
                }
                Ok(Read::End) => {
                    self.done_bytes += src.position();
                    self.read.helper_cpu += src.helper_cpu();
                    self.tick(src);
                    return PumpEnd::End;
                }
                Err(e) => {
                    self.done_bytes += src.position();
                    self.read.helper_cpu += src.helper_cpu();
                    self.tick(src);
                    return PumpEnd::Failed(e.to_string());
                }
            }
        }
    }

    /// Publishes counters, reports progress, applies a reload; true when a stop was requested.
    fn tick<S: PacketSource + ?Sized>(&mut self, src: &mut S) -> bool {
        self.decoder.expire(self.last_ts);
        self.read.decode = self.decoder.stats();
        if let Some(m) = self.hooks.metrics {
            let r = &m.reader;
            r.packets.store(self.read.packets, Ordering::Relaxed);
            r.bytes.store(self.read.bytes, Ordering::Relaxed);
            for (a, v) in r.skips.iter().zip(self.read.skips) {
                a.store(v, Ordering::Relaxed);
            }
            r.publish_decode(&self.read.decode);
            if let Some(d) = src.drops() {
                r.kernel_drops.store(d.kernel, Ordering::Relaxed);
                r.interface_drops.store(d.interface, Ordering::Relaxed);
            }
            let h = self.hints.shared();
            let (dns, peers) = h.len();
            let (dns_out, peers_out) = h.evicted();
            for (a, v) in r.hint_entries.iter().zip([dns, peers]) {
                a.store(v as u64, Ordering::Relaxed);
            }
            for (a, v) in r.hint_evictions.iter().zip([dns_out, peers_out]) {
                a.store(v, Ordering::Relaxed);
            }
            for (w, depth) in m.workers.iter().zip(self.pipe.queue_depths()) {
                w.queue_depth.store(depth as u64, Ordering::Relaxed);
            }
        }
        if let Some(f) = self.hooks.progress {
            f(self.done_bytes + src.position());
        }
        let Some(c) = self.hooks.control else {
            return false;
        };
        if Control::take(&c.reload) {
            if let Some(reload) = self.hooks.reload {
                match reload() {
                    Ok(rules) => {
                        tracing::info!(
                            apps = rules.apps().len(),
                            domains = rules.domain_count(),
                            "rules reloaded"
                        );
                        if let Some(m) = self.hooks.metrics {
                            m.reload(true);
                            m.rules_loaded(&rules);
                        }
                        self.pipe.set_rules(&rules);
                        self.rules = rules;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "rule reload refused; the old rules stay");
                        if let Some(m) = self.hooks.metrics {
                            m.reload(false);
                        }
                    }
                }
            }
        }
        c.stop.load(Ordering::Relaxed)
    }
}

/// Whether the reader gives a packet to the hint writer: a DNS response (from port 53, UDP or
/// TCP) or a UDP datagram that could be STUN or TURN ChannelData. A few compares per packet.
fn may_hint(m: &crate::decode::PacketMeta, frame: &[u8]) -> bool {
    if m.payload_len == 0 {
        return false;
    }
    if m.sport == 53 {
        return true;
    }
    if m.transport != Transport::Udp || m.payload_len < 20 {
        return false;
    }
    let p = m.payload(frame);
    // STUN, or STUN inside a TURN ChannelData message (first byte 0x40-0x4f).
    crate::proto::stun::looks_like_stun(p) || (p[0] & 0xf0 == 0x40 && p.len() >= 24)
}

/// Runs the pipeline: `feed` pumps sources into it; `on_records` sees every worker output
/// (events and progress), on one consumer thread. Ends every flow when `feed` returns.
pub fn run<F, D>(
    cfg: &EngineConfig,
    rules: Arc<CompiledRules>,
    hooks: Hooks<'_>,
    mut on_records: F,
    feed: D,
) -> RunReport
where
    F: FnMut(WorkerOutput) + Send,
    D: FnOnce(&mut Feeder<'_, '_>) -> bool,
{
    let started = Instant::now();
    let (read, workers, stopped, reader_cpu) = thread::scope(|scope| {
        let (tx, rx) = bounded::<WorkerOutput>(RECORD_BATCHES);
        let consumer = scope.spawn(move || {
            for out in rx {
                on_records(out);
            }
        });
        let hints = Arc::new(Hints::new(cfg.hint_capacity));
        let mut pipe = Pipeline::start(
            scope,
            cfg.workers,
            cfg.flow,
            Arc::clone(&rules),
            &hints,
            tx,
            hooks.metrics,
        );
        pipe.set_low_latency(cfg.low_latency);
        let mut feeder = Feeder {
            pipe,
            decoder: Decoder::new(),
            last_ts: Timestamp(0),
            read: ReadStats::default(),
            hooks,
            done_bytes: 0,
            rules,
            hints: HintWriter::new(hints),
        };
        let cpu_before = crate::dispatch::thread_cpu();
        let stopped = feed(&mut feeder);
        let reader_cpu = crate::dispatch::thread_cpu().saturating_sub(cpu_before);
        let Feeder {
            pipe,
            mut read,
            decoder,
            ..
        } = feeder;
        read.decode = decoder.stats();
        let report = pipe.finish();
        // The workers' senders are gone; the consumer drains what is left and stops.
        if let Err(p) = consumer.join() {
            std::panic::resume_unwind(p);
        }
        (read, report, stopped, reader_cpu)
    });
    RunReport {
        workers_used: cfg.workers.max(1),
        read,
        workers,
        elapsed: started.elapsed(),
        reader_cpu,
        stopped,
    }
}

/// Replays capture files in order as one timeline; a file that cannot be read is reported and
/// the next one is read. `on_records` sees every ended flow, in batches.
pub fn replay<F>(
    paths: &[PathBuf],
    cfg: &EngineConfig,
    rules: Arc<CompiledRules>,
    hooks: Hooks<'_>,
    on_records: F,
) -> RunReport
where
    F: FnMut(WorkerOutput) + Send,
{
    run(cfg, rules, hooks, on_records, |feeder| {
        for path in paths {
            let mut src = match FileSource::open(path) {
                Ok(s) => s,
                Err(e) => {
                    feeder.read.errors.push(e.to_string());
                    continue;
                }
            };
            match feeder.pump(&mut src) {
                PumpEnd::End => {}
                PumpEnd::Stopped => return true,
                PumpEnd::Failed(e) => feeder.read.errors.push(e),
            }
        }
        false
    })
}

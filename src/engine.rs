//! The replay engine: capture files, in the order given and as one timeline, through decode and
//! the worker pipeline; ended flows go to one consumer thread. Live capture drives the same
//! pipeline.

use crate::capture::file::FileSource;
use crate::capture::PacketSource;
use crate::decode::{self, Skip};
use crate::dispatch::{Pipeline, WorkerReport};
use crate::flow::{FlowConfig, FlowRecord};
use crate::rules::CompiledRules;
use crossbeam_channel::bounded;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How the engine runs.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Flow timeouts and limits, for the whole sensor (split across workers).
    pub flow: FlowConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: default_workers(),
            flow: FlowConfig::default(),
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
    /// Files opened successfully.
    pub files: usize,
    /// Packets read.
    pub packets: u64,
    /// Their bytes on the wire.
    pub bytes: u64,
    /// Packets handed to the workers (TCP/UDP over IP).
    pub decoded: u64,
    /// Packets skipped, by [`Skip::index`].
    pub skips: [u64; Skip::ALL.len()],
    /// Capture errors, each naming its file, packet and byte offset.
    pub errors: Vec<String>,
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
}

/// Progress callback: bytes of input consumed so far.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// Report progress every this many packets (a clock is read only then).
const PROGRESS_EVERY: u64 = 1 << 16;

/// Replays capture files; `on_record` sees every ended flow, on one consumer thread.
pub fn replay<F>(
    paths: &[PathBuf],
    cfg: &EngineConfig,
    rules: Arc<CompiledRules>,
    progress: Option<Progress<'_>>,
    mut on_record: F,
) -> RunReport
where
    F: FnMut(FlowRecord) + Send,
{
    let started = Instant::now();
    let mut read = ReadStats::default();
    let workers = thread::scope(|scope| {
        let (tx, rx) = bounded::<Vec<FlowRecord>>(1024);
        let consumer = scope.spawn(move || {
            for batch in rx {
                for rec in batch {
                    on_record(rec);
                }
            }
        });
        let mut pipe = Pipeline::start(scope, cfg.workers, cfg.flow, rules, tx);
        let mut done_bytes = 0u64;
        for path in paths {
            let mut src = match FileSource::open(path) {
                Ok(s) => s,
                Err(e) => {
                    read.errors.push(e.to_string());
                    continue;
                }
            };
            read.files += 1;
            loop {
                match src.next_packet() {
                    Ok(Some(p)) => {
                        read.packets += 1;
                        read.bytes += u64::from(p.orig_len);
                        match decode::decode(p.link, p.ts, p.orig_len, p.data) {
                            Ok(meta) => {
                                read.decoded += 1;
                                pipe.push(&meta, p.data, p.chunk);
                            }
                            Err(skip) => read.skips[skip.index()] += 1,
                        }
                        if read.packets % PROGRESS_EVERY == 0 {
                            if let Some(f) = progress {
                                f(done_bytes + src.position());
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        read.errors.push(e.to_string());
                        break;
                    }
                }
            }
            done_bytes += src.len().unwrap_or_else(|| src.position());
            if let Some(f) = progress {
                f(done_bytes);
            }
        }
        let report = pipe.finish();
        // The workers' senders are gone; the consumer drains what is left and stops.
        if let Err(p) = consumer.join() {
            std::panic::resume_unwind(p);
        }
        report
    });
    RunReport {
        workers_used: cfg.workers.max(1),
        read,
        workers,
        elapsed: started.elapsed(),
    }
}

//! The pipeline: one reader thread reads packet sources, decodes, finds hint updates and
//! dispatches each packet to the worker that owns its flow; workers track flows and emit records;
//! one consumer (the caller's closure, on its own thread) takes the records. Replay (capture
//! files, in the order given, as one timeline) and live capture drive the same code; only the
//! source differs.
//!
//! - [`reader`]: the loop over a source's packets, and its look-around between them (counters,
//!   rule reloads, stop requests).
//! - [`dispatch`]: the symmetric flow hash, batches to the workers, the one [`clock`].
//! - [`worker`]: a worker thread: its flow tracker, its records and progress marks.
//! - [`hints`]: what DNS answers and STUN exchanges reveal, found in capture order.
//! - [`queues`]: live capture on several handles of one kernel fanout group, each queue with its
//!   own reader and worker.
//!
//! Nothing here locks or allocates per packet once the batches have warmed up; the only clock is
//! the packets' own time, kept by [`clock::Clock`] at the dispatcher.

pub mod clock;
pub mod dispatch;
pub mod hints;
pub mod queues;
pub mod reader;
pub mod worker;

pub use reader::{PumpEnd, Reader};

use crate::capture::file::{Filter, Input, Merge, Order};
use crate::export::metrics::Metrics;
use crate::export::record::{ReadStats, Record, RecordBatch, RunReport};
use crate::flow::FlowConfig;
use crate::rules::CompiledRules;
use crossbeam_channel::bounded;
use dispatch::Dispatch;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

/// How the pipeline runs.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Live capture: favour latency (partly filled batches are sent after a short while).
    pub low_latency: bool,
    /// Flow timeouts and limits, for the whole sensor (split across workers).
    pub flow: FlowConfig,
    /// Entries in each of the hint caches (DNS answers, call endpoints); each worker holds a copy.
    pub hint_capacity: usize,
    /// A packet more than this many nanoseconds ahead of the sensor's clock and of the recent
    /// packets' median is not believed ([`clock::Clock`]).
    pub clock_bound: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: default_workers(),
            low_latency: false,
            flow: FlowConfig::default(),
            hint_capacity: crate::flow::hints::DEFAULT_CAPACITY,
            clock_bound: clock::DEFAULT_BOUND,
        }
    }
}

/// Cores − 1 (one is the reader's), at least 1.
pub fn default_workers() -> usize {
    thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
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

/// Batches of records queued for the consumer (each at most a worker batch's worth), so a slow
/// events sink bounds memory and slows the workers instead.
const RECORD_BATCHES: usize = 64;

/// Runs the pipeline: `feed` pumps sources into the reader; `consume` sees every worker's
/// records and progress, on one consumer thread (it takes the records out of the batch; the
/// emptied vector goes back to its worker to be filled again). Ends every flow when `feed`
/// returns.
pub fn run<F, D>(
    cfg: &Config,
    rules: Arc<CompiledRules>,
    hooks: Hooks<'_>,
    mut consume: F,
    feed: D,
) -> RunReport
where
    F: FnMut(&mut RecordBatch) + Send,
    D: FnOnce(&mut Reader<'_, '_>) -> bool,
{
    let started = Instant::now();
    let (read, workers, stopped, reader_cpu) = thread::scope(|scope| {
        let (tx, rx) = bounded::<RecordBatch>(RECORD_BATCHES);
        let (recycle_tx, recycle_rx): (Vec<_>, Vec<_>) = (0..cfg.workers.max(1))
            .map(|_| bounded::<Vec<Record>>(RECORD_BATCHES))
            .unzip();
        let consumer = scope.spawn(move || {
            for mut batch in rx {
                consume(&mut batch);
                let mut v = batch.records;
                v.clear();
                if let Some(back) = recycle_tx.get(usize::from(batch.worker)) {
                    // A full queue or a gone worker: the vector is simply dropped.
                    let _ = back.try_send(v);
                }
            }
        });
        let mut dispatch = Dispatch::start(
            scope,
            cfg,
            Arc::clone(&rules),
            tx,
            recycle_rx,
            hooks.metrics,
        );
        dispatch.set_low_latency(cfg.low_latency);
        let mut reader = Reader::new(dispatch, hooks, rules);
        let cpu_before = crate::capture::thread_cpu();
        let stopped = feed(&mut reader);
        let reader_cpu = crate::capture::thread_cpu().saturating_sub(cpu_before);
        let (dispatch, read) = reader.into_parts();
        let report = dispatch.finish();
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

/// Replays capture files as one timeline, their packets merged by time; a file that cannot be
/// read is reported and the others are read. `consume` sees every worker's records, in batches.
pub fn replay<F>(
    paths: &[PathBuf],
    cfg: &Config,
    rules: Arc<CompiledRules>,
    hooks: Hooks<'_>,
    consume: F,
) -> RunReport
where
    F: FnMut(&mut RecordBatch) + Send,
{
    let inputs: Vec<Input> = paths.iter().map(|p| Input::from_arg(p)).collect();
    replay_inputs(&inputs, Order::Time, None, cfg, rules, hooks, consume)
}

/// Replays inputs (files, standard input) as one timeline in `order` ([`Merge`]), keeping the
/// frames `filter` accepts; an input that cannot be read is reported and the others are read.
pub fn replay_inputs<F>(
    inputs: &[Input],
    order: Order,
    filter: Option<Filter>,
    cfg: &Config,
    rules: Arc<CompiledRules>,
    hooks: Hooks<'_>,
    consume: F,
) -> RunReport
where
    F: FnMut(&mut RecordBatch) + Send,
{
    run(cfg, rules, hooks, consume, |reader| {
        let mut src = Merge::new(inputs, order);
        if let Some(f) = filter {
            src = src.with_filter(f);
        }
        let end = reader.pump(&mut src);
        reader.read.files = src.opened;
        reader.read.filtered = src.filtered;
        reader.read.errors.append(&mut src.errors);
        match end {
            PumpEnd::Failed(e) => {
                reader.read.errors.push(e);
                false
            }
            PumpEnd::Stopped => true,
            PumpEnd::End => false,
        }
    })
}

/// Reading statistics, re-exported where the reader keeps them.
pub type Stats = ReadStats;

//! Multi-queue live capture (`picket live --queues N`): N capture handles on one interface, which
//! the kernel joins in one fanout group and hands each flow to one of them by a symmetric hash of
//! its addresses and ports (both directions alike, IP fragments reassembled first). Each queue
//! has its own reader thread (decode, hint writer, clock) feeding its own worker: the kernel did
//! the dispatching, so no packet crosses from one queue's threads to another's.
//!
//! How the invariants hold here:
//!
//! - **One owner per flow**: the kernel's hash is symmetric and computed on the reassembled
//!   datagram, so both directions of a flow and all its fragments reach one queue, hence one
//!   worker. (A tunnel the kernel hashes by its outer headers, such as VXLAN or GRE, keeps a
//!   tunnel's inner flows on one queue as long as both directions use the same outer pair.)
//! - **One clock per queue**: each queue's reader stamps its own packets with its own
//!   [`Clock`](super::clock::Clock) over the packets it reads, which are in the kernel's
//!   receive order; its worker's flows only ever see that clock. The consumer merges the
//!   workers' records by their own marks, as it does for the workers of one reader.
//! - **Hints**: a queue's reader finds the hint updates in its packets (a DNS answer and the
//!   query it answers are one flow, so one queue; a STUN exchange likewise) and hands them to its
//!   own worker in band, exactly where they fell, and at once to every other queue's worker
//!   through a bounded inbox. Each reader also says how far it has read ([`QueueSync`]: every
//!   packet stamped before that time has been read and its updates sent), before any send that
//!   may wait and whenever its link is quiet. Before a batch, a worker waits until every other
//!   queue has read past the batch's last packet, then applies its inbox. An entry counts only
//!   for flows whose first packet came after the answer (packet time, as in replay), so a flow
//!   sees every answer stamped before its first packet on whichever queue it was seen, and the
//!   verdict does not depend on the queue. The limits, each counted: a full inbox drops the
//!   update (`picket_hint_updates_dropped_total`); a worker waits at most [`MAX_WAIT`] for a
//!   lagging queue (`picket_hint_waits_given_up_total`); a queue found quiet vouches only for
//!   packets stamped [`QUIET_GUARD_NS`](super::dispatch::QUIET_GUARD_NS) before it looked. A
//!   quiet queue wakes every few milliseconds to say how far it has read, which bounds the wait
//!   and so the added latency. Readers publish their progress before they may block, so two
//!   queues never wait on each other. With updates from several queues, the copies of the
//!   caches may evict in different orders once full.

use super::dispatch::Dispatch;
use super::reader::{PumpEnd, Reader};
use super::{Config, Control, Hooks, RECORD_BATCHES};
use crate::capture::PacketSource;
use crate::decode::frag::ReassemblyStats;
use crate::decode::DecodeStats;
use crate::export::record::{ReadStats, Record, RecordBatch, RunReport, WorkerReport};
use crate::flow::hints::HintUpdate;
use crate::flow::FlowConfig;
use crate::rules::CompiledRules;
use crossbeam_channel::bounded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Hint updates waiting in a worker's inbox from the other queues before more are dropped.
pub const PEER_HINTS: usize = 16_384;

/// How often the caller's thread looks at stop and reload requests and at the queues.
const SUPERVISE_EVERY: Duration = Duration::from_millis(20);

/// A worker waits this long at most, in short sleeps, for another queue to read past
/// its batch; then it goes on and counts the wait as given up.
pub const MAX_WAIT: Duration = Duration::from_millis(200);
const WAIT_STEP: Duration = Duration::from_micros(250);
const YIELDS: u32 = 16;

/// What the queues of one run share: how far each queue's reader has read (packet time in ns:
/// every packet stamped before it has been read and its hint updates sent), and the waits for a
/// lagging queue given up.
#[derive(Debug)]
pub struct QueueSync {
    progress: Box<[AtomicU64]>,
    gave_up: AtomicU64,
}

impl QueueSync {
    fn new(n: usize) -> Self {
        QueueSync {
            progress: (0..n).map(|_| AtomicU64::new(0)).collect(),
            gave_up: AtomicU64::new(0),
        }
    }

    /// Queue `q` has read every packet before `t` (its reader is the slot's one writer).
    pub(super) fn publish(&self, q: usize, t: u64) {
        if let Some(p) = self.progress.get(q) {
            if t > p.load(Ordering::Relaxed) {
                p.store(t, Ordering::Release);
            }
        }
    }

    /// Waits until every queue but `me` has read every packet before `t` (so every hint update
    /// found in them is in `me`'s inbox), at most [`MAX_WAIT`]; false if it gave up.
    pub(super) fn wait_past(&self, me: usize, t: u64) -> bool {
        let behind = || {
            self.progress
                .iter()
                .enumerate()
                .any(|(q, p)| q != me && p.load(Ordering::Acquire) < t)
        };
        let mut waited = Duration::ZERO;
        let mut yields = 0;
        while behind() {
            if waited >= MAX_WAIT {
                self.gave_up.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            // A busy queue publishes every batch: a few turns are usually enough.
            if yields < YIELDS {
                yields += 1;
                thread::yield_now();
                continue;
            }
            thread::sleep(WAIT_STEP);
            waited += WAIT_STEP;
        }
        true
    }

    /// Waits given up so far.
    pub fn gave_up(&self) -> u64 {
        self.gave_up.load(Ordering::Relaxed)
    }
}

/// How a multi-queue run ended.
#[derive(Debug)]
pub struct QueuesEnd<S> {
    /// Counters of every queue and worker, summed (workers' CPU in queue order).
    pub report: RunReport,
    /// The sources, in queue order (for their final drop counts).
    pub sources: Vec<S>,
    /// The first queue that failed and why.
    pub failure: Option<String>,
}

/// Runs one reader and one worker per source (each a queue of one fanout group), the records of
/// all going to `consume` on one consumer thread. Stops every queue when one ends or fails, or on
/// `hooks.control.stop`; a reload (`hooks.control.reload`) loads the rules once, here, and hands
/// them to every queue. The flow budget is split across the queues.
pub fn run_queues<F, S>(
    cfg: &Config,
    rules: Arc<CompiledRules>,
    hooks: Hooks<'_>,
    mut consume: F,
    sources: Vec<S>,
) -> QueuesEnd<S>
where
    F: FnMut(&mut RecordBatch) + Send,
    S: PacketSource + Send,
{
    let started = Instant::now();
    let n = sources.len();
    let per_queue = Config {
        workers: 1,
        flow: FlowConfig {
            max_flows: cfg.flow.max_flows.div_ceil(n.max(1)).max(1),
            ..cfg.flow
        },
        ..*cfg
    };
    let controls: Vec<Control> = (0..n).map(|_| Control::default()).collect();
    let sync = QueueSync::new(n);
    let sync = &sync;
    // A reload's rules, loaded once by the supervisor and taken by every queue's reader.
    let fresh: Mutex<Option<Arc<CompiledRules>>> = Mutex::new(None);
    let take_fresh = || -> Result<Arc<CompiledRules>, String> {
        fresh
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .ok_or_else(|| "no rules to take".to_string())
    };
    thread::scope(|scope| {
        let (tx, rx) = bounded::<RecordBatch>(RECORD_BATCHES);
        let (recycle_tx, recycle_rx): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| bounded::<Vec<Record>>(RECORD_BATCHES))
            .unzip();
        let consumer = scope.spawn(move || {
            for mut batch in rx {
                consume(&mut batch);
                let mut v = batch.records;
                v.clear();
                if let Some(back) = recycle_tx.get(usize::from(batch.worker)) {
                    let _ = back.try_send(v);
                }
            }
        });
        let (inbox_tx, inbox_rx): (Vec<_>, Vec<_>) =
            (0..n).map(|_| bounded::<HintUpdate>(PEER_HINTS)).unzip();
        let mut readers = Vec::with_capacity(n);
        for (q, ((src, recycled), inbox)) in sources
            .into_iter()
            .zip(recycle_rx)
            .zip(inbox_rx)
            .enumerate()
        {
            let peers = inbox_tx
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != q)
                .map(|(_, t)| t.clone())
                .collect();
            let mut dispatch = Dispatch::start_queue(
                scope,
                &per_queue,
                Arc::clone(&rules),
                tx.clone(),
                recycled,
                hooks.metrics,
                q as u16,
                inbox,
                peers,
                sync,
            );
            dispatch.set_low_latency(cfg.low_latency);
            let qhooks = Hooks {
                control: Some(&controls[q]),
                metrics: hooks.metrics,
                reload: Some(&take_fresh),
                progress: None,
            };
            let rules = Arc::clone(&rules);
            let join = thread::Builder::new()
                .name(format!("picket-queue-{q}"))
                .spawn_scoped(scope, move || {
                    let mut src = src;
                    let mut reader = Reader::for_queue(dispatch, qhooks, rules, q);
                    let before = crate::capture::thread_cpu();
                    let end = reader.pump(&mut src);
                    // Nothing more comes from this queue: no worker waits for it.
                    sync.publish(q, u64::MAX);
                    let cpu = crate::capture::thread_cpu().saturating_sub(before);
                    let (dispatch, read) = reader.into_parts();
                    (dispatch, read, end, cpu, src)
                })
                .unwrap_or_else(|e| panic!("cannot start capture queue thread: {e}"));
            readers.push(join);
        }
        drop((tx, inbox_tx));
        supervise(&readers, &controls, &fresh, hooks, sync);
        let mut read = ReadStats::default();
        let mut workers = WorkerReport::default();
        let mut reader_cpu = Duration::ZERO;
        let mut stopped = hooks
            .control
            .is_some_and(|c| c.stop.load(Ordering::Relaxed));
        let mut failure = None;
        let mut sources = Vec::with_capacity(n);
        for (q, join) in readers.into_iter().enumerate() {
            let (dispatch, r, end, cpu, src) = match join.join() {
                Ok(v) => v,
                Err(p) => std::panic::resume_unwind(p),
            };
            add_read(&mut read, r);
            reader_cpu += cpu;
            match end {
                PumpEnd::End => {}
                PumpEnd::Stopped => stopped |= failure.is_none(),
                PumpEnd::Failed(e) => {
                    failure.get_or_insert(format!("capture queue {q}: {e}"));
                }
            }
            let w = dispatch.finish();
            workers.stats.add(&w.stats);
            workers.cpu.extend(w.cpu);
            sources.push(src);
        }
        if let Err(p) = consumer.join() {
            std::panic::resume_unwind(p);
        }
        QueuesEnd {
            report: RunReport {
                workers_used: n,
                read,
                workers,
                elapsed: started.elapsed(),
                reader_cpu,
                stopped,
            },
            sources,
            failure,
        }
    })
}

/// Until every queue has ended: passes stop requests on (and stops every queue once one has
/// ended or failed), and performs reloads once for all.
fn supervise<T>(
    readers: &[thread::ScopedJoinHandle<'_, T>],
    controls: &[Control],
    fresh: &Mutex<Option<Arc<CompiledRules>>>,
    hooks: Hooks<'_>,
    sync: &QueueSync,
) {
    let stop_all = || {
        for c in controls {
            c.stop.store(true, Ordering::Relaxed);
        }
    };
    while !readers.iter().all(|r| r.is_finished()) {
        if readers.iter().any(|r| r.is_finished()) {
            stop_all();
        }
        if let Some(c) = hooks.control {
            if c.stop.load(Ordering::Relaxed) {
                stop_all();
            }
            if Control::take(&c.reload) {
                reload(hooks, fresh, controls);
            }
        }
        if let Some(m) = hooks.metrics {
            m.reader
                .hint_waits_given_up
                .store(sync.gave_up(), Ordering::Relaxed);
        }
        thread::sleep(SUPERVISE_EVERY);
    }
    if let Some(m) = hooks.metrics {
        m.reader
            .hint_waits_given_up
            .store(sync.gave_up(), Ordering::Relaxed);
    }
}

/// Loads the rules once and hands them to every queue's reader; a refused set is logged and
/// counted, and the old rules stay.
fn reload(hooks: Hooks<'_>, fresh: &Mutex<Option<Arc<CompiledRules>>>, controls: &[Control]) {
    let Some(load) = hooks.reload else {
        return;
    };
    match load() {
        Ok(rules) => {
            tracing::info!(
                apps = rules.apps().len(),
                domains = rules.domain_count(),
                "rules reloaded"
            );
            if let Some(m) = hooks.metrics {
                m.reload(true);
                m.rules_loaded(&rules);
            }
            if let Ok(mut slot) = fresh.lock() {
                *slot = Some(rules);
            }
            for c in controls {
                c.reload.store(true, Ordering::Relaxed);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "rule reload refused; the old rules stay");
            if let Some(m) = hooks.metrics {
                m.reload(false);
            }
        }
    }
}

/// Adds one queue's reading counters to the sum (every field named, so a new one cannot be
/// left out).
fn add_read(sum: &mut ReadStats, r: ReadStats) {
    let ReadStats {
        files,
        packets,
        bytes,
        decoded,
        skips,
        decode,
        errors,
        helper_cpu,
        clock_ahead,
        clock_behind,
        filtered,
    } = r;
    sum.files += files;
    sum.packets += packets;
    sum.bytes += bytes;
    sum.decoded += decoded;
    for (a, b) in sum.skips.iter_mut().zip(skips) {
        *a += b;
    }
    let DecodeStats {
        tunnels,
        reassembly:
            ReassemblyStats {
                ended,
                duplicates,
                pending,
                held_bytes,
            },
    } = decode;
    for (a, b) in sum.decode.tunnels.iter_mut().zip(tunnels) {
        *a += b;
    }
    let s = &mut sum.decode.reassembly;
    for (a, b) in s.ended.iter_mut().zip(ended) {
        *a += b;
    }
    s.duplicates += duplicates;
    s.pending += pending;
    s.held_bytes += held_bytes;
    sum.errors.extend(errors);
    sum.helper_cpu += helper_cpu;
    sum.clock_ahead += clock_ahead;
    sum.clock_behind += clock_behind;
    sum.filtered += filtered;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_only_moves_forward_and_a_queue_never_waits_for_itself() {
        let s = QueueSync::new(2);
        s.publish(1, 50);
        s.publish(1, 40);
        assert_eq!(s.progress[1].load(Ordering::Relaxed), 50);
        // Queue 0 is behind, but queue 0's worker only waits for the others.
        assert!(s.wait_past(0, 50));
        s.publish(0, u64::MAX);
        assert!(s.wait_past(1, 1_000));
        assert_eq!(s.gave_up(), 0);
    }

    #[test]
    fn read_counters_of_queues_add_up() {
        let mut sum = ReadStats::default();
        for n in [3, 4] {
            let mut r = ReadStats {
                packets: n,
                bytes: 10 * n,
                decoded: n,
                errors: vec![format!("q{n}")],
                clock_behind: n,
                ..ReadStats::default()
            };
            r.skips[0] = 1;
            r.decode.reassembly.duplicates = n;
            add_read(&mut sum, r);
        }
        assert_eq!((sum.packets, sum.bytes, sum.decoded), (7, 70, 7));
        assert_eq!(sum.skips[0], 2);
        assert_eq!(sum.decode.reassembly.duplicates, 7);
        assert_eq!(sum.errors, ["q3", "q4"]);
        assert_eq!(sum.clock_behind, 7);
    }
}

//! A worker thread: it owns one [`FlowTracker`] (made inside the thread), applies its batches —
//! hint updates exactly where they fell among the packets — and sends its records with progress
//! marks to the consumer. It publishes its plain counters after each batch.

use super::dispatch::{Batch, BATCH_PACKETS};
use super::queues::QueueSync;
use crate::capture::Timestamp;
use crate::export::metrics::Metrics;
use crate::export::record::{Mark, Record, RecordBatch, WorkerStats};
use crate::flow::hints::HintUpdate;
use crate::flow::FlowTracker;
use crate::rules::CompiledRules;
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What the dispatcher sends a worker.
pub(super) enum Msg {
    /// Packets, and hint updates among them.
    Batch(Batch),
    /// Rules to use for flows classified from now on.
    Rules(Arc<CompiledRules>),
    /// The time now on a quiet link: flows age by it.
    Tick(Timestamp),
    /// End of input: end every flow (the sensor's final time given) and stop.
    Finish(Timestamp),
}

/// A worker reports progress without records at most once per this many batches (and at every
/// tick of a quiet link), so the consumer is not woken per batch.
const WATERMARK_EVERY_BATCHES: u32 = 32;

/// Multi-queue live capture: where a queue's worker gets the other queues' hint updates.
pub(super) struct Inbox<'a> {
    /// The updates the other queues' readers found.
    pub(super) rx: Receiver<HintUpdate>,
    /// How far each queue has read.
    pub(super) sync: &'a QueueSync,
    /// This worker's queue.
    pub(super) queue: usize,
}

/// A worker's channels.
pub(super) struct Ends<'a> {
    /// Batches and requests from the dispatcher.
    pub(super) rx: Receiver<Msg>,
    /// Emptied batches back to the dispatcher.
    pub(super) free: Sender<Batch>,
    /// Records to the consumer.
    pub(super) records: Sender<RecordBatch>,
    /// Emptied record vectors back from the consumer.
    pub(super) recycled: Receiver<Vec<Record>>,
    /// Multi-queue live capture: the hint updates other queues' readers found, applied before
    /// each batch and tick.
    pub(super) inbox: Option<Inbox<'a>>,
}

/// The worker's loop, until [`Msg::Finish`]; returns its counters and the CPU time it used.
pub(super) fn run(
    worker: u16,
    ends: Ends<'_>,
    mut tracker: FlowTracker,
    metrics: Option<&Metrics>,
) -> (WorkerStats, std::time::Duration) {
    let Ends {
        rx,
        free,
        records,
        recycled,
        inbox,
    } = ends;
    // Out of band, once per message (never per packet): every update the other queues found in
    // packets before `upto` (packet time), waiting for a queue that has not read that far yet.
    let peer_hints = |tracker: &mut FlowTracker, upto: Option<Timestamp>| {
        if let Some(inbox) = &inbox {
            if let Some(t) = upto {
                inbox.sync.wait_past(inbox.queue, t.0);
            }
            while let Ok(u) = inbox.rx.try_recv() {
                tracker.hint(u);
            }
        }
    };
    let mut out: Vec<Record> = Vec::new();
    // An emptied vector back from the consumer, so filling the next batch's records does not
    // allocate and grow a new one.
    let fresh = || recycled.try_recv().unwrap_or_default();
    let mut sent_mark = Mark::default();
    let mut quiet_batches = 0u32;
    let send = |records_: Vec<Record>, watermark: Mark| {
        let _ = records.send(RecordBatch {
            worker,
            watermark,
            records: records_,
        });
    };
    while let Ok(msg) = rx.recv() {
        let (mark, tick) = match msg {
            Msg::Batch(mut b) => {
                peer_hints(&mut tracker, b.items.last().map(|it| it.meta.ts));
                let mut hints = std::mem::take(&mut b.hints).into_iter().peekable();
                for (n, it) in b.items.iter().enumerate() {
                    while let Some((_, u)) = hints.next_if(|(before, _)| *before <= n) {
                        tracker.hint(u);
                    }
                    tracker.packet(&it.meta, it.hash, b.payload(it), it.now, &mut out);
                }
                hints.for_each(|(_, u)| tracker.hint(u));
                tracker.advance(b.now, &mut out);
                b.clear();
                let now = b.now;
                let _ = free.try_send(b);
                (now, false)
            }
            Msg::Rules(r) => {
                tracker.set_rules(r);
                continue;
            }
            Msg::Tick(now) => {
                peer_hints(&mut tracker, None);
                tracker.advance(now, &mut out);
                (now, true)
            }
            Msg::Finish(now) => {
                peer_hints(&mut tracker, None);
                if !out.is_empty() {
                    send(std::mem::replace(&mut out, fresh()), sent_mark);
                }
                // The last records come in release order, each batch with the place it reached,
                // so the consumer writes them as they come instead of holding them all.
                tracker.finish(now, BATCH_PACKETS, |v, mark| send(v, mark.max(sent_mark)));
                publish(metrics, worker, &tracker);
                break;
            }
        };
        publish(metrics, worker, &tracker);
        // Records go out as they happen; a bare progress mark (which lets the consumer release
        // records in time order) on a quiet link's tick or every few batches.
        quiet_batches += 1;
        if !out.is_empty() || tick || quiet_batches >= WATERMARK_EVERY_BATCHES {
            quiet_batches = 0;
            sent_mark = Mark::before(mark).max(sent_mark);
            send(std::mem::replace(&mut out, fresh()), sent_mark);
        }
    }
    (tracker.stats, crate::capture::thread_cpu())
}

/// Publishes the worker's counters; worker 0 also the hint caches' (every worker's copy is the
/// same).
fn publish(metrics: Option<&Metrics>, worker: u16, tracker: &FlowTracker) {
    let Some(m) = metrics else {
        return;
    };
    if let Some(p) = m.workers.get(usize::from(worker)) {
        p.publish(&tracker.stats, tracker.active());
    }
    if worker == 0 {
        let h = tracker.hints();
        let (dns, peers) = h.len();
        let (dns_out, peers_out) = h.evicted();
        let r = &m.reader;
        for (a, v) in r.hint_entries.iter().zip([dns, peers]) {
            a.store(v as u64, Ordering::Relaxed);
        }
        for (a, v) in r.hint_evictions.iter().zip([dns_out, peers_out]) {
            a.store(v, Ordering::Relaxed);
        }
    }
}

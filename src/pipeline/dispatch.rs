//! Dispatch: a symmetric flow hash picks the one worker that owns a flow; packets travel to it in
//! batches over bounded crossbeam channels, and emptied batches come back to be refilled. The
//! dispatcher keeps the sensor's one [`Clock`] and stamps every packet with its reading; hint
//! updates go to every worker in band, between the packets they came among.
//!
//! Per packet, the dispatcher hashes the key once and records where the frame lies in the
//! capture's shared read chunk; the worker never re-hashes and no payload is copied. A batch
//! holds a reference to each chunk its frames lie in (one reference count change per chunk and
//! batch, not per packet). The one exception is a datagram reassembled from IP fragments: it
//! lies in no chunk, and is copied into the batch's own bytes, recycled with the batch. No lock,
//! no atomic read-modify-write, no clock read and no allocation on the per-packet path once the
//! batches have warmed up.

use super::clock::Clock;
use super::queues::QueueSync;
use super::worker::{self, Msg};
use super::Config;
use crate::capture::{Chunk, Timestamp};
use crate::decode::PacketMeta;
use crate::export::metrics::Metrics;
use crate::export::record::{Record, RecordBatch, WorkerReport, WorkerStats};
use crate::flow::hints::HintUpdate;
use crate::flow::key::worker_of;
use crate::flow::{FlowConfig, FlowHasher, FlowKey, FlowTracker};
use crate::rules::CompiledRules;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::Arc;
use std::thread;

/// Packets per batch.
pub const BATCH_PACKETS: usize = 256;
/// Batches queued per worker before the dispatcher waits (backpressure, bounded memory).
pub const QUEUE_BATCHES: usize = 16;
/// A batch that holds frames of more read chunks than this is sent: it keeps those chunks
/// alive, and a worker that gets few packets must not pin the reader's memory.
pub const MAX_BATCH_CHUNKS: usize = 4;
/// A batch holding more copied bytes (reassembled datagrams) than this is sent, so a batch's own
/// bytes stay under 128 KiB (a datagram is at most 64 KiB).
pub const MAX_BATCH_OWN_BYTES: usize = 64 << 10;
/// A batch older than this (in packet time) is sent even if not full, so a slow link's packets
/// reach their workers promptly; on a quiet link the source's read timeout flushes instead.
pub const BATCH_MAX_AGE_NS: u64 = 50_000_000;
/// A batch carrying this many hint updates is sent, so a burst of DNS answers cannot grow a
/// batch without bound.
pub const MAX_BATCH_HINTS: usize = 256;

/// Multi-queue: a queue found idle at system time `now` tells the others it has read every
/// packet stamped before `now` less this (a packet stamped just before the ring was found empty
/// may still be on its way into it).
pub const QUIET_GUARD_NS: u64 = 2_000_000;

/// One packet of a batch: its summary, its key hash and where its frame lies.
#[derive(Clone, Copy, Debug)]
pub(super) struct Item {
    pub(super) meta: PacketMeta,
    pub(super) hash: u64,
    /// The dispatcher's clock when the packet was read.
    pub(super) now: Timestamp,
    /// Index into the batch's chunks, or [`OWN`].
    chunk: u16,
    /// Offset of the frame in that chunk (or in the batch's own bytes).
    frame_off: u32,
}

/// The chunk index of an item whose frame was copied into the batch's own bytes.
const OWN: u16 = u16::MAX;

/// Packets bound for one worker, with references to the chunks their frames lie in.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) items: Vec<Item>,
    chunks: Vec<Chunk>,
    /// Frames copied in (reassembled datagrams).
    own: Vec<u8>,
    /// Hint updates, each with the number of items that came before it.
    pub(super) hints: Vec<(usize, HintUpdate)>,
    /// Packet time of the first item.
    first: Timestamp,
    /// Packet time at the dispatcher when sent: lets a quiet worker expire its flows.
    pub(super) now: Timestamp,
}

impl Batch {
    fn with_capacity() -> Self {
        Batch {
            items: Vec::with_capacity(BATCH_PACKETS),
            chunks: Vec::with_capacity(8),
            own: Vec::new(),
            hints: Vec::new(),
            first: Timestamp(0),
            now: Timestamp(0),
        }
    }

    /// Empties the batch for reuse.
    pub(super) fn clear(&mut self) {
        self.items.clear();
        self.chunks.clear();
        self.own.clear();
        self.hints.clear();
    }

    /// The payload of an item.
    pub(super) fn payload(&self, it: &Item) -> &[u8] {
        let frame_at = it.frame_off as usize + it.meta.payload_off as usize;
        let bytes = match it.chunk {
            OWN => Some(self.own.as_slice()),
            i => self.chunks.get(usize::from(i)).map(|c| c.as_slice()),
        };
        bytes
            .and_then(|c| c.get(frame_at..frame_at + it.meta.payload_len as usize))
            .unwrap_or(&[])
    }
}

struct WorkerHandle {
    tx: Sender<Msg>,
    free: Receiver<Batch>,
    current: Batch,
}

/// A running set of workers fed by one dispatcher (the reader's thread).
pub struct Dispatch<'scope> {
    workers: Vec<WorkerHandle>,
    joins: Vec<thread::ScopedJoinHandle<'scope, (WorkerStats, std::time::Duration)>>,
    hasher: FlowHasher,
    clock: Clock,
    low_latency: bool,
    /// The other queues' workers (multi-queue live capture): hint updates found on this queue go
    /// to them too, at once, out of band.
    peers: Vec<Sender<HintUpdate>>,
    /// Hint updates a full peer inbox refused (counted, never waited for).
    pub(super) hint_drops: u64,
    /// Multi-queue: where this queue tells the others how far it has read, and its index.
    sync: Option<(&'scope QueueSync, usize)>,
    /// The latest packet time dispatched.
    read_ts: u64,
}

impl<'scope> Dispatch<'scope> {
    /// Starts `cfg.workers` workers (at least 1) in `scope`; their records are sent, in
    /// per-batch vectors, to `records`.
    pub fn start<'env>(
        scope: &'scope thread::Scope<'scope, 'env>,
        cfg: &Config,
        rules: Arc<CompiledRules>,
        records: Sender<RecordBatch>,
        recycled: Vec<Receiver<Vec<Record>>>,
        metrics: Option<&'env Metrics>,
    ) -> Self {
        Self::spawn(scope, cfg, rules, records, recycled, metrics, 0, None)
    }

    /// Starts the one worker of a capture queue (multi-queue live capture): worker index
    /// `queue`, owning `cfg.flow.max_flows` flows, which also applies the hint updates other
    /// queues' readers send to `inbox`; this queue's updates go to `peers` as well as in band.
    #[allow(clippy::too_many_arguments)] // one per part of the queue it joins
    pub fn start_queue<'env>(
        scope: &'scope thread::Scope<'scope, 'env>,
        cfg: &Config,
        rules: Arc<CompiledRules>,
        records: Sender<RecordBatch>,
        recycled: Receiver<Vec<Record>>,
        metrics: Option<&'env Metrics>,
        queue: u16,
        inbox: Receiver<HintUpdate>,
        peers: Vec<Sender<HintUpdate>>,
        sync: &'scope QueueSync,
    ) -> Self {
        let one = Config { workers: 1, ..*cfg };
        let mut d = Self::spawn(
            scope,
            &one,
            rules,
            records,
            vec![recycled],
            metrics,
            queue,
            Some((inbox, sync)),
        );
        d.peers = peers;
        d.sync = Some((sync, usize::from(queue)));
        d
    }

    #[allow(clippy::too_many_arguments)] // start's and start_queue's parts
    fn spawn<'env>(
        scope: &'scope thread::Scope<'scope, 'env>,
        cfg: &Config,
        rules: Arc<CompiledRules>,
        records: Sender<RecordBatch>,
        recycled: Vec<Receiver<Vec<Record>>>,
        metrics: Option<&'env Metrics>,
        first: u16,
        inbox: Option<(Receiver<HintUpdate>, &'scope QueueSync)>,
    ) -> Self {
        let n = cfg.workers.max(1);
        let per_worker = FlowConfig {
            max_flows: cfg.flow.max_flows.div_ceil(n).max(1),
            reassembly_memcap: cfg.flow.reassembly_memcap.div_ceil(n),
            ..cfg.flow
        };
        let hint_capacity = cfg.hint_capacity;
        let mut workers = Vec::with_capacity(n);
        let mut joins = Vec::with_capacity(n);
        let mut recycled = recycled.into_iter();
        for w in 0..n {
            let back = recycled.next().unwrap_or_else(|| bounded(1).1);
            let (tx, rx) = bounded::<Msg>(QUEUE_BATCHES);
            let (free_tx, free_rx) = bounded::<Batch>(QUEUE_BATCHES + 2);
            let rules = Arc::clone(&rules);
            let records = records.clone();
            let id = first + w as u16;
            let inbox = inbox.clone().map(|(rx, sync)| worker::Inbox {
                rx,
                sync,
                queue: usize::from(id),
            });
            let join = thread::Builder::new()
                .name(format!("picket-worker-{id}"))
                .spawn_scoped(scope, move || {
                    let tracker =
                        FlowTracker::new(per_worker, rules).with_hint_capacity(hint_capacity);
                    let ends = worker::Ends {
                        rx,
                        free: free_tx,
                        records,
                        recycled: back,
                        inbox,
                    };
                    worker::run(id, ends, tracker, metrics)
                })
                .unwrap_or_else(|e| panic!("cannot start worker thread: {e}"));
            joins.push(join);
            workers.push(WorkerHandle {
                tx,
                free: free_rx,
                current: Batch::with_capacity(),
            });
        }
        Dispatch {
            workers,
            joins,
            hasher: FlowHasher::default(),
            clock: Clock::new(cfg.clock_bound),
            low_latency: false,
            peers: Vec::new(),
            hint_drops: 0,
            sync: None,
            read_ts: 0,
        }
    }

    /// Live capture: send a partly filled batch once it is [`BATCH_MAX_AGE_NS`] old, so packets
    /// of a slow link reach their workers promptly. Replay does not need it (and its captures
    /// may have long gaps in time, which would make every batch small).
    pub fn set_low_latency(&mut self, on: bool) {
        self.low_latency = on;
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Hands one decoded packet to the worker that owns its flow. `frame` must lie in `chunk`
    /// (a frame that does not is counted as undeliverable and dropped).
    #[inline]
    pub fn push(&mut self, meta: &PacketMeta, frame: &[u8], chunk: &Chunk) -> bool {
        let off = (frame.as_ptr() as usize).wrapping_sub(chunk.as_ptr() as usize);
        if off
            .checked_add(frame.len())
            .is_none_or(|end| end > chunk.len())
        {
            return false;
        }
        self.push_with(meta, |b| {
            if !b.chunks.last().is_some_and(|c| Arc::ptr_eq(c, chunk)) {
                b.chunks.push(Arc::clone(chunk));
            }
            ((b.chunks.len() - 1) as u16, off as u32)
        });
        true
    }

    /// Hands one decoded packet whose frame lies in no shared chunk (a reassembled datagram) to
    /// the worker that owns its flow: the frame is copied into the batch. Cold path: copies, and
    /// the batch's bytes grow on first use (then are recycled with it).
    pub fn push_copy(&mut self, meta: &PacketMeta, frame: &[u8]) {
        self.push_with(meta, |b| {
            let off = b.own.len() as u32;
            b.own.extend_from_slice(frame);
            (OWN, off)
        });
    }

    /// Appends a packet to its worker's batch; `place` records where its frame lies.
    fn push_with(&mut self, meta: &PacketMeta, place: impl FnOnce(&mut Batch) -> (u16, u32)) {
        let (key, _) = FlowKey::of(meta);
        let hash = key.hash_with(&self.hasher);
        let w = worker_of(hash, self.workers.len());
        // A packet the clock does not believe takes the clock's time (see `clock`).
        let ts = self.clock.observe(meta.ts);
        self.read_ts = self.read_ts.max(ts.0);
        let now = self.clock.now();
        let h = &mut self.workers[w];
        let b = &mut h.current;
        if b.items.is_empty() {
            b.first = ts;
        }
        let (chunk, frame_off) = place(b);
        let mut meta = *meta;
        meta.ts = ts;
        b.items.push(Item {
            meta,
            hash,
            now,
            chunk,
            frame_off,
        });
        if b.items.len() >= BATCH_PACKETS
            || b.chunks.len() > MAX_BATCH_CHUNKS
            || b.own.len() > MAX_BATCH_OWN_BYTES
            || (self.low_latency && ts.0.saturating_sub(b.first.0) > BATCH_MAX_AGE_NS)
        {
            self.publish(self.read_ts);
            send_batch(&mut self.workers[w], now);
        }
    }

    /// Hands a hint update to every worker, after the packets dispatched so far and before the
    /// ones to come.
    pub fn hint(&mut self, u: HintUpdate) {
        for p in &self.peers {
            if p.try_send(u.clone()).is_err() {
                self.hint_drops += 1;
            }
        }
        let now = self.clock.now();
        if self
            .workers
            .iter()
            .any(|h| h.current.hints.len() + 1 >= MAX_BATCH_HINTS)
        {
            self.publish(self.read_ts);
        }
        for h in &mut self.workers {
            let b = &mut h.current;
            b.hints.push((b.items.len(), u.clone()));
            if b.hints.len() >= MAX_BATCH_HINTS {
                send_batch(h, now);
            }
        }
    }

    /// Multi-queue: tells the other queues' workers that every packet of this queue before `t`
    /// (packet time, ns) has been read and its hint updates sent. Called before any send that
    /// may wait, so two queues never wait on each other; never per packet.
    fn publish(&mut self, t: u64) {
        if let Some((sync, q)) = self.sync {
            sync.publish(q, t);
        }
    }

    /// Sends every partly filled batch now (live capture does this when the link is quiet).
    pub fn flush(&mut self) {
        self.publish(self.read_ts);
        let now = self.clock.now();
        for h in &mut self.workers {
            if !h.current.items.is_empty() || !h.current.hints.is_empty() {
                send_batch(h, now);
            }
        }
    }

    /// Flushes every batch and tells every worker the time (replay calls this with the clock's
    /// own time every few thousand packets), so every worker's progress moves on even when it
    /// gets no packets, and flows expire on a quiet link.
    pub fn tick(&mut self, now: Timestamp) {
        self.clock.tick(now);
        self.flush();
        if now.0 > 0 {
            // A quiet link (live): nothing stamped before a moment ago is still to come.
            self.publish(now.0.saturating_sub(QUIET_GUARD_NS).max(self.read_ts));
        }
        let now = self.clock.now();
        for h in &self.workers {
            let _ = h.tx.try_send(Msg::Tick(now));
        }
    }

    /// Packets the clock did not believe: (too far ahead to move it, too far behind it).
    pub fn clock_adjusted(&self) -> (u64, u64) {
        (self.clock.ahead, self.clock.behind)
    }

    /// Packets waiting in each worker's queue (batches × batch size, an upper bound).
    pub fn queue_depths(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|h| h.tx.len() * BATCH_PACKETS + h.current.items.len())
            .collect()
    }

    /// Gives every worker new rules, for flows classified from now on.
    pub fn set_rules(&mut self, rules: &Arc<CompiledRules>) {
        self.publish(self.read_ts);
        for h in &self.workers {
            // A worker that is gone has already stopped; nothing to update.
            let _ = h.tx.send(Msg::Rules(Arc::clone(rules)));
        }
    }

    /// Flushes, ends every flow, stops the workers and returns their summed counters.
    pub fn finish(mut self) -> WorkerReport {
        self.flush();
        let now = self.clock.now();
        for h in &self.workers {
            let _ = h.tx.send(Msg::Finish(now));
        }
        let mut stats = WorkerStats::default();
        let mut cpu = Vec::with_capacity(self.joins.len());
        for j in self.joins.drain(..) {
            match j.join() {
                Ok((s, t)) => {
                    stats.add(&s);
                    cpu.push((s.packets, t));
                }
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        WorkerReport { stats, cpu }
    }
}

fn send_batch(h: &mut WorkerHandle, now: Timestamp) {
    let fresh = h.free.try_recv().unwrap_or_else(|_| Batch::with_capacity());
    let mut full = std::mem::replace(&mut h.current, fresh);
    full.now = now;
    // A worker only stops after Finish; a send error means it panicked, which finish() reports.
    let _ = h.tx.send(Msg::Batch(full));
}

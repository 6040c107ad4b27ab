//! The event gate: merges the workers' event streams into packet-time order and keeps alerts
//! from flooding. One consumer thread owns it.
//!
//! Every event carries the sensor's time it happened (`at`: the dispatcher's clock over all
//! packets, or a flow's deterministic end time). Each worker reports its progress (a watermark:
//! every packet of it read before that time has been processed). An event is released once every
//! worker has passed its time, so the output is in time order and the same for the same packets
//! at any worker count — which matters for alert
//! suppression, where "the first alert of a client for an app" must not depend on which worker
//! ran faster.
//!
//! Suppression: at most one `alert` per (client, app) per interval. Alerts of the pair inside the
//! interval are counted, and when the interval closes an `alert_suppressed` event reports how
//! many (the first alert is never delayed to wait for the count).

use crate::capture::Timestamp;
use crate::decode::Addr;
use crate::export::record::{AppCount, FlowRecord, FlowView, Mark, Record};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

/// Most (client, app) windows tracked at once; past it, an alert with no window passes
/// unsuppressed rather than evict state (bounded memory).
pub const MAX_WINDOWS: usize = 100_000;

/// What the gate releases, in time order.
#[derive(Debug)]
pub enum Released {
    /// An alert to write.
    Alert {
        /// The deciding packet's time.
        ts: Timestamp,
        /// The flow as it was then.
        flow: FlowView,
    },
    /// Alerts of one (client, app) suppressed during an interval that has now closed.
    Suppressed(SuppressedAlerts),
    /// An alert that was suppressed (for counting).
    SuppressedOne {
        /// Its app.
        app: Arc<str>,
    },
    /// A long flow's update.
    Update {
        /// The boundary time.
        ts: Timestamp,
        /// The flow as it was then.
        flow: FlowView,
    },
    /// An ended flow.
    Flow(FlowRecord),
}

/// A closed suppression interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuppressedAlerts {
    /// When the interval closed.
    pub ts: Timestamp,
    /// When it opened (the alert that was written).
    pub since: Timestamp,
    /// The client.
    pub client: Addr,
    /// The app.
    pub app: Arc<str>,
    /// The flow id of the alert that was written.
    pub alert_flow_id: u64,
    /// Alerts suppressed in the interval.
    pub suppressed: u64,
}

/// A held record's place in the release order: small, so the heap moves keys, not records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    mark: Mark,
    seq: u64,
    /// Where the record waits in [`Gate::held`].
    slot: u32,
}

struct Window {
    since: Timestamp,
    alert_flow_id: u64,
    suppressed: u64,
}

/// Orders events by packet time and suppresses repeated alerts.
pub struct Gate {
    interval: u64,
    marks: Vec<Mark>,
    pending: BinaryHeap<Reverse<Pending>>,
    /// The records waiting for release, by slot; freed slots are reused.
    held: Vec<Option<Record>>,
    free: Vec<u32>,
    windows: HashMap<(Addr, Arc<str>), Window>,
    seq: u64,
    next_sweep: Timestamp,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("pending", &self.pending.len())
            .field("windows", &self.windows.len())
            .finish()
    }
}

impl Gate {
    /// A gate for `workers` workers; alerts of a (client, app) are at most one per `interval_ns`
    /// (0: no suppression).
    pub fn new(workers: usize, interval_ns: u64) -> Self {
        Gate {
            interval: interval_ns,
            marks: vec![Mark::default(); workers.max(1)],
            pending: BinaryHeap::new(),
            held: Vec::new(),
            free: Vec::new(),
            windows: HashMap::new(),
            seq: 0,
            next_sweep: Timestamp(0),
        }
    }

    /// Takes a worker's events and progress; releases what is ready to `out`. Per-app counts
    /// are not events in time and are handed to `counts` at once.
    pub fn push(
        &mut self,
        worker: usize,
        watermark: Mark,
        events: impl IntoIterator<Item = Record>,
        out: &mut impl FnMut(Released),
        counts: &mut impl FnMut(Vec<AppCount>),
    ) {
        for event in events {
            let Some(mark) = event.mark() else {
                if let Record::Counts(c) = event {
                    counts(c);
                }
                continue;
            };
            self.seq += 1;
            let slot = match self.free.pop() {
                Some(s) => {
                    self.held[s as usize] = Some(event);
                    s
                }
                None => {
                    self.held.push(Some(event));
                    (self.held.len() - 1) as u32
                }
            };
            self.pending.push(Reverse(Pending {
                mark,
                seq: self.seq,
                slot,
            }));
        }
        if let Some(m) = self.marks.get_mut(worker) {
            *m = (*m).max(watermark);
        }
        let low = self.marks.iter().copied().min().unwrap_or_default();
        self.release(Some(low), out);
    }

    /// Releases everything (end of input) and closes every suppression interval.
    pub fn finish(&mut self, out: &mut impl FnMut(Released)) {
        self.release(None, out);
        let mut closing: Vec<((Addr, Arc<str>), Window)> = self.windows.drain().collect();
        closing.sort_by_key(|(_, w)| (w.since, w.alert_flow_id));
        for ((client, app), w) in closing {
            if w.suppressed > 0 {
                out(Released::Suppressed(SuppressedAlerts {
                    ts: w.since.plus_nanos(self.interval),
                    since: w.since,
                    client,
                    app,
                    alert_flow_id: w.alert_flow_id,
                    suppressed: w.suppressed,
                }));
            }
        }
    }

    /// Releases events strictly before `upto` (everything when None).
    fn release(&mut self, upto: Option<Mark>, out: &mut impl FnMut(Released)) {
        while let Some(Reverse(p)) = self.pending.peek() {
            if upto.is_some_and(|u| p.mark >= u) {
                break;
            }
            let Some(Reverse(p)) = self.pending.pop() else {
                break;
            };
            let Some(event) = self.held.get_mut(p.slot as usize).and_then(Option::take) else {
                continue;
            };
            self.free.push(p.slot);
            self.close_windows(p.mark.at, out);
            match event {
                Record::Alert { ts, at, flow } => self.alert(ts, at, flow, out),
                Record::Update { ts, flow, .. } => out(Released::Update { ts, flow }),
                Record::Flow(r) => out(Released::Flow(r)),
                Record::Counts(_) => {}
            }
        }
        if let Some(u) = upto {
            self.close_windows(u.at, out);
        }
    }

    /// `ts` is the deciding packet's time (reported); `at` the sensor's time (decides windows).
    fn alert(
        &mut self,
        ts: Timestamp,
        at: Timestamp,
        flow: FlowView,
        out: &mut impl FnMut(Released),
    ) {
        let Some(app) = flow.app.as_ref().map(|a| Arc::clone(&a.app)) else {
            return;
        };
        if self.interval == 0 {
            out(Released::Alert { ts, flow });
            return;
        }
        let key = (flow.client.0, app);
        match self.windows.get_mut(&key) {
            Some(w) if at.0 < w.since.0.saturating_add(self.interval) => {
                w.suppressed += 1;
                out(Released::SuppressedOne { app: key.1 });
            }
            _ => {
                if let Some(old) = self.windows.remove(&key) {
                    self.report(&key, old, out);
                }
                if self.windows.len() < MAX_WINDOWS {
                    self.windows.insert(
                        key,
                        Window {
                            since: at,
                            alert_flow_id: flow.id,
                            suppressed: 0,
                        },
                    );
                }
                out(Released::Alert { ts, flow });
            }
        }
    }

    fn report(&self, key: &(Addr, Arc<str>), w: Window, out: &mut impl FnMut(Released)) {
        if w.suppressed > 0 {
            out(Released::Suppressed(SuppressedAlerts {
                ts: w.since.plus_nanos(self.interval),
                since: w.since,
                client: key.0,
                app: Arc::clone(&key.1),
                alert_flow_id: w.alert_flow_id,
                suppressed: w.suppressed,
            }));
        }
    }

    /// Closes the intervals that ended before `now` (looked at once a second of packet time).
    fn close_windows(&mut self, now: Timestamp, out: &mut impl FnMut(Released)) {
        if self.interval == 0 || now < self.next_sweep || self.windows.is_empty() {
            return;
        }
        self.next_sweep = now.plus_nanos(1_000_000_000);
        let interval = self.interval;
        let mut closed: Vec<((Addr, Arc<str>), Window)> = Vec::new();
        self.windows.retain(|k, w| {
            if w.since.0.saturating_add(interval) <= now.0 {
                closed.push((
                    k.clone(),
                    Window {
                        since: w.since,
                        alert_flow_id: w.alert_flow_id,
                        suppressed: w.suppressed,
                    },
                ));
                false
            } else {
                true
            }
        });
        closed.sort_by_key(|(_, w)| (w.since, w.alert_flow_id));
        for (k, w) in closed {
            self.report(&k, w, out);
        }
    }
}

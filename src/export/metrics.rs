//! Prometheus metrics. The pipeline's threads keep plain counters and publish them now and then
//! with single-writer atomic stores (never a read-modify-write, never per packet); a scrape folds
//! the published values into the registry and encodes the text format.
//!
//! Labels come only from closed sets (app ids of the loaded rules, verdicts, stages, reasons,
//! worker indexes), never addresses, names or ports: per-host detail goes in events.

use super::http::{ConnFailure, Exposition};
use crate::classify::Unattributed;
use crate::decode::frag::ReasmEnd;
use crate::decode::{DecodeStats, Skip, TunnelKind};
use crate::export::record::{Anomaly, AppCount, WorkerStats};
use crate::rules::CompiledRules;
use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Values published by the reader thread (one writer).
#[derive(Debug, Default)]
pub struct ReaderPub {
    /// Packets read.
    pub packets: AtomicU64,
    /// Bytes on the wire read.
    pub bytes: AtomicU64,
    /// Packets skipped, by [`Skip::index`].
    pub skips: [AtomicU64; Skip::ALL.len()],
    /// Kernel drops (live capture).
    pub kernel_drops: AtomicU64,
    /// Interface drops (live capture).
    pub interface_drops: AtomicU64,
    /// Packets dropped because a worker queue was full.
    pub queue_drops: AtomicU64,
    /// Packets whose time the sensor's clock did not believe, by [`CLOCK_KINDS`].
    pub clock_adjusted: [AtomicU64; 2],
    /// Entries of the hint caches now, by [`HINT_CACHES`].
    pub hint_entries: [AtomicU64; 2],
    /// Entries dropped from the hint caches to stay within their capacity, by [`HINT_CACHES`].
    pub hint_evictions: [AtomicU64; 2],
    /// Packets through tunnels, by [`TunnelKind::index`].
    pub tunnels: [AtomicU64; TunnelKind::ALL.len()],
    /// Datagrams by how their reassembly ended, by [`ReasmEnd::index`].
    pub reassembly: [AtomicU64; ReasmEnd::ALL.len()],
    /// Duplicate fragments dropped.
    pub fragment_duplicates: AtomicU64,
    /// Datagrams being reassembled now.
    pub reassembly_pending: AtomicU64,
    /// Bytes the reassembly holds now.
    pub reassembly_bytes: AtomicU64,
    /// Hint updates another capture queue's worker could not take (its inbox was full).
    pub hint_drops: AtomicU64,
    /// Times a queue's worker stopped waiting for a lagging queue to read past its batch (it may
    /// then miss that queue's hint updates).
    pub hint_waits_given_up: AtomicU64,
}

impl ReaderPub {
    /// Publishes the decoder's counters.
    pub fn publish_decode(&self, s: &DecodeStats) {
        for (a, v) in self.tunnels.iter().zip(s.tunnels) {
            a.store(v, Ordering::Relaxed);
        }
        let r = &s.reassembly;
        for (a, v) in self.reassembly.iter().zip(r.ended) {
            a.store(v, Ordering::Relaxed);
        }
        self.fragment_duplicates
            .store(r.duplicates, Ordering::Relaxed);
        self.reassembly_pending.store(r.pending, Ordering::Relaxed);
        self.reassembly_bytes.store(r.held_bytes, Ordering::Relaxed);
    }
}

/// The `cache` label values of the hint caches: DNS answers, call endpoints.
pub const HINT_CACHES: [&str; 2] = ["dns_answer", "peer"];

/// Values published by one worker (one writer) or, for the queue depth, by the reader.
#[derive(Debug, Default)]
pub struct WorkerPub {
    /// Packets processed.
    pub packets: AtomicU64,
    /// Flows held now.
    pub active: AtomicU64,
    /// Flows evicted.
    pub evicted: AtomicU64,
    /// ClientHellos read.
    pub hellos: AtomicU64,
    /// Reassembly overlaps whose bytes disagreed.
    pub overlap_conflicts: AtomicU64,
    /// Packets waiting in the worker's queue (published by the reader).
    pub queue_depth: AtomicU64,
    /// Protocol anomalies, by [`Anomaly::index`].
    pub anomalies: [AtomicU64; Anomaly::ALL.len()],
}

impl WorkerPub {
    /// Publishes a tracker's counters.
    pub fn publish(&self, s: &WorkerStats, active: usize) {
        self.packets.store(s.packets, Ordering::Relaxed);
        self.active.store(active as u64, Ordering::Relaxed);
        self.evicted.store(s.evicted, Ordering::Relaxed);
        self.hellos.store(s.hellos, Ordering::Relaxed);
        self.overlap_conflicts
            .store(s.overlap_conflicts(), Ordering::Relaxed);
        for (a, v) in self.anomalies.iter().zip(s.anomalies) {
            a.store(v, Ordering::Relaxed);
        }
    }
}

#[derive(Debug, Default)]
struct Last {
    packets: u64,
    bytes: u64,
    skips: [u64; Skip::ALL.len()],
    tunnels: [u64; TunnelKind::ALL.len()],
    reassembly: [u64; ReasmEnd::ALL.len()],
    duplicates: u64,
    drops: [u64; 3],
    clock: [u64; 2],
    queue_drops: Vec<u64>,
    queue_packets: Vec<u64>,
    hint_drops: u64,
    hint_waits: u64,
    evicted: u64,
    hellos: u64,
    conflicts: u64,
    hint_evictions: [u64; 2],
    anomalies: [u64; Anomaly::ALL.len()],
}

/// The sensor's registry and the published values it is refreshed from.
pub struct Metrics {
    registry: Registry,
    /// Published by the reader.
    pub reader: ReaderPub,
    /// Multi-queue live capture: published by each queue's reader (counters are summed over
    /// these and `reader`; the interface's drops, which every queue reads alike, are the most
    /// any reported).
    pub queues: Box<[ReaderPub]>,
    /// Published per worker.
    pub workers: Box<[WorkerPub]>,
    last: Mutex<Last>,
    packets: IntCounter,
    bytes: IntCounter,
    dropped: IntCounterVec,
    clock_adjusted: IntCounterVec,
    queue_dropped: IntCounterVec,
    queue_packets: IntCounterVec,
    hint_drops: IntCounter,
    hint_waits: IntCounter,
    decode_errors: IntCounterVec,
    skipped: IntCounterVec,
    tunnels: IntCounterVec,
    reassembly: IntCounterVec,
    duplicates: IntCounter,
    reassembly_pending: IntGauge,
    reassembly_bytes: IntGauge,
    flows: IntCounterVec,
    app_bytes: IntCounterVec,
    flows_active: IntGauge,
    flows_max: IntGauge,
    evictions: IntCounter,
    hellos: IntCounter,
    conflicts: IntCounter,
    queue_depth: IntGaugeVec,
    rules_loaded: IntGauge,
    stale_lists: IntGauge,
    reloads: IntCounterVec,
    events_written: IntCounter,
    events_dropped: IntCounter,
    alerts: IntCounterVec,
    alerts_suppressed: IntCounterVec,
    hint_entries: IntGaugeVec,
    hint_evictions: IntCounterVec,
    anomalies: IntCounterVec,
    unattributed: IntCounterVec,
    http_rejected: IntCounter,
    http_failed: IntCounterVec,
    calls: IntCounterVec,
    calls_active: IntGaugeVec,
    call_duration: prometheus::HistogramVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("workers", &self.workers.len())
            .finish()
    }
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::with_opts(Opts::new(name, help))?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::with_opts(Opts::new(name, help))?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

/// The label used for flows that no rule claimed.
pub const NO_APP: &str = "none";

const STAGES: [&str; 3] = ["kernel", "interface", "queue"];
/// Why a packet's time was not believed: far ahead of the capture's, or behind the clock.
pub const CLOCK_KINDS: [&str; 2] = ["ahead", "behind"];

impl Metrics {
    /// A registry with every metric registered, for `workers` workers.
    pub fn new(workers: usize) -> prometheus::Result<Self> {
        let r = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new(
                "picket_build_info",
                "Build information: always 1, with the version as a label.",
            ),
            &["version"],
        )?;
        r.register(Box::new(build.clone()))?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "picket_worker_queue_depth",
                "Packets waiting in a worker's queue (upper bound: whole batches).",
            ),
            &["worker"],
        )?;
        r.register(Box::new(queue_depth.clone()))?;
        let hint_entries = IntGaugeVec::new(
            Opts::new(
                "picket_hint_cache_entries",
                "Entries in the shared hint caches: addresses from DNS answers for app names, endpoints of calls' STUN exchanges.",
            ),
            &["cache"],
        )?;
        r.register(Box::new(hint_entries.clone()))?;
        let calls_active = IntGaugeVec::new(
            Opts::new(
                "picket_calls_active",
                "Calls being assembled: a call ends 30 s after its last packet, and is known ended once no flow of it can still be running.",
            ),
            &["app"],
        )?;
        r.register(Box::new(calls_active.clone()))?;
        let call_duration = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(
                "picket_call_duration_seconds",
                "Duration of ended calls (first to last packet of their flows).",
            )
            .buckets(vec![
                10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
            ]),
            &["app"],
        )?;
        r.register(Box::new(call_duration.clone()))?;
        let m = Metrics {
            calls: counter_vec(
                &r,
                "picket_calls_total",
                "Calls ended, by app and media path (relayed through TURN, direct between the parties, or to the app's server).",
                &["app", "path"],
            )?,
            calls_active,
            call_duration,
            anomalies: counter_vec(
                &r,
                "picket_anomalies_total",
                "Protocol anomalies a peer caused (the flow goes on): reassembly conflicts and limits, incomplete or malformed ClientHellos, oversized server names, undecryptable QUIC Initials, malformed DNS and STUN.",
                &["kind"],
            )?,
            unattributed: counter_vec(
                &r,
                "picket_unattributed_flows_total",
                "Ended flows without an app, by why: real ECH, encrypted DNS, a VPN tunnel, Tor, an unknown QUIC version, a ClientHello without a name, a name no rule claims, one-way traffic, no signal.",
                &["reason"],
            )?,
            hint_entries,
            hint_evictions: counter_vec(
                &r,
                "picket_hint_cache_evictions_total",
                "Hint cache entries dropped, oldest first, to stay within --hint-cache.",
                &["cache"],
            )?,
            packets: counter(&r, "picket_packets_total", "Packets read from the capture.")?,
            bytes: counter(
                &r,
                "picket_bytes_total",
                "Bytes on the wire of the packets read.",
            )?,
            dropped: counter_vec(
                &r,
                "picket_capture_dropped_packets_total",
                "Packets lost before analysis: by the kernel (buffer full), the interface, or a full worker queue.",
                &["stage"],
            )?,
            clock_adjusted: counter_vec(
                &r,
                "picket_clock_adjusted_packets_total",
                "Packets whose timestamp the sensor's clock did not believe: far ahead of the capture's time (the clock does not move), or behind the clock (tracked at its time).",
                &["kind"],
            )?,
            queue_dropped: counter_vec(
                &r,
                "picket_capture_queue_dropped_packets_total",
                "Packets the kernel dropped because a capture queue's buffer was full, by queue (live --queues; one handle is queue 0).",
                &["queue"],
            )?,
            queue_packets: counter_vec(
                &r,
                "picket_capture_queue_packets_total",
                "Packets read, by capture queue (live --queues; one handle is queue 0): how evenly the kernel's flow hash spreads the traffic.",
                &["queue"],
            )?,
            hint_drops: counter(
                &r,
                "picket_hint_updates_dropped_total",
                "Hint updates (DNS answers, STUN endpoints) found on one capture queue that another queue's worker could not take: its inbox was full (live --queues).",
            )?,
            hint_waits: counter(
                &r,
                "picket_hint_waits_given_up_total",
                "Times a capture queue's worker stopped waiting for another queue to catch up, so it may have missed hint updates found there (live --queues).",
            )?,
            decode_errors: counter_vec(
                &r,
                "picket_decode_errors_total",
                "Packets whose headers were truncated or malformed.",
                &["reason"],
            )?,
            skipped: counter_vec(
                &r,
                "picket_packets_skipped_total",
                "Packets not tracked as flows: not IP, not TCP/UDP, IP fragments held for reassembly, unsupported link types.",
                &["reason"],
            )?,
            tunnels: counter_vec(
                &r,
                "picket_tunnel_packets_total",
                "Packets decapsulated, by tunnel kind (a packet through several kinds counts once for each).",
                &["kind"],
            )?,
            reassembly: counter_vec(
                &r,
                "picket_ip_reassembly_total",
                "Fragmented IP datagrams, by how their reassembly ended.",
                &["result"],
            )?,
            duplicates: counter(
                &r,
                "picket_ip_fragment_duplicates_total",
                "Exact duplicates of IP fragments already held, dropped.",
            )?,
            reassembly_pending: gauge(
                &r,
                "picket_ip_reassembly_pending",
                "Fragmented IP datagrams waiting for more fragments now.",
            )?,
            reassembly_bytes: gauge(
                &r,
                "picket_ip_reassembly_bytes",
                "Bytes of buffers IP reassembly holds now.",
            )?,
            flows: counter_vec(
                &r,
                "picket_flows_total",
                "Flows by app and verdict, counted when classified (\"none\": no rule claimed it, counted when it ends).",
                &["app", "verdict"],
            )?,
            app_bytes: counter_vec(
                &r,
                "picket_app_bytes_total",
                "Bytes on the wire by app, counted as packets pass (\"none\": when the flow ends).",
                &["app"],
            )?,
            flows_active: gauge(&r, "picket_flows_active", "Flows held in the flow tables now.")?,
            flows_max: gauge(
                &r,
                "picket_flows_max",
                "Flows the flow tables hold at most (--max-flows); past it the least recently seen is evicted.",
            )?,
            evictions: counter(
                &r,
                "picket_flow_evictions_total",
                "Flows ended early because a flow table was full.",
            )?,
            hellos: counter(
                &r,
                "picket_tls_client_hellos_total",
                "TLS ClientHellos read.",
            )?,
            conflicts: counter(
                &r,
                "picket_reassembly_conflicts_total",
                "TCP segments whose bytes disagreed with bytes already reassembled (what a receiver reads kept).",
            )?,
            queue_depth,
            rules_loaded: gauge(&r, "picket_rules_loaded", "Domain rules in the loaded rule set.")?,
            stale_lists: gauge(
                &r,
                "picket_rules_stale_prefix_lists",
                "IP prefix lists of the loaded rules older than their max_age_days.",
            )?,
            reloads: counter_vec(
                &r,
                "picket_rules_reloads_total",
                "Rule reloads (SIGHUP), by result.",
                &["result"],
            )?,
            events_written: counter(&r, "picket_events_written_total", "Events written.")?,
            events_dropped: counter(
                &r,
                "picket_events_dropped_total",
                "Events that could not be written (the events sink failed).",
            )?,
            alerts: counter_vec(
                &r,
                "picket_alerts_total",
                "Alerts written: flows first classified as an app that alerts.",
                &["app"],
            )?,
            alerts_suppressed: counter_vec(
                &r,
                "picket_alerts_suppressed_total",
                "Alerts not written because the same client and app alerted within the interval.",
                &["app"],
            )?,
            http_rejected: counter(
                &r,
                "picket_http_connections_rejected_total",
                "Connections to the metrics endpoint closed unread because every handler was busy and the hand-off queue full, or their client address already had 2 connections in.",
            )?,
            http_failed: counter_vec(
                &r,
                "picket_http_connections_failed_total",
                "Connections to the metrics endpoint that got no normal answer: past their deadline, request head too large (431), failed TLS handshake, or another I/O error.",
                &["reason"],
            )?,
            registry: r,
            reader: ReaderPub::default(),
            queues: Box::default(),
            workers: (0..workers.max(1)).map(|_| WorkerPub::default()).collect(),
            last: Mutex::new(Last::default()),
        };
        for k in CLOCK_KINDS {
            m.clock_adjusted.with_label_values(&[k]);
        }
        for s in STAGES {
            m.dropped.with_label_values(&[s]);
        }
        // One handle is queue 0 until `with_queues` says otherwise.
        m.queue_dropped.with_label_values(&["0"]);
        m.queue_packets.with_label_values(&["0"]);
        if let Ok(mut last) = m.last.lock() {
            last.queue_drops = vec![0];
            last.queue_packets = vec![0];
        }
        for k in Skip::ALL {
            if k.is_error() {
                m.decode_errors.with_label_values(&[k.as_str()]);
            } else {
                m.skipped.with_label_values(&[k.as_str()]);
            }
        }
        for res in ["ok", "error"] {
            m.reloads.with_label_values(&[res]);
        }
        for f in ConnFailure::ALL {
            m.http_failed.with_label_values(&[f.as_str()]);
        }
        for k in TunnelKind::ALL {
            m.tunnels.with_label_values(&[k.as_str()]);
        }
        for e in ReasmEnd::ALL {
            m.reassembly.with_label_values(&[e.as_str()]);
        }
        for u in Unattributed::ALL {
            m.unattributed.with_label_values(&[u.as_str()]);
        }
        for w in 0..m.workers.len() {
            m.queue_depth.with_label_values(&[&w.to_string()]);
        }
        Ok(m)
    }

    /// With `n` capture queues (live `--queues`), each publishing its own reader values.
    pub fn with_queues(mut self, n: usize) -> Self {
        self.queues = (0..n).map(|_| ReaderPub::default()).collect();
        for q in 0..n {
            self.queue_dropped.with_label_values(&[&q.to_string()]);
            self.queue_packets.with_label_values(&[&q.to_string()]);
        }
        if let Ok(mut last) = self.last.lock() {
            last.queue_drops = vec![0; n];
            last.queue_packets = vec![0; n];
        }
        self
    }

    /// Records a loaded rule set (at start and after each successful reload) and makes a zero
    /// series for each of its apps, so dashboards see them before their first flow.
    pub fn rules_loaded(&self, rules: &CompiledRules) {
        self.rules_loaded.set(rules.domain_count() as i64);
        self.stale_lists
            .set(rules.stale_lists(crate::rules::today()).len() as i64);
        for app in rules.apps() {
            self.flows
                .with_label_values(&[&app.id, app.verdict.as_str()]);
            self.app_bytes.with_label_values(&[&app.id]);
            self.calls_active.with_label_values(&[&app.id]);
            self.call_duration.with_label_values(&[&app.id]);
            for path in crate::export::calls::CallPath::ALL {
                self.calls.with_label_values(&[&app.id, path.as_str()]);
            }
            if app.alert {
                self.alerts.with_label_values(&[&app.id]);
                self.alerts_suppressed.with_label_values(&[&app.id]);
            }
        }
    }

    /// Records the flow tables' capacity, for the whole sensor.
    pub fn flow_capacity(&self, flows: usize) {
        self.flows_max.set(i64::try_from(flows).unwrap_or(i64::MAX));
    }

    /// Counts a reload attempt.
    pub fn reload(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }

    /// Counts flows and bytes of apps as the workers report them (as flows are classified and
    /// as their packets pass).
    pub fn app_counts(&self, counts: &[AppCount]) {
        for c in counts {
            if c.flows > 0 {
                self.flows
                    .with_label_values(&[&c.app, c.verdict.as_str()])
                    .inc_by(c.flows);
            }
            self.app_bytes.with_label_values(&[&c.app]).inc_by(c.bytes);
        }
    }

    /// Counts an ended flow that no rule claimed (its app is known only when it ends).
    pub fn unclassified_flow_ended(&self, bytes: u64) {
        self.flows.with_label_values(&[NO_APP, NO_APP]).inc();
        self.app_bytes.with_label_values(&[NO_APP]).inc_by(bytes);
    }

    /// Counts an ended flow without an app by the reason it has none.
    pub fn unattributed_flow(&self, reason: Unattributed) {
        self.unattributed
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// Counts an alert written, or suppressed.
    pub fn alert(&self, app: &str, written: bool) {
        let v = if written {
            &self.alerts
        } else {
            &self.alerts_suppressed
        };
        v.with_label_values(&[app]).inc();
    }

    /// Counts a call opened (+1) or ended (-1) for the active-calls gauge.
    pub fn call_active(&self, app: &str, delta: i64) {
        self.calls_active.with_label_values(&[app]).add(delta);
    }

    /// Counts an ended call and its duration.
    pub fn call_ended(&self, c: &crate::export::calls::CallView) {
        self.calls
            .with_label_values(&[&c.class.app, c.path.as_str()])
            .inc();
        let ns = c.last_ts.0.saturating_sub(c.first_ts.0);
        self.call_duration
            .with_label_values(&[&c.class.app])
            .observe(ns as f64 / 1e9);
    }

    /// Counts lines that reached an events or alerts file, and lines dropped by a failing one.
    pub fn events(&self, written: u64, dropped: u64) {
        self.events_written.inc_by(written);
        self.events_dropped.inc_by(dropped);
    }

    /// Folds the published values into the registry.
    pub fn refresh(&self) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // The reader's values, summed with the capture queues' readers'.
        let read = |f: &dyn Fn(&ReaderPub) -> &AtomicU64| -> u64 {
            load(f(&self.reader)) + self.queues.iter().map(|q| load(f(q))).sum::<u64>()
        };
        let step = |c: &IntCounter, now: u64, last: &mut u64| {
            if now > *last {
                c.inc_by(now - *last);
                *last = now;
            }
        };
        step(&self.packets, read(&|r| &r.packets), &mut last.packets);
        step(&self.bytes, read(&|r| &r.bytes), &mut last.bytes);
        for k in Skip::ALL {
            let i = k.index();
            let vec = if k.is_error() {
                &self.decode_errors
            } else {
                &self.skipped
            };
            let c = vec.with_label_values(&[k.as_str()]);
            step(&c, read(&|r| &r.skips[i]), &mut last.skips[i]);
        }
        for k in TunnelKind::ALL {
            let i = k.index();
            let c = self.tunnels.with_label_values(&[k.as_str()]);
            step(&c, read(&|r| &r.tunnels[i]), &mut last.tunnels[i]);
        }
        for e in ReasmEnd::ALL {
            let i = e.index();
            let c = self.reassembly.with_label_values(&[e.as_str()]);
            step(&c, read(&|r| &r.reassembly[i]), &mut last.reassembly[i]);
        }
        step(
            &self.duplicates,
            read(&|r| &r.fragment_duplicates),
            &mut last.duplicates,
        );
        self.reassembly_pending
            .set(read(&|r| &r.reassembly_pending) as i64);
        self.reassembly_bytes
            .set(read(&|r| &r.reassembly_bytes) as i64);
        let interface = self
            .queues
            .iter()
            .map(|q| load(&q.interface_drops))
            .fold(load(&self.reader.interface_drops), u64::max);
        let drops = [
            read(&|r| &r.kernel_drops),
            interface,
            read(&|r| &r.queue_drops),
        ];
        let queues = if self.queues.is_empty() {
            std::slice::from_ref(&self.reader)
        } else {
            &self.queues[..]
        };
        for (i, q) in queues.iter().enumerate() {
            let label = i.to_string();
            if let Some(last) = last.queue_drops.get_mut(i) {
                let c = self.queue_dropped.with_label_values(&[&label]);
                step(&c, load(&q.kernel_drops), last);
            }
            if let Some(last) = last.queue_packets.get_mut(i) {
                let c = self.queue_packets.with_label_values(&[&label]);
                step(&c, load(&q.packets), last);
            }
        }
        step(
            &self.hint_drops,
            read(&|r| &r.hint_drops),
            &mut last.hint_drops,
        );
        step(
            &self.hint_waits,
            read(&|r| &r.hint_waits_given_up),
            &mut last.hint_waits,
        );
        for (i, s) in STAGES.iter().enumerate() {
            let c = self.dropped.with_label_values(&[s]);
            step(&c, drops[i], &mut last.drops[i]);
        }
        for (i, k) in CLOCK_KINDS.iter().enumerate() {
            let c = self.clock_adjusted.with_label_values(&[k]);
            step(&c, read(&|r| &r.clock_adjusted[i]), &mut last.clock[i]);
        }
        let sum = |f: fn(&WorkerPub) -> &AtomicU64| -> u64 {
            self.workers.iter().map(|w| load(f(w))).sum()
        };
        self.flows_active.set(sum(|w| &w.active) as i64);
        step(&self.evictions, sum(|w| &w.evicted), &mut last.evicted);
        step(&self.hellos, sum(|w| &w.hellos), &mut last.hellos);
        step(
            &self.conflicts,
            sum(|w| &w.overlap_conflicts),
            &mut last.conflicts,
        );
        for k in Anomaly::ALL {
            let i = k.index();
            let total: u64 = self.workers.iter().map(|w| load(&w.anomalies[i])).sum();
            let c = self.anomalies.with_label_values(&[k.as_str()]);
            step(&c, total, &mut last.anomalies[i]);
        }
        for (i, c) in HINT_CACHES.iter().enumerate() {
            self.hint_entries
                .with_label_values(&[c])
                .set(read(&|r| &r.hint_entries[i]) as i64);
            let e = self.hint_evictions.with_label_values(&[c]);
            step(
                &e,
                read(&|r| &r.hint_evictions[i]),
                &mut last.hint_evictions[i],
            );
        }
        for (i, w) in self.workers.iter().enumerate() {
            self.queue_depth
                .with_label_values(&[&i.to_string()])
                .set(load(&w.queue_depth) as i64);
        }
    }

    /// Refreshes and encodes every metric in the Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        self.refresh();
        let mut out = Vec::with_capacity(8192);
        // Encoding into a Vec cannot fail for I/O; a registry error would be a bug, and an
        // empty body then says so to the scraper.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// The metrics endpoint serves this registry and counts its connections in it.
impl Exposition for Metrics {
    fn render(&self) -> Vec<u8> {
        Metrics::render(self)
    }

    fn rejected(&self) {
        self.http_rejected.inc();
    }

    fn failed(&self, why: ConnFailure) {
        self.http_failed.with_label_values(&[why.as_str()]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn capture_queues_add_up_but_the_interface_counts_once() {
        let m = Metrics::new(2).unwrap().with_queues(2);
        for (q, n) in m.queues.iter().zip([30, 12]) {
            q.packets.store(n, Ordering::Relaxed);
            q.kernel_drops.store(n / 6, Ordering::Relaxed);
            // Every handle reads the same interface counter.
            q.interface_drops.store(7, Ordering::Relaxed);
        }
        let t = String::from_utf8(m.render()).unwrap();
        assert_eq!(value(&t, "picket_packets_total"), Some(42.0));
        assert_eq!(
            value(&t, "picket_capture_queue_packets_total{queue=\"1\"}"),
            Some(12.0)
        );
        assert_eq!(
            value(
                &t,
                "picket_capture_queue_dropped_packets_total{queue=\"0\"}"
            ),
            Some(5.0)
        );
        assert_eq!(
            value(&t, "picket_capture_dropped_packets_total{stage=\"kernel\"}"),
            Some(7.0)
        );
        assert_eq!(
            value(
                &t,
                "picket_capture_dropped_packets_total{stage=\"interface\"}"
            ),
            Some(7.0)
        );
    }

    #[test]
    fn render_folds_published_values_without_double_counting() {
        let m = Metrics::new(2).unwrap();
        let rules = crate::rules::defaults().unwrap();
        m.rules_loaded(&rules);
        m.reader.packets.store(100, Ordering::Relaxed);
        m.reader.skips[Skip::Fragment.index()].store(3, Ordering::Relaxed);
        let mut d = DecodeStats::default();
        d.tunnels[TunnelKind::Vxlan.index()] = 4;
        d.reassembly.ended[ReasmEnd::Overlap.index()] = 2;
        d.reassembly.pending = 1;
        m.reader.publish_decode(&d);
        m.workers[0].active.store(5, Ordering::Relaxed);
        m.workers[1].active.store(7, Ordering::Relaxed);
        m.app_counts(&[AppCount {
            app: std::sync::Arc::from("whatsapp"),
            verdict: crate::rules::Verdict::Flag,
            flows: 1,
            bytes: 1500,
        }]);
        m.unclassified_flow_ended(60);
        m.unattributed_flow(Unattributed::Vpn);
        m.alert("whatsapp", true);
        m.flow_capacity(1_000_000);
        let t = String::from_utf8(m.render()).unwrap();
        assert_eq!(value(&t, "picket_packets_total"), Some(100.0));
        assert_eq!(value(&t, "picket_flows_max"), Some(1_000_000.0));
        assert_eq!(
            value(&t, "picket_unattributed_flows_total{reason=\"vpn\"}"),
            Some(1.0)
        );
        for r in Unattributed::ALL {
            let series = format!("picket_unattributed_flows_total{{reason=\"{r}\"}}");
            assert!(
                value(&t, &series).is_some(),
                "{series} is there from the start"
            );
        }
        m.reader.packets.store(150, Ordering::Relaxed);
        m.reader.hint_entries[0].store(9, Ordering::Relaxed);
        m.workers[1].anomalies[Anomaly::DnsMalformed.index()].store(2, Ordering::Relaxed);
        m.reader.hint_evictions[1].store(4, Ordering::Relaxed);
        let t = String::from_utf8(m.render()).unwrap();
        assert_eq!(value(&t, "picket_packets_total"), Some(150.0));
        assert_eq!(
            value(&t, "picket_hint_cache_entries{cache=\"dns_answer\"}"),
            Some(9.0)
        );
        assert_eq!(
            value(&t, "picket_hint_cache_evictions_total{cache=\"peer\"}"),
            Some(4.0)
        );
        assert_eq!(
            value(&t, "picket_anomalies_total{kind=\"dns_malformed\"}"),
            Some(2.0)
        );
        assert_eq!(
            value(&t, "picket_anomalies_total{kind=\"stun_malformed\"}"),
            Some(0.0)
        );
        assert_eq!(value(&t, "picket_flows_active"), Some(12.0));
        assert_eq!(
            value(&t, "picket_packets_skipped_total{reason=\"ip_fragment\"}"),
            Some(3.0)
        );
        assert_eq!(
            value(&t, "picket_flows_total{app=\"whatsapp\",verdict=\"flag\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&t, "picket_flows_total{app=\"zoom\",verdict=\"flag\"}"),
            Some(0.0)
        );
        assert_eq!(
            value(&t, "picket_app_bytes_total{app=\"none\"}"),
            Some(60.0)
        );
        assert_eq!(
            value(&t, "picket_capture_dropped_packets_total{stage=\"kernel\"}"),
            Some(0.0)
        );
        assert_eq!(
            value(&t, "picket_alerts_total{app=\"whatsapp\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&t, "picket_alerts_suppressed_total{app=\"zoom\"}"),
            Some(0.0)
        );
        assert_eq!(
            value(&t, "picket_tunnel_packets_total{kind=\"vxlan\"}"),
            Some(4.0)
        );
        assert_eq!(
            value(&t, "picket_tunnel_packets_total{kind=\"gre\"}"),
            Some(0.0)
        );
        assert_eq!(
            value(&t, "picket_ip_reassembly_total{result=\"overlap\"}"),
            Some(2.0)
        );
        assert_eq!(value(&t, "picket_ip_reassembly_pending"), Some(1.0));
        assert_eq!(
            value(
                &t,
                "picket_decode_errors_total{reason=\"malformed_tunnel\"}"
            ),
            Some(0.0)
        );
        assert!(t.contains("# HELP picket_build_info "));
        assert!(t.contains("picket_rules_loaded"));
        // No label carries an address.
        assert!(!t.contains("10.") && !t.contains("192.0.2"));
    }
}

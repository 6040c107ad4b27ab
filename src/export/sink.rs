//! The consumer: the one thread that takes the workers' record batches. It releases records in
//! time order through the alert [`Gate`], writes them to the events and alerts files, and feeds
//! the summary, the report and the per-app metrics. Reads owned records only.

use crate::export::calls::{CallEvent, Calls};
use crate::export::events::{ClientAddrs, EventWriter};
use crate::export::gate::{Gate, Released};
use crate::export::metrics::Metrics;
use crate::export::record::{AppCount, RecordBatch};
use crate::export::report::Report;
use crate::export::summary::Summary;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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

/// The event writer of one output file.
type Writer = EventWriter<Box<dyn Write + Send>>;

/// One JSON-lines output (events or alerts), reopened on request, failures counted.
struct Output {
    path: PathBuf,
    writer: Writer,
    sensor: Option<String>,
    clients: ClientAddrs,
    failed: bool,
    dropped_since: u64,
}

/// A failed output is reopened after this many dropped events.
const RETRY_EVERY: u64 = 1000;

impl Output {
    fn open(
        path: &PathBuf,
        sensor: Option<String>,
        clients: ClientAddrs,
    ) -> Result<Self, SinkError> {
        let f = open_events(path, true).map_err(|source| SinkError {
            path: path.clone(),
            source,
        })?;
        Ok(Output {
            path: path.clone(),
            writer: EventWriter::new(f, sensor.clone()).with_client_addrs(clients.clone()),
            sensor,
            clients,
            failed: false,
            dropped_since: 0,
        })
    }

    fn reopen(&mut self) {
        let _ = self.writer.flush();
        match open_events(&self.path, false) {
            Ok(f) => {
                self.writer = EventWriter::new(f, self.sensor.clone())
                    .with_client_addrs(self.clients.clone());
                self.failed = false;
                tracing::info!(path = %self.path.display(), "reopened");
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot reopen")
            }
        }
    }

    /// Writes one event; false when the sink failed. After a failure nothing more is written
    /// to the broken writer (no half lines): events are dropped and counted, and every
    /// [`RETRY_EVERY`] dropped events (or on SIGHUP) the file is reopened for appending.
    fn write(&mut self, f: impl FnOnce(&mut Writer) -> io::Result<()>) -> bool {
        if self.failed {
            self.dropped_since += 1;
            if self.dropped_since % RETRY_EVERY != 0 {
                return false;
            }
            self.reopen();
            if self.failed {
                return false;
            }
        }
        let ok = f(&mut self.writer).is_ok();
        if !ok {
            tracing::error!(path = %self.path.display(), "writing failed; events are dropped and counted until the file can be written again");
            self.failed = true;
            self.dropped_since = 0;
        }
        ok
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// How the consumer writes.
#[derive(Clone, Debug)]
pub struct SinkOptions {
    /// Events file (every event).
    pub events: Option<PathBuf>,
    /// Alerts file (alerts alone).
    pub alerts: Option<PathBuf>,
    /// Sensor name for events and flow ids.
    pub sensor: Option<String>,
    /// Worker count (for ordering).
    pub workers: usize,
    /// At most one alert per (client, app) per this long (0: no suppression).
    pub alert_interval_ns: u64,
    /// How client addresses appear in events.
    pub clients: ClientAddrs,
    /// The UDP idle timeout: with `flow_update_ns`, how long a live flow can go without a
    /// record, so how long after its last packet a call can still grow.
    pub udp_idle_ns: u64,
    /// The `flow_update` interval (0: none; calls then end at the end of the input), also the
    /// `call_update` interval.
    pub flow_update_ns: u64,
}

/// The consumer side of a run: events in time order, alert suppression, the summary, the
/// events and alerts files and the per-app metrics.
pub struct Sink {
    events: Option<Output>,
    alerts: Option<Output>,
    gate: Gate,
    /// Per-app totals.
    pub summary: Summary,
    /// The HTML report's aggregates, when one was asked for.
    pub report: Option<Report>,
    metrics: Option<Arc<Metrics>>,
    reopen: Arc<AtomicBool>,
    /// Events that could not be written.
    pub dropped: u64,
    /// The calls being assembled from the released flows.
    pub calls: Calls,
    /// Call events released while a record was handled (reused).
    call_events: Vec<CallEvent>,
}

impl Sink {
    /// Opens the outputs (truncating them, as a fresh run does).
    pub fn new(
        opts: &SinkOptions,
        metrics: Option<Arc<Metrics>>,
        reopen: Arc<AtomicBool>,
    ) -> Result<Self, SinkError> {
        let open = |p: &Option<PathBuf>| -> Result<Option<Output>, SinkError> {
            p.as_ref()
                .map(|p| Output::open(p, opts.sensor.clone(), opts.clients.clone()))
                .transpose()
        };
        Ok(Sink {
            events: open(&opts.events)?,
            alerts: open(&opts.alerts)?,
            gate: Gate::new(opts.workers, opts.alert_interval_ns),
            summary: Summary::default(),
            report: None,
            metrics,
            reopen,
            dropped: 0,
            calls: Calls::new(
                if opts.flow_update_ns == 0 {
                    u64::MAX / 4
                } else {
                    opts.udp_idle_ns.saturating_add(opts.flow_update_ns)
                },
                opts.flow_update_ns,
            ),
            call_events: Vec::new(),
        })
    }

    /// Takes a worker's batch: records are released in time order and written; the files are
    /// flushed, so a live sensor's events reach them as they happen.
    pub fn output(&mut self, o: &mut RecordBatch) {
        if self.reopen.load(Ordering::Relaxed) && self.reopen.swap(false, Ordering::Relaxed) {
            for out in [&mut self.events, &mut self.alerts].into_iter().flatten() {
                out.reopen();
            }
        }
        let (gate, mut out) = self.parts();
        let metrics = out.metrics;
        let mut counts = |c: Vec<AppCount>| {
            if let Some(m) = metrics {
                m.app_counts(&c);
            }
        };
        gate.push(
            usize::from(o.worker),
            o.watermark,
            o.records.drain(..),
            &mut |r| out.handle(r),
            &mut counts,
        );
        self.flush_quietly();
    }

    /// Releases what is left (end of input) and flushes.
    pub fn finish(&mut self) -> io::Result<()> {
        let (gate, mut out) = self.parts();
        gate.finish(&mut |r| out.handle(r));
        out.end_calls();
        for out in [&mut self.events, &mut self.alerts].into_iter().flatten() {
            out.flush()?;
        }
        Ok(())
    }

    /// The gate, and everything released events go to, borrowed apart.
    fn parts(&mut self) -> (&mut Gate, Outputs<'_>) {
        let Sink {
            events,
            alerts,
            gate,
            summary,
            report,
            metrics,
            dropped,
            calls,
            call_events,
            ..
        } = self;
        (
            gate,
            Outputs {
                events,
                alerts,
                summary,
                report,
                metrics: metrics.as_deref(),
                dropped,
                calls,
                call_events,
            },
        )
    }

    fn flush_quietly(&mut self) {
        for out in [&mut self.events, &mut self.alerts].into_iter().flatten() {
            if out.flush().is_err() && !out.failed {
                tracing::error!(path = %out.path.display(), "flushing failed");
                out.failed = true;
            }
        }
    }
}

/// Where released events go.
struct Outputs<'a> {
    events: &'a mut Option<Output>,
    alerts: &'a mut Option<Output>,
    summary: &'a mut Summary,
    report: &'a mut Option<Report>,
    metrics: Option<&'a Metrics>,
    dropped: &'a mut u64,
    calls: &'a mut Calls,
    call_events: &'a mut Vec<CallEvent>,
}

impl Outputs<'_> {
    /// Writes one released event where it belongs and counts it; the calls it ends or updates
    /// first and after.
    fn handle(&mut self, r: Released) {
        let at = match &r {
            Released::Alert { ts, .. } | Released::Update { ts, .. } => Some(*ts),
            Released::Flow(rec) => Some(rec.at),
            Released::SuppressedOne { .. } | Released::Suppressed(_) => None,
        };
        if let Some(at) = at {
            let events = &mut *self.call_events;
            self.calls.advance(at, &mut |e| events.push(e));
            self.write_calls();
        }
        self.handle_flow_event(&r);
        let events = &mut *self.call_events;
        match &r {
            Released::Flow(rec) => self.calls.flow(rec, &mut |e| events.push(e)),
            Released::Update { ts, flow } => self.calls.update(*ts, flow, &mut |e| events.push(e)),
            _ => {}
        }
        self.write_calls();
    }

    /// Ends every call (end of input) and writes them.
    fn end_calls(&mut self) {
        let events = &mut *self.call_events;
        self.calls.finish(&mut |e| events.push(e));
        self.write_calls();
    }

    /// Writes the call events released so far.
    fn write_calls(&mut self) {
        if self.call_events.is_empty() {
            return;
        }
        for e in self.call_events.drain(..) {
            match &e {
                CallEvent::Opened(app) => {
                    if let Some(m) = self.metrics {
                        m.call_active(app, 1);
                    }
                    continue;
                }
                CallEvent::Closed(app) => {
                    if let Some(m) = self.metrics {
                        m.call_active(app, -1);
                    }
                    continue;
                }
                CallEvent::End(c) => {
                    self.summary.calls += 1;
                    if let Some(m) = self.metrics {
                        m.call_ended(c);
                    }
                }
                CallEvent::Update { .. } => {}
            }
            if let Some(o) = self.events.as_mut() {
                let ok = o.write(|w| match &e {
                    CallEvent::End(c) => w.call(c),
                    CallEvent::Update { ts, call } => w.call_update(*ts, call),
                    CallEvent::Opened(_) | CallEvent::Closed(_) => Ok(()),
                });
                *self.dropped += u64::from(!ok);
                if let Some(m) = self.metrics {
                    m.event(ok);
                }
            }
        }
    }

    /// Writes one released flow-bound event where it belongs and counts it.
    fn handle_flow_event(&mut self, r: &Released) {
        let Outputs {
            events,
            alerts,
            summary,
            report,
            metrics,
            dropped,
            ..
        } = self;
        let (events, alerts, summary, report, dropped, metrics) = (
            &mut **events,
            &mut **alerts,
            &mut **summary,
            &mut **report,
            &mut **dropped,
            *metrics,
        );
        let mut write = |out: &mut Option<Output>, f: &dyn Fn(&mut Writer) -> io::Result<()>| {
            if let Some(o) = out.as_mut() {
                let ok = o.write(f);
                *dropped += u64::from(!ok);
                if let Some(m) = metrics {
                    m.event(ok);
                }
            }
        };
        match r {
            Released::Alert { ts, flow } => {
                let ts = *ts;
                if let Some(a) = flow.app.as_ref() {
                    summary.alert(&a.app);
                    if let Some(m) = metrics {
                        m.alert(&a.app, true);
                    }
                }
                write(events, &|w| w.alert(ts, flow));
                write(alerts, &|w| w.alert(ts, flow));
            }
            Released::SuppressedOne { app } => {
                if let Some(m) = metrics {
                    m.alert(app, false);
                }
            }
            Released::Suppressed(s) => {
                write(events, &|w| w.suppressed(s));
                write(alerts, &|w| w.suppressed(s));
            }
            Released::Update { ts, flow } => write(events, &|w| w.update(*ts, flow)),
            Released::Flow(rec) => {
                summary.add(rec);
                if let Some(r) = report.as_mut() {
                    r.add(rec);
                }
                if rec.flow.app.is_none() {
                    if let Some(m) = metrics {
                        m.unclassified_flow_ended(
                            rec.flow.to_server.bytes + rec.flow.to_client.bytes,
                        );
                    }
                }
                write(events, &|w| w.flow(rec));
            }
        }
    }
}

/// An output file that could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create {}: {source}", path.display())]
pub struct SinkError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

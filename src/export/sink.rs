//! The consumer: the one thread that takes the workers' record batches. It releases records in
//! time order through the alert [`Gate`], writes them to the events and alerts files, and feeds
//! the summary, the report and the per-app metrics. Reads owned records only.

use crate::export::calls::{CallEvent, Calls};
use crate::export::events::{ClientAddrs, EventFormat, EventStyle, EventWriter};
use crate::export::gate::{Gate, Released};
use crate::export::lines::{Existing, LineFile};
use crate::export::metrics::Metrics;
use crate::export::record::{AppCount, RecordBatch};
use crate::export::report::Report;
use crate::export::summary::Summary;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The event writer of one output file.
type Writer = EventWriter<LineFile>;

/// One JSON-lines output (events or alerts): whole lines only, reopened on request, what
/// reached the file and what was dropped counted exactly.
struct Output {
    writer: Writer,
    /// Lines already folded into the metrics: (written, dropped).
    counted: (u64, u64),
}

impl Output {
    fn open(path: &Path, existing: Existing, style: &EventStyle) -> Result<Self, SinkError> {
        let f = LineFile::open(path, existing).map_err(|source| SinkError {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Output {
            writer: EventWriter::styled(f, style),
            counted: (0, 0),
        })
    }

    fn file(&mut self) -> &mut LineFile {
        self.writer.get_mut()
    }

    fn reopen(&mut self) {
        let f = self.file();
        match f.reopen() {
            Ok(()) => tracing::info!(path = %f.path().display(), "reopened"),
            Err(e) => tracing::error!(path = %f.path().display(), error = %e, "cannot reopen"),
        }
    }

    /// Folds what reached the file, or was dropped, since the last call into the metrics.
    fn count(&mut self, metrics: Option<&Metrics>) {
        let f = self.writer.get_ref();
        let now = (f.written(), f.dropped());
        if let Some(m) = metrics {
            m.events(now.0 - self.counted.0, now.1 - self.counted.1);
        }
        self.counted = now;
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
    /// The seed of events' `community_id`.
    pub community_id_seed: u16,
    /// The layout of events.
    pub format: EventFormat,
    /// What happens to existing events and alerts files: replaced (atomically) or appended to.
    pub existing: Existing,
    /// The UDP idle timeout: with `flow_update_ns`, how long a live flow can go without a
    /// record, so how long after its last packet a call can still grow.
    pub udp_idle_ns: u64,
    /// The `flow_update` interval (0: none; calls then end at the end of the input), also the
    /// `call_update` interval.
    pub flow_update_ns: u64,
}

impl SinkOptions {
    /// How these options have events written.
    pub fn style(&self) -> EventStyle {
        EventStyle {
            sensor: self.sensor.clone(),
            clients: self.clients.clone(),
            community_id_seed: self.community_id_seed,
            format: self.format,
        }
    }
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
    /// The calls being assembled from the released flows.
    pub calls: Calls,
    /// Call events released while a record was handled (reused).
    call_events: Vec<CallEvent>,
}

impl Sink {
    /// Opens the outputs (replacing or appending to existing files, as `opts` says).
    pub fn new(
        opts: &SinkOptions,
        metrics: Option<Arc<Metrics>>,
        reopen: Arc<AtomicBool>,
    ) -> Result<Self, SinkError> {
        let open = |p: &Option<PathBuf>| -> Result<Option<Output>, SinkError> {
            p.as_ref()
                .map(|p| Output::open(p, opts.existing, &opts.style()))
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

    /// Events (lines in the events and alerts files) dropped because writing failed.
    pub fn dropped(&self) -> u64 {
        self.outputs().map(|o| o.writer.get_ref().dropped()).sum()
    }

    /// The open output files (temporary ones until renamed), for handing them to another owner.
    pub fn files(&self) -> impl Iterator<Item = &std::fs::File> {
        self.outputs().filter_map(|o| o.writer.get_ref().file())
    }

    /// Renames replaced outputs over their paths now (before a privilege drop takes the right to
    /// write their folder).
    pub fn commit(&mut self) -> Result<(), SinkError> {
        for o in [&mut self.events, &mut self.alerts].into_iter().flatten() {
            let f = o.file();
            f.commit().map_err(|source| SinkError {
                path: f.path().to_path_buf(),
                source,
            })?;
        }
        Ok(())
    }

    fn outputs(&self) -> impl Iterator<Item = &Output> {
        [&self.events, &self.alerts].into_iter().flatten()
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

    /// Releases what is left (end of input) and writes it: an error when any line was dropped.
    pub fn finish(&mut self) -> io::Result<()> {
        let (gate, mut out) = self.parts();
        gate.finish(&mut |r| out.handle(r));
        out.end_calls();
        self.flush_quietly();
        for out in [&mut self.events, &mut self.alerts].into_iter().flatten() {
            // A run that wrote nothing still replaces the old file.
            out.file().commit()?;
            out.writer.flush()?;
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
                calls,
                call_events,
            },
        )
    }

    /// Writes the lines gathered (failures are logged and counted by the files) and counts them.
    fn flush_quietly(&mut self) {
        let metrics = self.metrics.as_deref();
        for out in [&mut self.events, &mut self.alerts].into_iter().flatten() {
            out.file().flush_lines();
            out.count(metrics);
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
                    if let Some(r) = self.report.as_mut() {
                        r.call(c);
                    }
                    if let Some(m) = self.metrics {
                        m.call_ended(c);
                    }
                }
                CallEvent::Update { .. } => {}
            }
            // Into the file's gathered lines, which never fails (see `handle_flow_event`).
            if let Some(o) = self.events.as_mut() {
                let _ = match &e {
                    CallEvent::End(c) => o.writer.call(c),
                    CallEvent::Update { ts, call } => o.writer.call_update(*ts, call),
                    CallEvent::Opened(_) | CallEvent::Closed(_) => Ok(()),
                };
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
            ..
        } = self;
        let (events, alerts, summary, report, metrics) = (
            &mut **events,
            &mut **alerts,
            &mut **summary,
            &mut **report,
            *metrics,
        );
        // Into the file's gathered lines, which never fails: whether a line reached the file is
        // known when the lines are flushed.
        let write = |out: &mut Option<Output>, f: &dyn Fn(&mut Writer) -> io::Result<()>| {
            if let Some(o) = out.as_mut() {
                let _ = f(&mut o.writer);
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
                if let Some(r) = report.as_mut() {
                    r.alert(ts, flow);
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
                        if let Some(u) = rec.flow.unattributed {
                            m.unattributed_flow(u);
                        }
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

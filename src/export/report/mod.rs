//! The analyst's report (`picket replay --report FILE`): bounded aggregates of the ended flows the
//! consumer thread sees, written at the end of a run as one self-contained HTML page.
//! Never sees a packet and never reads the clock; its memory is bounded by the limits below.
//!
//! The page holds, first, every alert by time; then per-app totals with verdicts (the summary's
//! numbers), a timeline of flows and bytes per app whose buckets are sized from the bulk of the
//! packets (times far outside it listed apart) with the calls drawn under it, the calls, a
//! per-client view of the apps each client used and when, the top clients and servers of each
//! flagged app, and a filterable table of flagged flows (apps with verdict `flag`) by start
//! time. Every table sorts by a click on its headers. Each app has its own colour, derived from
//! its id (the same in every report). Its CSS, script and data are inline: it needs no
//! network to be read. The data is one JSON object in a `<script type="application/json">`
//! element, with every `<`, `>` and `&` written as a `\u` escape so that no text from the
//! capture (a server name, a file name) can close the element; the script puts that text on the
//! page only as text nodes. A Content-Security-Policy admits the page's own script and style
//! (by hash) and nothing else: no other script, no request of any kind.
//!
//! # Files
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Report`]: what is kept of each ended flow, and its data for the page |
//! | `timeline.rs` | flows and bytes per app over time, in widening buckets |
//! | `top.rs` | the top clients and servers per flagged app (Space-Saving) |
//! | `data.rs` | the embedded data's types ([`ReportData`] and its parts), as serialized |
//! | `html.rs` | the page: assets, script-safe data, Content-Security-Policy |
//! | `report.css`, `report.js`, `body.html` | the page's style sheet, script and body |
//!
//! # Limits
//!
//! | what | limit | past it |
//! |---|---|---|
//! | flagged flows listed | [`MAX_ROWS`] | counted; the report says how many were left out |
//! | alerts listed | [`MAX_ALERTS`] | counted; the report says how many were left out |
//! | calls listed | [`MAX_CALLS`] | counted; the report says how many were left out |
//! | clients in the per-client view | [`MAX_CLIENTS`] | flows of further clients counted; the report says how many |
//! | timeline buckets | [`MAX_BUCKETS`] | buckets widen: 1 s, 2 s, 10 s, 30 s, 1 min, 2 min, 10 min, 30 min, 1 h, 2 h, 6 h, 12 h, 1 day, then doubling |
//! | runs of packet times (bulk and outliers) | [`MAX_ISLANDS`] | the two closest merge |
//! | clients and servers tracked per flagged app | [`TOP_TRACKED`] each | Space-Saving: the least counted address gives up its counter, and the counts shown say by how much they may be over |
//! | server name kept | [`MAX_NAME_BYTES`] bytes | cut on a character boundary, ending with `…` |
//!
//! At the defaults the aggregates take at most about 7 MB for the listed flows (typically 2 MB),
//! 6 MB for the alerts (names at their longest; typically 1 MB), 1 MB for the calls, 100 bytes
//! plus 56 per app for each client of the per-client view, and 200 KB per flagged app for its
//! top lists, whatever the size of the input.
//!
//! # Embedded data
//!
//! | field | meaning |
//! |---|---|
//! | `picket` | version that wrote the report |
//! | `sensor` | `--sensor-name`, when given |
//! | `files` | the input files, in order |
//! | `first_packet`, `last_packet` | first and last packet time of any flow (absent without flows) |
//! | `summary` | the `--format json` summary, without `workers` and `elapsed_secs` |
//! | `alerts`, `alerts_left_out` | alerts by time, as the `alert` events have them: `ts`, `flow_id`, `transport`, `src_ip`, `src_port`, `dst_ip`, `dst_port`, `app`, `app_source`, `sni`, `dns_name`, `dns_query`, `cert_name`; and those not listed past `limits.alerts` |
//! | `timeline` | `bucket_secs`, `start` (Unix seconds of the first bucket), `buckets` (count), `series`: per app (`app` null for flows with no app) `flows` started in each bucket and `bytes` in each bucket (a flow's bytes spread evenly over the time it lasted); `outliers`: runs of packet times outside the bulk (`first`, `last`, `packets`, `flows` counted there, `far_ends`: flows counted elsewhere with one packet there, `bytes`, `apps`), and `outlier_packets` |
//! | `calls`, `calls_left_out` | ended calls by start, as the `call` events have them: `call_id`, `app`, `verdict`, `src_ip`, `ts_start`, `ts_end`, `duration_s`, `path`, `media_packets` and `media_bytes` (to server, to client), `flows`; and those not listed past `limits.calls` |
//! | `clients`, `client_flows_left_out` | clients with flows of any app, by first flow: `ip`, `first`, `last`, `flows`, `flagged_flows`, `apps` (`app`, `verdict`, `flows`, `bytes`, `first`, `last`); and flows of clients past `limits.clients` |
//! | `top` | per flagged app: `clients` and `servers`, each `exact` (no address was ever dropped) and `entries` (`ip`, `flows`, `over`: by how much `flows` may be over, `bytes`: counted since the address was tracked, and for servers `name`, the first server name seen) |
//! | `flows` | flagged flows by start time, with the `flow` event's `flow_id`, `ts_start`, `ts_end`, `transport`, `src_ip`, `src_port`, `dst_ip`, `dst_port`, `sni`, `dns_name`, `app`, `app_source`, and `packets`, `bytes` (both ways) |
//! | `flagged_flows`, `flows_left_out` | flagged flows ended, and those not listed past `limits.rows` |
//! | `limits` | `rows`, `alerts`, `calls`, `clients`, `buckets`, `top_tracked`, `top_shown` |

mod data;
mod html;
mod timeline;
mod top;

pub use data::{
    AlertData, CallData, ClientAppData, ClientData, LimitsData, OutlierData, ReportData, RowData,
    SeriesData, TimelineData, TopData, TopEntryData, TopListData,
};
pub use html::script_safe;
pub use timeline::{AXIS_REACH, BULK_PERCENT, MAX_ISLANDS, MIN_GAP};

use crate::capture::Timestamp;
use crate::classify::AppSource;
use crate::decode::{Addr, Transport};
use crate::export::calls::{CallPath, CallView};
use crate::export::events::{flow_id_text, ClientAddrs};
use crate::export::record::FlowRecord;
use crate::export::record::{FlowView, RunReport};
use crate::export::summary::Summary;
use crate::rules::Verdict;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use timeline::Spans;
use top::{TopK, Tops};

/// Flagged flows listed at most; the rest are counted and the report says how many.
pub const MAX_ROWS: usize = 10_000;
/// Alerts listed at most; the rest are counted and the report says how many.
pub const MAX_ALERTS: usize = 5_000;
/// Calls listed at most; the rest are counted and the report says how many.
pub const MAX_CALLS: usize = 5_000;
/// Clients tracked in the per-client view; flows of further clients are counted.
pub const MAX_CLIENTS: usize = 1_000;
/// Timeline buckets at most; the bucket width grows to stay within.
pub const MAX_BUCKETS: usize = 120;
/// Clients, and servers, tracked per flagged app.
pub const TOP_TRACKED: usize = 256;
/// Clients, and servers, shown per flagged app.
pub const TOP_SHOWN: usize = 10;
/// Bytes of a server name kept in the report (names are at most 253 bytes; only hostile or
/// broken ones are cut).
pub const MAX_NAME_BYTES: usize = 255;

const NS: u64 = 1_000_000_000;

/// What the report keeps at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Flagged flows listed.
    pub rows: usize,
    /// Alerts listed.
    pub alerts: usize,
    /// Calls listed.
    pub calls: usize,
    /// Clients tracked in the per-client view.
    pub clients: usize,
    /// Timeline buckets.
    pub buckets: usize,
    /// Clients, and servers, tracked per flagged app.
    pub top_tracked: usize,
    /// Clients, and servers, shown per flagged app.
    pub top_shown: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rows: MAX_ROWS,
            alerts: MAX_ALERTS,
            calls: MAX_CALLS,
            clients: MAX_CLIENTS,
            buckets: MAX_BUCKETS,
            top_tracked: TOP_TRACKED,
            top_shown: TOP_SHOWN,
        }
    }
}

/// Aggregates of ended flows, for the HTML report.
#[derive(Debug)]
pub struct Report {
    limits: Limits,
    sensor: Option<String>,
    timeline: Spans,
    tops: BTreeMap<Arc<str>, Tops>,
    rows: Vec<Row>,
    flagged: u64,
    alerts: Vec<AlertRow>,
    alerts_seen: u64,
    calls: Vec<CallRow>,
    calls_seen: u64,
    clients_seen: BTreeMap<Addr, ClientRow>,
    client_flows_left_out: u64,
    span: Option<(Timestamp, Timestamp)>,
    /// How client addresses and flow ids are shown (as in the events).
    clients: ClientAddrs,
}

impl Report {
    /// Shows client addresses and flow ids as the events do (`--client-addresses`).
    pub fn with_client_addrs(mut self, clients: ClientAddrs) -> Self {
        self.clients = clients;
        self
    }

    /// An empty report with the default limits; `sensor` prefixes flow ids as in the events.
    pub fn new(sensor: Option<String>) -> Self {
        Self::with_limits(sensor, Limits::default())
    }

    /// An empty report with the given limits (each at least 1).
    pub fn with_limits(sensor: Option<String>, limits: Limits) -> Self {
        let limits = Limits {
            buckets: limits.buckets.max(1),
            top_tracked: limits.top_tracked.max(1),
            ..limits
        };
        Report {
            limits,
            sensor,
            timeline: Spans::new(limits.buckets),
            tops: BTreeMap::new(),
            rows: Vec::new(),
            flagged: 0,
            alerts: Vec::new(),
            alerts_seen: 0,
            calls: Vec::new(),
            calls_seen: 0,
            clients_seen: BTreeMap::new(),
            client_flows_left_out: 0,
            span: None,
            clients: ClientAddrs::Keep,
        }
    }

    /// Counts one ended flow.
    pub fn add(&mut self, rec: &FlowRecord) {
        let f = &rec.flow;
        let last = if f.last_ts < f.first_ts {
            f.first_ts
        } else {
            f.last_ts
        };
        self.span = Some(match self.span {
            None => (f.first_ts, last),
            Some((a, b)) => (a.min(f.first_ts), b.max(last)),
        });
        let bytes = f.to_server.bytes + f.to_client.bytes;
        let packets = f.to_server.packets + f.to_client.packets;
        let app = f.app.as_ref();
        self.timeline
            .add(app.map(|a| &a.app), f.first_ts.0, last.0, bytes, packets);
        if let Some(a) = app {
            self.client_app(f.client.0, &a.app, a.verdict, f.first_ts, last, bytes);
        }
        let Some(app) = app.filter(|a| a.verdict == Verdict::Flag) else {
            return;
        };
        self.flagged += 1;
        let sni = f.tls.as_ref().and_then(|t| t.sni());
        let dns = f.dns_name.as_deref();
        let cap = self.limits.top_tracked;
        let tops = self
            .tops
            .entry(Arc::clone(&app.app))
            .or_insert_with(|| Tops {
                clients: TopK::new(cap),
                servers: TopK::new(cap),
            });
        tops.clients.add(f.client.0, bytes, None);
        tops.servers.add(f.server.0, bytes, sni.or(dns));
        if self.rows.len() < self.limits.rows {
            self.rows.push(Row {
                id: f.id,
                first_ts: f.first_ts,
                last_ts: last,
                transport: f.transport,
                client: f.client,
                server: f.server,
                sni: sni.map(cut),
                dns_name: dns.map(cut),
                app: Arc::clone(&app.app),
                source: app.source.as_str(),
                packets: f.to_server.packets + f.to_client.packets,
                bytes,
            });
        }
    }

    /// Counts one flow of `app` in the per-client view.
    fn client_app(
        &mut self,
        client: Addr,
        app: &Arc<str>,
        verdict: Verdict,
        first: Timestamp,
        last: Timestamp,
        bytes: u64,
    ) {
        if !self.clients_seen.contains_key(&client)
            && self.clients_seen.len() >= self.limits.clients
        {
            self.client_flows_left_out += 1;
            return;
        }
        let c = self
            .clients_seen
            .entry(client)
            .or_insert_with(|| ClientRow {
                first,
                last,
                flows: 0,
                flagged: 0,
                apps: Vec::new(),
            });
        c.first = c.first.min(first);
        c.last = c.last.max(last);
        c.flows += 1;
        if verdict == Verdict::Flag {
            c.flagged += 1;
        }
        match c.apps.iter_mut().find(|a| a.app == *app) {
            Some(a) => {
                a.flows += 1;
                a.bytes += bytes;
                a.first = a.first.min(first);
                a.last = a.last.max(last);
            }
            None => c.apps.push(ClientApp {
                app: Arc::clone(app),
                verdict,
                flows: 1,
                bytes,
                first,
                last,
            }),
        }
    }

    /// Lists one alert (the flow as it was at the deciding packet `ts`).
    pub fn alert(&mut self, ts: Timestamp, f: &FlowView) {
        let Some(app) = f.app.as_ref() else {
            return;
        };
        self.alerts_seen += 1;
        if self.alerts.len() >= self.limits.alerts {
            return;
        }
        self.alerts.push(AlertRow {
            ts,
            id: f.id,
            transport: f.transport,
            client: f.client,
            server: f.server,
            app: Arc::clone(&app.app),
            source: app.source,
            sni: f.tls.as_ref().and_then(|t| t.sni()).map(cut),
            dns_name: f.dns_name.as_deref().map(cut),
            dns_query: f.dns_query.as_deref().map(cut),
            cert_name: f.cert_name.as_deref().map(cut),
        });
    }

    /// Lists one ended call.
    pub fn call(&mut self, c: &CallView) {
        self.calls_seen += 1;
        if self.calls.len() >= self.limits.calls {
            return;
        }
        self.calls.push(CallRow {
            id: c.id,
            app: Arc::clone(&c.class.app),
            verdict: c.class.verdict,
            client: c.client,
            first_ts: c.first_ts,
            last_ts: c.last_ts.max(c.first_ts),
            path: c.path,
            media_packets: c.media_packets,
            media_bytes: c.media_bytes,
            flows: c.flows,
        });
    }

    /// Flagged flows counted.
    pub fn flagged_flows(&self) -> u64 {
        self.flagged
    }

    /// The report's data, as embedded in the page (see the module documentation).
    pub fn data<'a>(
        &'a self,
        summary: &'a Summary,
        run: &RunReport,
        files: &'a [String],
    ) -> ReportData<'a> {
        let mut sj = summary.json(run);
        sj.workers = None;
        sj.elapsed_secs = None;
        let order: Vec<&str> = sj.apps.iter().map(|r| r.app).collect();
        let rank = |app: &str| order.iter().position(|a| *a == app).unwrap_or(order.len());
        let mut top: Vec<TopData<'_>> = self
            .tops
            .iter()
            .map(|(app, t)| TopData {
                app,
                clients: t.clients.data(self.limits.top_shown, Some(&self.clients)),
                servers: t.servers.data(self.limits.top_shown, None),
            })
            .collect();
        top.sort_by_key(|t| rank(t.app));
        let sensor = self.sensor.as_deref();
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|r| (r.first_ts, r.last_ts, r.id));
        let mut alerts: Vec<&AlertRow> = self.alerts.iter().collect();
        alerts.sort_by_key(|a| (a.ts, a.id));
        let mut calls: Vec<&CallRow> = self.calls.iter().collect();
        calls.sort_by_key(|c| (c.first_ts, c.last_ts, c.id));
        let mut clients: Vec<(&Addr, &ClientRow)> = self.clients_seen.iter().collect();
        clients.sort_by_key(|(a, c)| (c.first, c.last, **a));
        let flow_id = |id: u64| flow_id_text(sensor, self.clients.flow_id(id));
        ReportData {
            picket: env!("CARGO_PKG_VERSION"),
            sensor,
            files,
            first_packet: self.span.map(|s| s.0.to_string()),
            last_packet: self.span.map(|s| s.1.to_string()),
            summary: sj,
            alerts: alerts
                .into_iter()
                .map(|a| AlertData {
                    ts: a.ts.to_string(),
                    flow_id: flow_id(a.id),
                    transport: a.transport.as_str(),
                    src_ip: self.clients.show(a.client.0.ip()),
                    src_port: a.client.1,
                    dst_ip: a.server.0.ip().to_string(),
                    dst_port: a.server.1,
                    app: &a.app,
                    app_source: a.source.as_str(),
                    sni: a.sni.as_deref(),
                    dns_name: a.dns_name.as_deref(),
                    dns_query: a.dns_query.as_deref(),
                    cert_name: a.cert_name.as_deref(),
                })
                .collect(),
            alerts_left_out: self.alerts_seen - self.alerts.len() as u64,
            timeline: self.timeline.data(&rank),
            top,
            flows: rows
                .into_iter()
                .map(|r| r.data(sensor, &self.clients))
                .collect(),
            flagged_flows: self.flagged,
            flows_left_out: self.flagged - self.rows.len() as u64,
            calls: calls
                .into_iter()
                .map(|c| CallData {
                    call_id: flow_id(c.id),
                    app: &c.app,
                    verdict: c.verdict.as_str(),
                    src_ip: self.clients.show(c.client),
                    ts_start: c.first_ts.to_string(),
                    ts_end: c.last_ts.to_string(),
                    duration_s: (c.last_ts.0 - c.first_ts.0) as f64 / NS as f64,
                    path: c.path.as_str(),
                    media_packets: c.media_packets,
                    media_bytes: c.media_bytes,
                    flows: c.flows,
                })
                .collect(),
            calls_left_out: self.calls_seen - self.calls.len() as u64,
            clients: clients
                .into_iter()
                .map(|(a, c)| ClientData {
                    ip: self.clients.show(a.ip()),
                    first: c.first.to_string(),
                    last: c.last.to_string(),
                    flows: c.flows,
                    flagged_flows: c.flagged,
                    apps: {
                        let mut apps: Vec<&ClientApp> = c.apps.iter().collect();
                        apps.sort_by_key(|x| (x.first, x.last));
                        apps
                    }
                    .into_iter()
                    .map(|x| ClientAppData {
                        app: &x.app,
                        verdict: x.verdict.as_str(),
                        flows: x.flows,
                        bytes: x.bytes,
                        first: x.first.to_string(),
                        last: x.last.to_string(),
                    })
                    .collect(),
                })
                .collect(),
            client_flows_left_out: self.client_flows_left_out,
            limits: LimitsData {
                rows: self.limits.rows,
                alerts: self.limits.alerts,
                calls: self.limits.calls,
                clients: self.limits.clients,
                buckets: self.limits.buckets,
                top_tracked: self.limits.top_tracked,
                top_shown: self.limits.top_shown,
            },
        }
    }
}

/// A name cut to at most [`MAX_NAME_BYTES`] bytes, on a character boundary, marked with `…`.
fn cut(name: &str) -> Box<str> {
    if name.len() <= MAX_NAME_BYTES {
        return name.into();
    }
    let mut end = MAX_NAME_BYTES - '…'.len_utf8();
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &name[..end]).into()
}

/// One flagged flow, as listed.
#[derive(Debug)]
struct Row {
    id: u64,
    first_ts: Timestamp,
    last_ts: Timestamp,
    transport: Transport,
    client: (Addr, u16),
    server: (Addr, u16),
    sni: Option<Box<str>>,
    dns_name: Option<Box<str>>,
    app: Arc<str>,
    source: &'static str,
    packets: u64,
    bytes: u64,
}

/// One alert, as listed.
#[derive(Debug)]
struct AlertRow {
    ts: Timestamp,
    id: u64,
    transport: Transport,
    client: (Addr, u16),
    server: (Addr, u16),
    app: Arc<str>,
    source: AppSource,
    sni: Option<Box<str>>,
    dns_name: Option<Box<str>>,
    dns_query: Option<Box<str>>,
    cert_name: Option<Box<str>>,
}

/// One call, as listed.
#[derive(Debug)]
struct CallRow {
    id: u64,
    app: Arc<str>,
    verdict: Verdict,
    client: IpAddr,
    first_ts: Timestamp,
    last_ts: Timestamp,
    path: CallPath,
    media_packets: [u64; 2],
    media_bytes: [u64; 2],
    flows: u64,
}

/// One client of the per-client view.
#[derive(Debug)]
struct ClientRow {
    first: Timestamp,
    last: Timestamp,
    flows: u64,
    flagged: u64,
    /// At most one per app of the rules (listed by first use).
    apps: Vec<ClientApp>,
}

/// One app of one client.
#[derive(Debug)]
struct ClientApp {
    app: Arc<str>,
    verdict: Verdict,
    flows: u64,
    bytes: u64,
    first: Timestamp,
    last: Timestamp,
}

impl Row {
    fn data(&self, sensor: Option<&str>, clients: &ClientAddrs) -> RowData<'_> {
        RowData {
            flow_id: flow_id_text(sensor, clients.flow_id(self.id)),
            ts_start: self.first_ts.to_string(),
            ts_end: self.last_ts.to_string(),
            transport: self.transport.as_str(),
            src_ip: clients.show(self.client.0.ip()),
            src_port: self.client.1,
            dst_ip: self.server.0.ip().to_string(),
            dst_port: self.server.1,
            sni: self.sni.as_deref(),
            dns_name: self.dns_name.as_deref(),
            app: &self.app,
            app_source: self.source,
            packets: self.packets,
            bytes: self.bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{AppSource, Classification};
    use crate::export::record::{EndReason, FlowView};
    use std::net::IpAddr;

    pub(super) const T0: u64 = 1_714_564_800 * NS;

    fn record(
        client: &str,
        at_s: u64,
        secs: u64,
        bytes: u64,
        app: Option<(&str, Verdict)>,
    ) -> FlowRecord {
        let c: IpAddr = client.parse().unwrap();
        let s: IpAddr = "192.0.2.1".parse().unwrap();
        let mut flow = FlowView::sample(
            (c, 50000),
            (s, 443),
            Timestamp(T0 + at_s * NS),
            Timestamp(T0 + (at_s + secs) * NS),
        );
        flow.to_server.bytes = bytes;
        flow.to_server.packets = 1;
        flow.app = app.map(|(a, v)| {
            Box::new(Classification {
                app: Arc::from(a),
                source: AppSource::Sni,
                rule: Arc::from("x.toml:1"),
                rule_id: Arc::from("x"),
                category: Arc::from("messaging"),
                verdict: v,
                alert: v == Verdict::Flag,
            })
        });
        FlowRecord {
            flow,
            reason: EndReason::Fin,
            at: Timestamp(T0 + (at_s + secs) * NS),
        }
    }

    #[test]
    fn report_lists_flagged_flows_up_to_the_cap_and_counts_the_rest() {
        let limits = Limits {
            rows: 3,
            ..Limits::default()
        };
        let mut r = Report::with_limits(Some("s1".into()), limits);
        for i in 0..5 {
            r.add(&record(
                "10.0.0.1",
                i,
                1,
                100,
                Some(("whatsapp", Verdict::Flag)),
            ));
        }
        r.add(&record(
            "10.0.0.2",
            9,
            1,
            100,
            Some(("telegram", Verdict::Observe)),
        ));
        r.add(&record("10.0.0.3", 9, 1, 100, None));
        let summary = Summary::default();
        let run = RunReport::default();
        let files = vec!["a.pcap".to_string()];
        let d = r.data(&summary, &run, &files);
        assert_eq!(d.flows.len(), 3);
        assert_eq!(d.flagged_flows, 5);
        assert_eq!(d.flows_left_out, 2);
        assert!(d.flows[0].flow_id.starts_with("s1-"));
        assert_eq!(d.top.len(), 1);
        assert_eq!(d.top[0].clients.entries[0].flows, 5);
        assert_eq!(d.timeline.series.len(), 3);
        assert_eq!(d.timeline.series.last().unwrap().app, None);
        assert_eq!(
            d.first_packet.as_deref(),
            Some("2024-05-01T12:00:00.000000Z")
        );
        assert_eq!(
            d.last_packet.as_deref(),
            Some("2024-05-01T12:00:10.000000Z")
        );
    }

    #[test]
    fn report_caps_alerts_calls_and_clients_and_counts_the_rest() {
        let limits = Limits {
            alerts: 2,
            calls: 1,
            clients: 2,
            ..Limits::default()
        };
        let mut r = Report::with_limits(None, limits);
        for i in 0..5u64 {
            let rec = record(
                &format!("10.0.0.{}", i + 1),
                10 - i,
                1,
                100,
                Some(("whatsapp", Verdict::Flag)),
            );
            r.alert(rec.flow.first_ts, &rec.flow);
            r.add(&rec);
            let class = *rec.flow.app.clone().unwrap();
            r.call(&CallView {
                id: i,
                class,
                client: rec.flow.client.0.ip(),
                first_ts: rec.flow.first_ts,
                last_ts: rec.flow.last_ts,
                media_packets: [1, 2],
                media_bytes: [3, 4],
                path: CallPath::Relayed,
                flow_ids: vec![i],
                flows: 1,
            });
        }
        // Client 1 again: still tracked.
        r.add(&record(
            "10.0.0.1",
            20,
            1,
            7,
            Some(("zoom", Verdict::Observe)),
        ));
        let (summary, run) = (Summary::default(), RunReport::default());
        let d = r.data(&summary, &run, &[]);
        assert_eq!((d.alerts.len(), d.alerts_left_out), (2, 3));
        // The first two listed, by time (they came latest first).
        assert!(d.alerts[0].ts < d.alerts[1].ts);
        assert_eq!(d.alerts[1].src_ip, "10.0.0.1");
        assert_eq!((d.calls.len(), d.calls_left_out), (1, 4));
        assert_eq!(d.calls[0].duration_s, 1.0);
        assert_eq!((d.clients.len(), d.client_flows_left_out), (2, 3));
        let c1 = d.clients.iter().find(|c| c.ip == "10.0.0.1").unwrap();
        assert_eq!((c1.flows, c1.flagged_flows, c1.apps.len()), (2, 1, 2));
        assert_eq!(c1.apps[1].app, "zoom");
        assert_eq!(c1.last, "2024-05-01T12:00:21.000000Z");
    }

    #[test]
    fn listed_flows_stay_within_the_documented_memory() {
        // The module documentation promises about 7 MB for MAX_ROWS rows with both names at
        // their longest.
        let per_row = std::mem::size_of::<Row>() + 2 * MAX_NAME_BYTES;
        assert!(per_row * MAX_ROWS <= 7_500_000, "{per_row} bytes a row");
        // 6 MB for the alerts, 1 MB for the calls, 100 + 56 per app for a client.
        let per_alert = std::mem::size_of::<AlertRow>() + 4 * MAX_NAME_BYTES;
        assert!(
            per_alert * MAX_ALERTS <= 6_000_000,
            "{per_alert} bytes an alert"
        );
        assert!(std::mem::size_of::<CallRow>() * MAX_CALLS <= 1_000_000);
        // A BTreeMap entry holds the key and value plus about a pointer's worth of node.
        let per_client = std::mem::size_of::<(Addr, ClientRow)>() + 16;
        assert!(per_client <= 100, "{per_client} bytes a client");
        assert!(std::mem::size_of::<ClientApp>() <= 56);
    }

    #[test]
    fn cut_long_names_on_a_char_boundary() {
        let long = "é".repeat(300);
        let c = cut(&long);
        assert!(c.len() <= MAX_NAME_BYTES);
        assert!(c.ends_with("é…"));
        let exact = "a".repeat(MAX_NAME_BYTES);
        assert_eq!(&*cut(&exact), exact);
        assert_eq!(&*cut("zoom.us"), "zoom.us");
    }
}

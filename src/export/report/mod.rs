//! The analyst's report (`picket replay --report FILE`): bounded aggregates of the ended flows the
//! consumer thread sees, written at the end of a run as one self-contained HTML page.
//! Never sees a packet and never reads the clock; its memory is bounded by the limits below.
//!
//! The page holds per-app totals with verdicts (the summary's numbers), a timeline of flows and
//! bytes per app, the top clients and servers of each flagged app, and a filterable table of
//! flagged flows (apps with verdict `flag`). Its CSS, script and data are inline: it needs no
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
//! | timeline buckets | [`MAX_BUCKETS`] | buckets widen: 1 s, 2 s, 10 s, 30 s, 1 min, 2 min, 10 min, 30 min, 1 h, 2 h, 6 h, 12 h, 1 day, then doubling |
//! | clients and servers tracked per flagged app | [`TOP_TRACKED`] each | Space-Saving: the least counted address gives up its counter, and the counts shown say by how much they may be over |
//! | server name kept | [`MAX_NAME_BYTES`] bytes | cut on a character boundary, ending with `…` |
//!
//! At the defaults the aggregates take at most about 7 MB for the listed flows (typically 2 MB)
//! and 200 KB per flagged app for its top lists, whatever the size of the input.
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
//! | `timeline` | `bucket_secs`, `start` (Unix seconds of the first bucket), `buckets` (count), `series`: per app (`app` null for flows with no app) `flows` started in each bucket and `bytes` in each bucket (a flow's bytes spread evenly over the time it lasted) |
//! | `top` | per flagged app: `clients` and `servers`, each `exact` (no address was ever dropped) and `entries` (`ip`, `flows`, `over`: by how much `flows` may be over, `bytes`: counted since the address was tracked, and for servers `name`, the first server name seen) |
//! | `flows` | flagged flows in the order they ended, with the `flow` event's `flow_id`, `ts_start`, `ts_end`, `transport`, `src_ip`, `src_port`, `dst_ip`, `dst_port`, `sni`, `dns_name`, `app`, `app_source`, and `packets`, `bytes` (both ways) |
//! | `flagged_flows`, `flows_left_out` | flagged flows ended, and those not listed past `limits.rows` |
//! | `limits` | `rows`, `buckets`, `top_tracked`, `top_shown` |

mod data;
mod html;
mod timeline;
mod top;

pub use data::{
    LimitsData, ReportData, RowData, SeriesData, TimelineData, TopData, TopEntryData, TopListData,
};
pub use html::script_safe;

use crate::capture::Timestamp;
use crate::decode::{Addr, Transport};
use crate::export::events::{flow_id_text, ClientAddrs};
use crate::export::record::FlowRecord;
use crate::export::record::RunReport;
use crate::export::summary::Summary;
use crate::rules::Verdict;
use std::collections::BTreeMap;
use std::sync::Arc;
use timeline::Timeline;
use top::{TopK, Tops};

/// Flagged flows listed at most; the rest are counted and the report says how many.
pub const MAX_ROWS: usize = 10_000;
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
    timeline: Timeline,
    tops: BTreeMap<Arc<str>, Tops>,
    rows: Vec<Row>,
    flagged: u64,
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
            rows: limits.rows,
            buckets: limits.buckets.max(1),
            top_tracked: limits.top_tracked.max(1),
            top_shown: limits.top_shown,
        };
        Report {
            limits,
            sensor,
            timeline: Timeline::new(limits.buckets),
            tops: BTreeMap::new(),
            rows: Vec::new(),
            flagged: 0,
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
        let app = f.app.as_ref();
        self.timeline
            .add(app.map(|a| &a.app), f.first_ts.0, last.0, bytes);
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
        ReportData {
            picket: env!("CARGO_PKG_VERSION"),
            sensor,
            files,
            first_packet: self.span.map(|s| s.0.to_string()),
            last_packet: self.span.map(|s| s.1.to_string()),
            summary: sj,
            timeline: self.timeline.data(&rank),
            top,
            flows: self
                .rows
                .iter()
                .map(|r| r.data(sensor, &self.clients))
                .collect(),
            flagged_flows: self.flagged,
            flows_left_out: self.flagged - self.rows.len() as u64,
            limits: LimitsData {
                rows: self.limits.rows,
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
    fn listed_flows_stay_within_the_documented_memory() {
        // The module documentation promises about 7 MB for MAX_ROWS rows with both names at
        // their longest.
        let per_row = std::mem::size_of::<Row>() + 2 * MAX_NAME_BYTES;
        assert!(per_row * MAX_ROWS <= 7_500_000, "{per_row} bytes a row");
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

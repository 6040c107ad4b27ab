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

use crate::capture::Timestamp;
use crate::decode::{Addr, Transport};
use crate::export::events::{flow_id_text, ClientAddrs};
use crate::export::record::FlowRecord;
use crate::export::record::RunReport;
use crate::export::summary::{Summary, SummaryJson};
use crate::rules::Verdict;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::sync::Arc;

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

/// Bucket widths in seconds, each a multiple of the one before (so buckets merge exactly); past
/// the last, widths double.
const WIDTHS: [u64; 13] = [
    1, 2, 10, 30, 60, 120, 600, 1800, 3600, 7200, 21_600, 43_200, 86_400,
];

/// The page's style sheet.
const STYLE: &str = include_str!("report/report.css");
/// The page's script.
const SCRIPT: &str = include_str!("report/report.js");
/// The page's body, before the data and the script.
const BODY: &str = include_str!("report/body.html");

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

    /// Writes the page: the summary's totals, this report's aggregates, the input `files` named.
    pub fn write_html<W: Write>(
        &self,
        mut out: W,
        summary: &Summary,
        run: &RunReport,
        files: &[String],
    ) -> io::Result<()> {
        let json =
            serde_json::to_string(&self.data(summary, run, files)).map_err(io::Error::other)?;
        write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
             <title>Picket report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{BODY}\
             <script type=\"application/json\" id=\"picket-data\">{data}</script>\n\
             <script>{SCRIPT}</script>\n</body>\n</html>\n",
            csp = content_security_policy(),
            data = script_safe(&json),
        )?;
        out.flush()
    }
}

/// The page's policy: its own script and style sheet, by hash; nothing else, no requests.
fn content_security_policy() -> String {
    format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
         base-uri 'none'; form-action 'none'",
        sha256_base64(SCRIPT),
        sha256_base64(STYLE)
    )
}

fn sha256_base64(text: &str) -> String {
    use sha2::{Digest, Sha256};
    base64(&Sha256::digest(text.as_bytes()))
}

/// Standard base64 with padding (RFC 4648 §4), for the policy's hashes.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// JSON text made safe inside a `<script>` element: `<`, `>` and `&` (which JSON allows only
/// inside strings) become `\u` escapes, so no `</script>` or `<!--` can appear; so do U+2028 and
/// U+2029.
pub fn script_safe(json: &str) -> String {
    let mut s = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => s.push_str("\\u003c"),
            '>' => s.push_str("\\u003e"),
            '&' => s.push_str("\\u0026"),
            '\u{2028}' => s.push_str("\\u2028"),
            '\u{2029}' => s.push_str("\\u2029"),
            c => s.push(c),
        }
    }
    s
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

/// The flow-count and byte timeline per app, in at most `max` buckets of one width.
#[derive(Debug)]
struct Timeline {
    max: usize,
    step: usize,
    width: u64,
    series: Vec<Option<Arc<str>>>,
    /// Bucket number (start time / width) → counts per series.
    buckets: BTreeMap<u64, Vec<Cell>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Cell {
    flows: u64,
    bytes: u64,
}

/// Bucket width of a step, in nanoseconds.
fn width_at(step: usize) -> u64 {
    match WIDTHS.get(step) {
        Some(s) => s * NS,
        None => {
            let doublings = (step - WIDTHS.len() + 1).min(63) as u32;
            (86_400 * NS).saturating_mul(1u64 << doublings)
        }
    }
}

impl Timeline {
    fn new(max: usize) -> Self {
        Timeline {
            max,
            step: 0,
            width: width_at(0),
            series: Vec::new(),
            buckets: BTreeMap::new(),
        }
    }

    /// Counts a flow that lasted from `a` to `b` (nanoseconds, `a <= b`): one flow in the bucket
    /// where it started, its bytes spread over the buckets it lasted in, by time.
    fn add(&mut self, app: Option<&Arc<str>>, a: u64, b: u64, bytes: u64) {
        let slot = match self.series.iter().position(|s| s.as_ref() == app) {
            Some(i) => i,
            None => {
                self.series.push(app.cloned());
                self.series.len() - 1
            }
        };
        // The widest width (saturated) puts every time in one of two buckets: stop there.
        while self.span_with(a / self.width, b / self.width) > self.max as u64
            && self.width < u64::MAX
        {
            self.coarsen();
        }
        let w = self.width;
        let (ka, kb) = (a / w, b / w);
        self.cell(ka, slot).flows += 1;
        if ka == kb {
            self.cell(ka, slot).bytes += bytes;
            return;
        }
        let d = u128::from(b - a);
        let (mut done, mut given) = (0u128, 0u64);
        for k in ka..=kb {
            let end = if k == kb { b } else { (k + 1) * w };
            done += u128::from(end - a.max(k * w));
            let upto = (u128::from(bytes) * done / d) as u64;
            self.cell(k, slot).bytes += upto - given;
            given = upto;
        }
    }

    /// Buckets from the first to the last, counting those `ka` and `kb` would add.
    fn span_with(&self, ka: u64, kb: u64) -> u64 {
        let lo = self.buckets.keys().next().map_or(ka, |&k| k.min(ka));
        let hi = self.buckets.keys().next_back().map_or(kb, |&k| k.max(kb));
        hi - lo + 1
    }

    /// Moves to the next width, merging buckets.
    fn coarsen(&mut self) {
        self.step += 1;
        let width = width_at(self.step);
        let old = std::mem::take(&mut self.buckets);
        for (k, cells) in old {
            // Widths are multiples of each other, so a bucket falls into exactly one new one.
            let nk = (u128::from(k) * u128::from(self.width) / u128::from(width)) as u64;
            let merged = self.buckets.entry(nk).or_default();
            if merged.len() < cells.len() {
                merged.resize(cells.len(), Cell::default());
            }
            for (m, c) in merged.iter_mut().zip(cells) {
                m.flows += c.flows;
                m.bytes += c.bytes;
            }
        }
        self.width = width;
    }

    fn cell(&mut self, k: u64, slot: usize) -> &mut Cell {
        let cells = self.buckets.entry(k).or_default();
        if cells.len() <= slot {
            cells.resize(slot + 1, Cell::default());
        }
        &mut cells[slot]
    }

    fn data(&self, rank: &dyn Fn(&str) -> usize) -> TimelineData<'_> {
        let lo = self.buckets.keys().next().copied().unwrap_or(0);
        let n = self
            .buckets
            .keys()
            .next_back()
            .map_or(0, |&hi| (hi - lo + 1) as usize);
        let mut order: Vec<usize> = (0..self.series.len()).collect();
        // Apps in the summary's order, flows with no app last.
        order.sort_by_key(|&i| self.series[i].as_deref().map_or(usize::MAX, rank));
        let series = order
            .into_iter()
            .map(|i| {
                let mut flows = vec![0; n];
                let mut bytes = vec![0; n];
                for (k, cells) in &self.buckets {
                    if let Some(c) = cells.get(i) {
                        flows[(k - lo) as usize] = c.flows;
                        bytes[(k - lo) as usize] = c.bytes;
                    }
                }
                SeriesData {
                    app: self.series[i].as_deref(),
                    flows,
                    bytes,
                }
            })
            .collect();
        TimelineData {
            bucket_secs: self.width / NS,
            start: u128::from(lo) * u128::from(self.width / NS),
            buckets: n,
            series,
        }
    }
}

/// The top clients and servers of one flagged app.
#[derive(Debug)]
struct Tops {
    clients: TopK,
    servers: TopK,
}

/// The most frequent addresses in bounded memory (Metwally, Agrawal and El Abbadi's
/// Space-Saving): up to `cap` counters; a new address past it takes over the least counted one,
/// starting from its count, and records that count as how much it may be over.
#[derive(Debug)]
struct TopK {
    cap: usize,
    counters: Vec<Counter>,
    index: HashMap<Addr, usize>,
    replaced: u64,
}

#[derive(Debug)]
struct Counter {
    addr: Addr,
    flows: u64,
    over: u64,
    bytes: u64,
    name: Option<Box<str>>,
}

impl TopK {
    fn new(cap: usize) -> Self {
        TopK {
            cap,
            counters: Vec::new(),
            index: HashMap::new(),
            replaced: 0,
        }
    }

    fn add(&mut self, addr: Addr, bytes: u64, name: Option<&str>) {
        if let Some(&i) = self.index.get(&addr) {
            let c = &mut self.counters[i];
            c.flows += 1;
            c.bytes += bytes;
            if c.name.is_none() {
                c.name = name.map(cut);
            }
            return;
        }
        let fresh = |flows: u64| Counter {
            addr,
            flows: flows + 1,
            over: flows,
            bytes,
            name: name.map(cut),
        };
        if self.counters.len() < self.cap {
            self.index.insert(addr, self.counters.len());
            self.counters.push(fresh(0));
            return;
        }
        // The least counted; the first of equals, so the result does not depend on hashing.
        let Some((i, min)) = self
            .counters
            .iter()
            .enumerate()
            .min_by_key(|(i, c)| (c.flows, *i))
            .map(|(i, c)| (i, c.flows))
        else {
            return;
        };
        self.index.remove(&self.counters[i].addr);
        self.index.insert(addr, i);
        self.counters[i] = fresh(min);
        self.replaced += 1;
    }

    /// The top `n`; `clients` shows the addresses as the events do (None: as captured).
    fn data(&self, n: usize, clients: Option<&ClientAddrs>) -> TopListData<'_> {
        let mut v: Vec<&Counter> = self.counters.iter().collect();
        v.sort_by(|a, b| {
            (
                std::cmp::Reverse(a.flows),
                std::cmp::Reverse(a.bytes),
                a.addr,
            )
                .cmp(&(
                    std::cmp::Reverse(b.flows),
                    std::cmp::Reverse(b.bytes),
                    b.addr,
                ))
        });
        TopListData {
            exact: self.replaced == 0,
            entries: v
                .into_iter()
                .take(n)
                .map(|c| TopEntryData {
                    ip: clients.map_or_else(|| c.addr.ip().to_string(), |k| k.show(c.addr.ip())),
                    flows: c.flows,
                    over: c.over,
                    bytes: c.bytes,
                    name: c.name.as_deref(),
                })
                .collect(),
        }
    }
}

/// The data embedded in the page.
#[derive(Debug, Serialize)]
pub struct ReportData<'a> {
    /// Version of Picket.
    pub picket: &'static str,
    /// Sensor name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensor: Option<&'a str>,
    /// Input files.
    pub files: &'a [String],
    /// First packet time of any flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_packet: Option<String>,
    /// Last packet time of any flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_packet: Option<String>,
    /// The JSON summary (without worker count and wall time).
    pub summary: SummaryJson<'a>,
    /// Flows and bytes per app over time.
    pub timeline: TimelineData<'a>,
    /// Top clients and servers per flagged app.
    pub top: Vec<TopData<'a>>,
    /// Flagged flows, at most `limits.rows`.
    pub flows: Vec<RowData<'a>>,
    /// Flagged flows counted.
    pub flagged_flows: u64,
    /// Flagged flows not listed.
    pub flows_left_out: u64,
    /// The limits in force.
    pub limits: LimitsData,
}

/// The timeline's data.
#[derive(Debug, Serialize)]
pub struct TimelineData<'a> {
    /// Bucket width in seconds.
    pub bucket_secs: u64,
    /// Unix time of the first bucket, in seconds.
    pub start: u128,
    /// Bucket count.
    pub buckets: usize,
    /// One series per app (and one for flows with no app).
    pub series: Vec<SeriesData<'a>>,
}

/// One app's counts per bucket.
#[derive(Debug, Serialize)]
pub struct SeriesData<'a> {
    /// The app (none: flows no rule claimed).
    pub app: Option<&'a str>,
    /// Flows started in each bucket.
    pub flows: Vec<u64>,
    /// Bytes in each bucket.
    pub bytes: Vec<u64>,
}

/// Top clients and servers of one flagged app.
#[derive(Debug, Serialize)]
pub struct TopData<'a> {
    /// The app.
    pub app: &'a str,
    /// By client address.
    pub clients: TopListData<'a>,
    /// By server address.
    pub servers: TopListData<'a>,
}

/// One top list.
#[derive(Debug, Serialize)]
pub struct TopListData<'a> {
    /// No address was dropped: the counts are exact.
    pub exact: bool,
    /// Most flows first.
    pub entries: Vec<TopEntryData<'a>>,
}

/// One address of a top list.
#[derive(Debug, Serialize)]
pub struct TopEntryData<'a> {
    /// The address.
    pub ip: String,
    /// Flows counted (over by at most `over`).
    pub flows: u64,
    /// By how much `flows` may be over.
    pub over: u64,
    /// Bytes of the flows counted since the address was tracked.
    pub bytes: u64,
    /// The first server name seen (servers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
}

/// One listed flagged flow.
#[derive(Debug, Serialize)]
pub struct RowData<'a> {
    /// As in the events.
    pub flow_id: String,
    /// First packet time.
    pub ts_start: String,
    /// Last packet time.
    pub ts_end: String,
    /// `tcp` or `udp`.
    pub transport: &'static str,
    /// Client address.
    pub src_ip: String,
    /// Client port.
    pub src_port: u16,
    /// Server address.
    pub dst_ip: String,
    /// Server port.
    pub dst_port: u16,
    /// TLS server name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<&'a str>,
    /// The DNS name behind a `dns_answer` classification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<&'a str>,
    /// App id.
    pub app: &'a str,
    /// The signal that decided the app.
    pub app_source: &'static str,
    /// Packets both ways.
    pub packets: u64,
    /// Frame bytes both ways.
    pub bytes: u64,
}

/// The limits, as embedded.
#[derive(Debug, Serialize)]
pub struct LimitsData {
    /// Flagged flows listed at most.
    pub rows: usize,
    /// Timeline buckets at most.
    pub buckets: usize,
    /// Addresses tracked per top list.
    pub top_tracked: usize,
    /// Addresses shown per top list.
    pub top_shown: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{AppSource, Classification};
    use crate::export::record::{EndReason, FlowView};
    use std::net::IpAddr;

    const T0: u64 = 1_714_564_800 * NS;

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
        flow.app = app.map(|(a, v)| Classification {
            app: Arc::from(a),
            source: AppSource::Sni,
            rule: Arc::from("x.toml:1"),
            verdict: v,
            alert: v == Verdict::Flag,
        });
        FlowRecord {
            flow,
            reason: EndReason::Fin,
            at: Timestamp(T0 + (at_s + secs) * NS),
        }
    }

    fn sums(t: &Timeline) -> (u64, u64) {
        t.buckets
            .values()
            .flatten()
            .fold((0, 0), |(f, b), c| (f + c.flows, b + c.bytes))
    }

    #[test]
    fn timeline_spreads_bytes_by_time_and_keeps_totals() {
        let mut t = Timeline::new(200);
        t.add(None, 0, 4 * NS, 1000);
        assert_eq!(t.width, NS);
        let b: Vec<u64> = t.buckets.values().map(|c| c[0].bytes).collect();
        assert_eq!(b, [250, 250, 250, 250, 0]);
        assert_eq!(sums(&t), (1, 1000));
        t.add(None, NS / 2, NS / 2 + 3, 7);
        assert_eq!(sums(&t), (2, 1007));
    }

    #[test]
    fn timeline_widens_to_stay_within_max_buckets() {
        let mut t = Timeline::new(10);
        let app: Arc<str> = Arc::from("zoom");
        let mut total = 0;
        for i in 0..1000u64 {
            t.add(Some(&app), T0 + i * 37 * NS, T0 + i * 37 * NS + 90 * NS, i);
            total += i;
            assert!(t.buckets.len() <= 10);
            let lo = t.buckets.keys().next().unwrap();
            let hi = t.buckets.keys().next_back().unwrap();
            assert!(hi - lo < 10);
        }
        assert_eq!(sums(&t), (1000, total));
        // 37,053 s need 11 one-hour buckets: two-hour ones.
        assert_eq!(t.width, 7200 * NS);
        // An earlier flow arriving late still fits.
        t.add(Some(&app), T0 - 5000 * NS, T0, 1);
        assert_eq!(sums(&t), (1001, total + 1));
        assert!(t.buckets.len() <= 10);
    }

    #[test]
    fn timeline_survives_absurd_time_spans() {
        let mut t = Timeline::new(3);
        t.add(None, 0, 0, 1);
        t.add(None, u64::MAX - 1, u64::MAX, 1);
        assert!(t.buckets.len() <= 3);
        assert_eq!(sums(&t), (2, 2));
    }

    fn addr(i: u32) -> Addr {
        Addr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn top_k_is_exact_within_capacity() {
        let mut k = TopK::new(4);
        for (i, n) in [(1, 5), (2, 3), (3, 9), (4, 1)] {
            for _ in 0..n {
                k.add(addr(i), 10, None);
            }
        }
        let d = k.data(3, None);
        assert!(d.exact);
        let got: Vec<(String, u64, u64)> = d
            .entries
            .iter()
            .map(|e| (e.ip.clone(), e.flows, e.bytes))
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.3".into(), 9, 90),
                ("10.0.0.1".into(), 5, 50),
                ("10.0.0.2".into(), 3, 30)
            ]
        );
    }

    #[test]
    fn top_k_keeps_heavy_hitters_in_bounded_memory() {
        let mut k = TopK::new(8);
        for i in 0..10_000u32 {
            // Two heavy addresses among a stream of ones seen once.
            k.add(addr(1_000_000 + i), 1, None);
            if i % 3 == 0 {
                k.add(addr(1), 1, None);
            }
            if i % 5 == 0 {
                k.add(addr(2), 1, None);
            }
        }
        assert_eq!(k.counters.len(), 8);
        assert_eq!(k.index.len(), 8);
        let d = k.data(2, None);
        assert!(!d.exact);
        assert_eq!(d.entries[0].ip, "10.0.0.1");
        assert_eq!(d.entries[1].ip, "10.0.0.2");
        // Never under, over by at most `over`.
        assert!(d.entries[0].flows >= 3334 && d.entries[0].flows - d.entries[0].over <= 3334);
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
    fn script_safe_leaves_no_tag_in_the_data() {
        let hostile = "</script><script>alert(1)</script><!-- & \u{2028}";
        let json = serde_json::to_string(&hostile).unwrap();
        let safe = script_safe(&json);
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        assert_eq!(serde_json::from_str::<String>(&safe).unwrap(), hostile);
    }

    #[test]
    fn page_assets_cannot_close_their_elements() {
        assert!(!SCRIPT.to_ascii_lowercase().contains("</script"));
        assert!(!STYLE.to_ascii_lowercase().contains("</style"));
        assert!(!BODY.to_ascii_lowercase().contains("<script"));
    }

    #[test]
    fn page_script_never_parses_text_as_markup() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "Function(",
        ] {
            assert!(!SCRIPT.contains(sink), "{sink} in report.js");
        }
    }

    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
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

//! The data embedded in the page, as serialized: one type per JSON object, documented field by
//! field (the module documentation of [`super`] has the table). Borrowed views; no logic.

use crate::export::summary::SummaryJson;
use serde::Serialize;

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
    /// Alerts, by time, at most `limits.alerts`.
    pub alerts: Vec<AlertData<'a>>,
    /// Alerts not listed.
    pub alerts_left_out: u64,
    /// Flows and bytes per app over time.
    pub timeline: TimelineData,
    /// Top clients and servers per flagged app.
    pub top: Vec<TopData<'a>>,
    /// Flagged flows, at most `limits.rows`.
    pub flows: Vec<RowData<'a>>,
    /// Flagged flows counted.
    pub flagged_flows: u64,
    /// Flagged flows not listed.
    pub flows_left_out: u64,
    /// Calls that ended, by start, at most `limits.calls`.
    pub calls: Vec<CallData<'a>>,
    /// Calls not listed.
    pub calls_left_out: u64,
    /// Clients of any app, by first flow, at most `limits.clients`.
    pub clients: Vec<ClientData<'a>>,
    /// Flows with an app of clients not tracked (past `limits.clients`).
    pub client_flows_left_out: u64,
    /// The limits in force.
    pub limits: LimitsData,
}

/// The timeline's data.
#[derive(Debug, Serialize)]
pub struct TimelineData {
    /// Bucket width in seconds.
    pub bucket_secs: u64,
    /// Unix time of the first bucket, in seconds.
    pub start: u128,
    /// Bucket count.
    pub buckets: usize,
    /// One series per app (and one for flows with no app).
    pub series: Vec<SeriesData>,
    /// Runs of packet times far outside the bulk, listed apart (not on the axis).
    pub outliers: Vec<OutlierData>,
    /// Packets in the outliers.
    pub outlier_packets: u64,
}

/// One app's counts per bucket.
#[derive(Debug, Serialize)]
pub struct SeriesData {
    /// The app (none: flows no rule claimed).
    pub app: Option<String>,
    /// Flows started in each bucket.
    pub flows: Vec<u64>,
    /// Bytes in each bucket.
    pub bytes: Vec<u64>,
}

/// A run of packet times far outside the bulk.
#[derive(Debug, Serialize)]
pub struct OutlierData {
    /// Its first packet time.
    pub first: String,
    /// Its last packet time.
    pub last: String,
    /// Packets in it.
    pub packets: u64,
    /// Flows counted in it.
    pub flows: u64,
    /// Flows counted elsewhere of which one packet (the first or the last) fell here.
    pub far_ends: u64,
    /// Bytes of the flows counted in it.
    pub bytes: u64,
    /// The apps of those flows (null: no app).
    pub apps: Vec<Option<String>>,
}

/// One alert, as the `alert` event has it.
#[derive(Debug, Serialize)]
pub struct AlertData<'a> {
    /// The deciding packet's time.
    pub ts: String,
    /// The flow's id.
    pub flow_id: String,
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
    /// App id.
    pub app: &'a str,
    /// The signal that decided the app.
    pub app_source: &'static str,
    /// TLS server name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<&'a str>,
    /// The DNS name behind a `dns_answer` classification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<&'a str>,
    /// A DNS flow's question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_query: Option<&'a str>,
    /// The server's certificate name, when no ClientHello spoke.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_name: Option<&'a str>,
}

/// One call, as the `call` event has it.
#[derive(Debug, Serialize)]
pub struct CallData<'a> {
    /// The call's id (its first flow's id).
    pub call_id: String,
    /// App id.
    pub app: &'a str,
    /// The app's verdict.
    pub verdict: &'static str,
    /// Client address.
    pub src_ip: String,
    /// First media packet.
    pub ts_start: String,
    /// Last media packet.
    pub ts_end: String,
    /// Seconds between them.
    pub duration_s: f64,
    /// `relayed`, `direct` or `server`.
    pub path: &'static str,
    /// Media packets client to server, and back.
    pub media_packets: [u64; 2],
    /// Media bytes client to server, and back.
    pub media_bytes: [u64; 2],
    /// Flows grouped.
    pub flows: u64,
}

/// One client and the apps it used.
#[derive(Debug, Serialize)]
pub struct ClientData<'a> {
    /// Client address (as the events show it).
    pub ip: String,
    /// Its first flow's first packet (of any app).
    pub first: String,
    /// Its last flow's last packet.
    pub last: String,
    /// Its flows with an app.
    pub flows: u64,
    /// Its flows of flagged apps.
    pub flagged_flows: u64,
    /// Per app, in the order first used.
    pub apps: Vec<ClientAppData<'a>>,
}

/// One app of one client.
#[derive(Debug, Serialize)]
pub struct ClientAppData<'a> {
    /// App id.
    pub app: &'a str,
    /// The app's verdict.
    pub verdict: &'static str,
    /// Flows.
    pub flows: u64,
    /// Bytes both ways.
    pub bytes: u64,
    /// First packet.
    pub first: String,
    /// Last packet.
    pub last: String,
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
    /// Alerts listed at most.
    pub alerts: usize,
    /// Calls listed at most.
    pub calls: usize,
    /// Clients tracked at most.
    pub clients: usize,
    /// Timeline buckets at most.
    pub buckets: usize,
    /// Addresses tracked per top list.
    pub top_tracked: usize,
    /// Addresses shown per top list.
    pub top_shown: usize,
}

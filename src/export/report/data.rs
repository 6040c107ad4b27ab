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

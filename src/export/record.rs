//! The record boundary: what the workers hand to export, owned and finished. Export reads these
//! and nothing else of a worker; a worker builds them from its flow table and lets go.
//!
//! A [`FlowView`] is a flow's state at one moment (an alert, an update, its end), with the
//! endpoints already oriented client → server. [`Record`]s travel to the consumer in a
//! [`RecordBatch`] per worker, with the worker's progress in packet time (its watermark).

use crate::capture::Timestamp;
use crate::classify::{Classification, Explanation, Unattributed};
use crate::decode::{Addr, DecodeStats, Segment, Skip, Transport, MAX_VLANS};
use crate::macros::counter_enum;
use crate::proto::tls::TlsSummary;
use crate::rules::Verdict;
use std::sync::Arc;
use std::time::Duration;

/// Counters of one direction of a flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirStats {
    /// Packets.
    pub packets: u64,
    /// Frame bytes on the wire.
    pub bytes: u64,
    /// Transport payload bytes captured.
    pub payload: u64,
    /// TCP flags seen (OR of all packets).
    pub flags: u8,
}

/// What of a UDP flow's packets was call signalling: STUN/TURN messages (also inside TURN
/// ChannelData, as ICE checks through a relay are), and the datagrams relayed as ChannelData.
/// The rest of a call flow's packets are its media.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// STUN messages, client to server and server to client (ICE's consent checks every few
    /// seconds fit a long call; the count stops at the maximum).
    pub stun_packets: [u16; 2],
    /// Their bytes on the wire, the same way.
    pub stun_bytes: [u32; 2],
    /// Datagrams that were TURN ChannelData (either way).
    pub channel_packets: u32,
}

impl CallCounts {
    /// Counts one UDP datagram of `wire_len` bytes with `payload`, sent `to_server` or not.
    /// A few byte compares: cheap enough for every datagram.
    pub fn count(&mut self, payload: &[u8], wire_len: u32, to_server: bool) {
        let inner = match crate::proto::stun::channel_data(payload) {
            Some(c) => {
                self.channel_packets = self.channel_packets.saturating_add(1);
                c.data
            }
            None => payload,
        };
        if inner.len() >= 20 && crate::proto::stun::has_cookie(inner) {
            let d = usize::from(!to_server);
            self.stun_packets[d] = self.stun_packets[d].saturating_add(1);
            self.stun_bytes[d] = self.stun_bytes[d].saturating_add(wire_len);
        }
    }

    /// Swaps the two directions' counts (a flow turned around).
    pub fn swap_sides(&mut self) {
        self.stun_packets.swap(0, 1);
        self.stun_bytes.swap(0, 1);
    }
}

/// VLAN ids of a flow, outermost first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Vlans {
    ids: [u16; MAX_VLANS],
    n: u8,
}

impl Vlans {
    /// The first `n` of `ids`.
    pub fn new(ids: [u16; MAX_VLANS], n: u8) -> Self {
        Vlans {
            ids,
            n: n.min(MAX_VLANS as u8),
        }
    }

    /// The ids as a slice (empty when untagged).
    pub fn ids(&self) -> &[u16] {
        &self.ids[..usize::from(self.n)]
    }
}

/// A flow as export sees it at one moment: identity, counters, what its handshake said and
/// what it was classified as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowView {
    /// The flow's id: the same in every record of the flow, and for the same packets at any
    /// worker count.
    pub id: u64,
    /// TCP or UDP.
    pub transport: Transport,
    /// The client endpoint.
    pub client: (Addr, u16),
    /// The server endpoint.
    pub server: (Addr, u16),
    /// VLAN ids.
    pub vlans: Vlans,
    /// The tunnel segment the flow came in ([`Segment::NONE`] outside such tunnels).
    pub segment: Segment,
    /// First packet time.
    pub first_ts: Timestamp,
    /// Last packet time.
    pub last_ts: Timestamp,
    /// Client to server.
    pub to_server: DirStats,
    /// Server to client.
    pub to_client: DirStats,
    /// TCP: the client's SYN was seen.
    pub syn_seen: bool,
    /// What the ClientHello said (boxed: records move often, hellos are the minority).
    pub tls: Option<Box<TlsSummary>>,
    /// The server's TLS 1.2 certificate name that spoke for it, when no ClientHello was seen.
    pub cert_name: Option<Box<str>>,
    /// The app, when the flow was classified (boxed, as `tls`).
    pub app: Option<Box<Classification>>,
    /// With an app: every signal that spoke, and the confidence (shared: a view copies no list).
    pub explain: Option<Arc<Explanation>>,
    /// With an app decided by a DNS answer: the name whose answer gave the server's address.
    pub dns_name: Option<Arc<str>>,
    /// What the flow showed of evasion (its own anomalies, every server name seen); boxed, as
    /// `tls`, and only on flows that showed any.
    pub evasion: Option<Box<Evasion>>,
    /// A DNS flow: the name it asked for.
    pub dns_query: Option<Box<str>>,
    /// An ended flow without an app: why (set in the flow's last record only).
    pub unattributed: Option<Unattributed>,
    /// UDP: its STUN and ChannelData packets (what of it was a call's signalling).
    pub calls: CallCounts,
}

/// A flow's own anomalies and the server names it carried, where a peer tried to make the
/// sensor misread it (decoy segments, conflicting copies, two names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evasion {
    /// [`Anomaly`] bits, by [`Anomaly::index`].
    pub anomalies: u32,
    /// Every distinct server name seen (decoys, conflicting copies, the hello read), in the
    /// order seen; at most [`Evasion::MAX_CANDIDATES`].
    pub candidates: Vec<Box<str>>,
    /// The first whole hello of a packet the server would drop: the flow's hello after all
    /// when no other comes (the capture may hold the only copy of a segment the sensor saw
    /// damaged), its anomalies saying so.
    pub decoy: Option<Box<TlsSummary>>,
}

impl Evasion {
    /// Most names kept per flow.
    pub const MAX_CANDIDATES: usize = 8;

    /// Notes an anomaly of the flow.
    pub fn mark(&mut self, a: Anomaly) {
        self.anomalies |= 1 << a.index();
    }

    /// Whether the flow showed anomaly `a`.
    pub fn has(&self, a: Anomaly) -> bool {
        self.anomalies & (1 << a.index()) != 0
    }

    /// The flow's anomalies, in [`Anomaly::ALL`] order.
    pub fn kinds(&self) -> impl Iterator<Item = Anomaly> + '_ {
        Anomaly::ALL.into_iter().filter(|a| self.has(*a))
    }

    /// Keeps a server name seen (bytes as the hello carried them, shown lossily).
    pub fn candidate(&mut self, name: &[u8]) {
        if self.candidates.len() >= Self::MAX_CANDIDATES
            || self.candidates.iter().any(|c| c.as_bytes() == name)
        {
            return;
        }
        let s = String::from_utf8_lossy(name);
        if self.candidates.iter().any(|c| **c == *s) {
            return;
        }
        self.candidates.push(s.into());
    }
}

/// Why a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// FIN in both directions, then the grace period.
    Fin,
    /// A RST, then the grace period.
    Rst,
    /// No packet for the idle timeout.
    Idle,
    /// The input ended (replay) or the sensor stopped.
    Eof,
    /// The table was full and this was the least recently seen flow.
    Evicted,
    /// A new connection (a fresh SYN, or a new QUIC connection's first Initial) took over the
    /// 5-tuple of one that never closed.
    Reused,
}

impl EndReason {
    /// Name as used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Fin => "fin",
            EndReason::Rst => "rst",
            EndReason::Idle => "idle",
            EndReason::Eof => "end_of_input",
            EndReason::Evicted => "evicted",
            EndReason::Reused => "reused",
        }
    }
}

/// An ended flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// The flow's final state.
    pub flow: FlowView,
    /// Why it ended.
    pub reason: EndReason,
    /// The sensor's time it ended: its last packet plus its timeout when it went quiet, the
    /// packet that ended it, or the end of the input (orders records).
    pub at: Timestamp,
}

/// Per-app counts since the last report, counted as flows are classified and as their packets
/// pass (not only when flows end), so a dashboard sees a call while it lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppCount {
    /// App id.
    pub app: Arc<str>,
    /// Its verdict when counted.
    pub verdict: Verdict,
    /// Flows classified as this app.
    pub flows: u64,
    /// Bytes on the wire of those flows.
    pub bytes: u64,
}

/// What a worker emits, in the order it happened there.
#[derive(Debug)]
pub enum Record {
    /// A flow was first classified with an app that alerts.
    Alert {
        /// Packet time of the deciding packet.
        ts: Timestamp,
        /// The sensor's time when it happened (orders records; the same at any worker count).
        at: Timestamp,
        /// The flow as it was then.
        flow: FlowView,
    },
    /// A long flow's counters so far.
    Update {
        /// The interval boundary the update is for.
        ts: Timestamp,
        /// The sensor's time when it happened.
        at: Timestamp,
        /// The flow as it was then.
        flow: FlowView,
    },
    /// A flow ended.
    Flow(FlowRecord),
    /// Per-app counts since the previous report.
    Counts(Vec<AppCount>),
}

/// Where a record stands in the release order: the sensor's time it happened, then alerts
/// before updates before ended flows, then flow id. The same at any worker count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mark {
    /// The sensor's time.
    pub at: Timestamp,
    /// The kind of record: 0 alert, 1 update, 2 flow.
    pub rank: u8,
    /// The flow's id.
    pub id: u64,
}

impl Mark {
    /// The first place at time `at`: a worker that sends it has sent every record of an earlier
    /// time.
    pub fn before(at: Timestamp) -> Mark {
        Mark { at, rank: 0, id: 0 }
    }

    /// The place just after `self`: a worker that sends it has sent every record up to `self`.
    pub fn next(self) -> Mark {
        match self.id.checked_add(1) {
            Some(id) => Mark { id, ..self },
            None => Mark {
                rank: self.rank.saturating_add(1),
                id: 0,
                ..self
            },
        }
    }

    /// After everything: a worker that is done.
    pub const END: Mark = Mark {
        at: Timestamp(u64::MAX),
        rank: u8::MAX,
        id: u64::MAX,
    };
}

impl Record {
    /// The record's place in the release order (none for per-app counts, which are not events
    /// in time).
    pub fn mark(&self) -> Option<Mark> {
        let (at, rank, id) = match self {
            Record::Alert { at, flow, .. } => (*at, 0, flow.id),
            Record::Update { at, flow, .. } => (*at, 1, flow.id),
            Record::Flow(r) => (r.at, 2, r.flow.id),
            Record::Counts(_) => return None,
        };
        Some(Mark { at, rank, id })
    }
}

/// One worker's records since its previous batch, and its progress: every record of this worker
/// whose [`Mark`] sorts before `watermark` has been sent (in normal running, every packet of this
/// worker with a time before `watermark.at` has been processed).
#[derive(Debug)]
pub struct RecordBatch {
    /// The worker's index.
    pub worker: u16,
    /// Progress in the release order.
    pub watermark: Mark,
    /// Records, in the order they happened.
    pub records: Vec<Record>,
}

counter_enum! {
    /// Something a hostile or broken peer did, counted (`picket_anomalies_total{kind}`); the flow
    /// goes on being tracked.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Anomaly {
        /// TCP segments whose bytes disagreed with bytes already reassembled (what a receiver reads kept).
        ReassemblyConflict => "reassembly_conflict",
        /// Segments dropped by the reassembly limit (16 KiB).
        ReassemblyLimit => "reassembly_limit",
        /// Pending reassembly buffers dropped to stay within `--reassembly-memcap` (the flow
        /// goes on, its handshake unread).
        ReassemblyMemcap => "reassembly_memcap",
        /// A segment or datagram the server would drop (bad checksum, short TTL, no ACK, an
        /// MD5 option never negotiated, an old timestamp, data on a SYN the SYN-ACK did not
        /// take, an urgent byte): not fed to reassembly, a RST or FIN not believed.
        Evasion => "evasion",
        /// A whole ClientHello in a packet the server would drop, a second hello with another
        /// name, or a second QUIC connection's Initial at a flow's start.
        DecoyHello => "decoy_hello",
        /// A ClientHello with two `server_name` extensions.
        DuplicateSni => "duplicate_sni",
        /// A ClientHello started but never completed (the flow ended or the cap was reached).
        HelloIncomplete => "hello_incomplete",
        /// Bytes that looked like a ClientHello record but did not parse, or a ClientHello whose
        /// extension list does not hold together.
        TlsMalformed => "tls_malformed",
        /// A server name longer than a DNS name can be (253 bytes).
        SniOversized => "sni_oversized",
        /// A datagram that looked like a QUIC client Initial but did not decrypt or parse.
        QuicUndecryptable => "quic_undecryptable",
        /// A DNS message with a compression loop, a reserved label type or an overlong name.
        DnsMalformed => "dns_malformed",
        /// A datagram with the STUN magic cookie whose lengths do not hold.
        StunMalformed => "stun_malformed",
    }
}

/// Plain counters of one worker; summed by whoever owns the workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Packets processed.
    pub packets: u64,
    /// Frame bytes processed.
    pub bytes: u64,
    /// Flows created.
    pub flows: u64,
    /// Flows evicted because the table was full.
    pub evicted: u64,
    /// ClientHellos read.
    pub hellos: u64,
    /// Flows whose handshake search ended without a ClientHello.
    pub hello_gave_up: u64,
    /// Most flows held at once.
    pub peak_flows: u64,
    /// Protocol anomalies, by [`Anomaly::index`].
    pub anomalies: [u64; Anomaly::ALL.len()],
}

impl WorkerStats {
    /// Adds another worker's counters (peaks add too: workers hold disjoint flows).
    pub fn add(&mut self, o: &WorkerStats) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.flows += o.flows;
        self.evicted += o.evicted;
        self.hellos += o.hellos;
        self.hello_gave_up += o.hello_gave_up;
        self.peak_flows += o.peak_flows;
        for (a, b) in self.anomalies.iter_mut().zip(o.anomalies) {
            *a += b;
        }
    }

    /// Segments whose bytes disagreed with bytes already held (TCP and QUIC CRYPTO).
    pub fn overlap_conflicts(&self) -> u64 {
        self.anomalies[Anomaly::ReassemblyConflict.index()]
    }

    /// Counts `n` anomalies of one kind.
    pub fn anomaly(&mut self, kind: Anomaly, n: u64) {
        self.anomalies[kind.index()] += n;
    }
}

/// What reading and decoding saw.
#[derive(Clone, Debug, Default)]
pub struct ReadStats {
    /// Sources opened successfully.
    pub files: usize,
    /// Packets read.
    pub packets: u64,
    /// Their bytes on the wire.
    pub bytes: u64,
    /// Packets handed to the workers (TCP/UDP over IP; a reassembled datagram counts once).
    pub decoded: u64,
    /// Packets skipped, by [`Skip::index`].
    pub skips: [u64; Skip::ALL.len()],
    /// Tunnels seen and fragment reassembly.
    pub decode: DecodeStats,
    /// Errors, each naming its source (file, packet and byte offset for captures).
    pub errors: Vec<String>,
    /// CPU time of the sources' helper threads (files read ahead), summed when each ends.
    pub helper_cpu: Duration,
    /// Packets the sensor's clock did not believe: too far ahead of the capture's time to move
    /// it, and more than a second behind it (stamped with its time; `pipeline::clock`).
    pub clock_ahead: u64,
    /// See `clock_ahead`.
    pub clock_behind: u64,
    /// Packets left out by the replay's `--bpf` filter (not counted as read).
    pub filtered: u64,
}

impl ReadStats {
    /// Packets skipped for any reason.
    pub fn skipped(&self) -> u64 {
        self.skips.iter().sum()
    }

    /// Packets skipped because they were damaged (truncated or malformed headers).
    pub fn decode_errors(&self) -> u64 {
        Skip::ALL
            .iter()
            .filter(|k| k.is_error())
            .map(|k| self.skips[k.index()])
            .sum()
    }
}

/// The workers' results at the end of a run.
#[derive(Clone, Debug, Default)]
pub struct WorkerReport {
    /// Counters, summed over workers.
    pub stats: WorkerStats,
    /// Each worker's packets and the CPU time its thread used, in worker order: what a worker
    /// costs per packet, read once when it ends.
    pub cpu: Vec<(u64, Duration)>,
}

/// Everything a run counted.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// Reading and decoding.
    pub read: ReadStats,
    /// The workers' counters.
    pub workers: WorkerReport,
    /// Worker threads used.
    pub workers_used: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// CPU time of the reader thread (reading, decoding, dispatching) while it fed the workers.
    pub reader_cpu: Duration,
    /// The run was stopped on request before its input ended.
    pub stopped: bool,
}

#[cfg(test)]
impl FlowView {
    /// A TCP flow between two endpoints over a span of packet time, with nothing else known: the
    /// start of export's test records.
    pub(crate) fn sample(
        client: (std::net::IpAddr, u16),
        server: (std::net::IpAddr, u16),
        first_ts: Timestamp,
        last_ts: Timestamp,
    ) -> Self {
        FlowView {
            id: 0,
            transport: Transport::Tcp,
            client: (Addr::from(client.0), client.1),
            server: (Addr::from(server.0), server.1),
            vlans: Vlans::default(),
            segment: Segment::NONE,
            first_ts,
            last_ts,
            to_server: DirStats::default(),
            to_client: DirStats::default(),
            syn_seen: true,
            tls: None,
            cert_name: None,
            app: None,
            explain: None,
            dns_name: None,
            evasion: None,
            dns_query: None,
            unattributed: None,
            calls: CallCounts::default(),
        }
    }
}

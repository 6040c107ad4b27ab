//! Per-worker flow state: the table, TCP tracking, timeouts in packet time, and the client's first
//! bytes reassembled until a ClientHello is complete. Never locks; never reads the clock.
//!
//! A worker's [`FlowTracker`] owns everything here. Packets come in with their precomputed key
//! hash; what happens goes out as [`Event`]s (alerts, updates, ended flows, per-app counts) into
//! a caller-owned `Vec`.

pub mod key;
pub mod reasm;
pub mod table;

pub use key::{FlowHasher, FlowKey};

use crate::capture::Timestamp;
use crate::classify::hints::{Hint, Hints};
use crate::classify::{self, AppSource, Classification};
use crate::decode::{tcp_flags, PacketMeta, Transport};
use crate::proto::tls::ClientHello;
use crate::proto::{dns, quic, stun};
use crate::rules::CompiledRules;
use reasm::{ClientPrefix, HelloScan};
use std::sync::Arc;
use table::{FlowTable, TimeoutClass};

const SEC: u64 = 1_000_000_000;
/// Seed of flow ids: fixed, so ids are the same in every run and at every worker count.
const FLOW_ID_SEED: u64 = 0x7069_636b_6574_0001;

/// Flow timeouts and limits; all times are packet time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// An open TCP connection ends after this long without a packet (default 300 s).
    pub tcp_idle_ns: u64,
    /// A UDP conversation ends after this long without a packet (default 60 s).
    pub udp_idle_ns: u64,
    /// After FIN both ways or a RST, a TCP connection ends after this long (default 5 s).
    pub closing_grace_ns: u64,
    /// Most flows this tracker holds; the least recently seen is evicted past it.
    pub max_flows: usize,
    /// A flow that lives longer emits a `flow_update` every this long (0: never; default 300 s).
    pub update_ns: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            tcp_idle_ns: 300 * SEC,
            udp_idle_ns: 60 * SEC,
            closing_grace_ns: 5 * SEC,
            max_flows: 1_000_000,
            update_ns: 300 * SEC,
        }
    }
}

impl FlowConfig {
    fn timeout(&self, class: TimeoutClass) -> u64 {
        match class {
            TimeoutClass::Tcp => self.tcp_idle_ns,
            TimeoutClass::Udp => self.udp_idle_ns,
            TimeoutClass::Closing => self.closing_grace_ns,
        }
    }
}

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

/// What a flow's ClientHello said, kept once per flow in one allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// The JA4 fingerprint, the server name (if any) and the ALPN protocols, each followed by a
    /// NUL; NULs inside a name are replaced, and names are lossy UTF-8.
    names: Box<str>,
    has_sni: bool,
    /// The server name was longer than a DNS name can be (cut in `names`; never trusted).
    sni_oversized: bool,
    /// Highest version offered.
    pub version: u16,
    /// An ECH extension was present (with real ECH the SNI is the outer, public name; Chrome also
    /// sends a placeholder that looks the same).
    pub ech: bool,
    /// An ESNI extension was present.
    pub esni: bool,
    /// Real ECH: the ECH extension came with the public name of a known ECH client-facing
    /// server (rules' `ech.toml`), so the server name is only the outer one. An ECH extension
    /// with any other name is taken for GREASE.
    pub ech_outer: bool,
}

impl TlsInfo {
    /// Builds the summary from the hello's raw fields.
    pub fn new(
        ja4: &str,
        sni: Option<&[u8]>,
        alpn: &[&[u8]],
        version: u16,
        ech: bool,
        esni: bool,
    ) -> Self {
        let mut names = String::with_capacity(64);
        names.push_str(ja4);
        names.push('\0');
        for (i, n) in sni.iter().chain(alpn.iter()).enumerate() {
            // A server name is cut at MAX_SNI_KEPT bytes; an ALPN id is at most 255 by format.
            let n = if i == 0 && sni.is_some() {
                &n[..n.len().min(MAX_SNI_KEPT)]
            } else {
                n
            };
            names.push_str(&String::from_utf8_lossy(n).replace('\0', "\u{fffd}"));
            names.push('\0');
        }
        TlsInfo {
            names: names.into_boxed_str(),
            has_sni: sni.is_some(),
            sni_oversized: sni.is_some_and(|n| n.len() > MAX_SNI),
            version,
            ech,
            esni,
            ech_outer: false,
        }
    }

    /// From a parsed hello; `quic` when it came in QUIC Initials (for JA4).
    pub fn from_hello(ch: &ClientHello<'_>, quic: bool) -> Self {
        TlsInfo::new(
            &ch.ja4(quic),
            ch.sni,
            &ch.alpn,
            ch.max_version(),
            ch.ech,
            ch.esni,
        )
    }

    /// The server name, when it names the server the client wants: not the outer name of real
    /// ECH, not beside ESNI, and not an IP address written as a name.
    pub fn trusted_sni(&self) -> Option<&str> {
        let sni = self.sni()?;
        let literal = sni.parse::<std::net::IpAddr>().is_ok()
            || sni
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .is_some_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok());
        (!self.ech_outer && !self.esni && !literal && !self.sni_oversized).then_some(sni)
    }

    fn parts(&self) -> std::str::SplitTerminator<'_, char> {
        self.names.split_terminator('\0')
    }

    /// The JA4 client fingerprint.
    pub fn ja4(&self) -> &str {
        self.parts().next().unwrap_or("")
    }

    /// The server name.
    pub fn sni(&self) -> Option<&str> {
        if self.has_sni {
            self.parts().nth(1)
        } else {
            None
        }
    }

    /// The ALPN protocols offered, in order.
    pub fn alpn(&self) -> impl Iterator<Item = &str> {
        self.parts().skip(1 + usize::from(self.has_sni))
    }
}

/// A handshake being gathered, boxed in its flow only while it lasts.
#[derive(Debug)]
pub enum Hello {
    /// TCP: the client's first stream bytes.
    Tcp(ClientPrefix),
    /// QUIC: the CRYPTO stream of the client's Initial packets, and the connection id their
    /// keys derive from (the destination of the client's first Initial).
    Quic {
        /// The original destination connection id, once the first Initial was read.
        dcid: Option<quic::ConnId>,
        /// CRYPTO data by offset.
        crypto: ClientPrefix,
        /// Client datagrams looked at.
        datagrams: u8,
    },
}

/// Datagrams of a UDP flow looked at for STUN, QUIC and signatures.
const MAX_UDP_LOOK: u8 = 8;

/// UDP port of DNS.
const DNS_PORT: u16 = 53;

/// Longest server name a DNS name allows (RFC 1035, in text form); longer ones are anomalies and
/// are cut to [`MAX_SNI_KEPT`] bytes in events.
const MAX_SNI: usize = 253;
/// Bytes of a server name kept.
const MAX_SNI_KEPT: usize = 255;

/// Most STUN messages read at the start of a TCP stream.
const MAX_TCP_STUN: usize = 4;

/// Most client datagrams of a UDP flow looked at for QUIC Initials before giving up.
const MAX_QUIC_DATAGRAMS: u8 = 8;

/// What adopting a ClientHello needs besides the flow.
struct Adopt<'a> {
    rules: &'a CompiledRules,
    apps: &'a mut Vec<AppCount>,
    /// The deciding packet's time.
    ts: Timestamp,
    /// The sensor's time.
    at: Timestamp,
    out: &'a mut Vec<Event>,
}

impl<'a> Adopt<'a> {
    /// A classifier for a flow decided by a packet of time `ts`, at the sensor's present time.
    fn new(
        rules: &'a CompiledRules,
        apps: &'a mut Vec<AppCount>,
        clock: &Clock,
        ts: Timestamp,
        out: &'a mut Vec<Event>,
    ) -> Self {
        Adopt {
            rules,
            apps,
            ts,
            at: clock.now(),
            out,
        }
    }

    /// Ends a handshake search: a search that is over leaves the flow to its address when it
    /// found no hello; one that goes on keeps its buffer.
    fn conclude(self, f: &mut Flow, hello: Box<Hello>, done: bool) {
        if !done {
            f.hello = Some(hello);
            return;
        }
        f.hello_done = true;
        // A handshake of fixed sizes is decided by the server's reply, which is still to come.
        if f.tls.is_none() && f.reply_sig == 0 {
            self.by_address(f);
        }
    }

    /// Records what a ClientHello says, classifies the flow, counts it and raises its alert.
    /// A hello without a trusted server name (none, the outer name of real ECH, an IP literal)
    /// leaves the flow to its hints and its address.
    fn adopt(self, f: &mut Flow, ch: &ClientHello<'_>, source: AppSource) {
        let mut info = TlsInfo::from_hello(ch, source == AppSource::QuicSni);
        info.ech_outer = info.ech && info.sni().is_some_and(|n| self.rules.is_ech_public(n));
        let by_name = info
            .trusted_sni()
            .and_then(|name| classify::by_server_name(self.rules, name.as_bytes(), source))
            .map(Box::new);
        let named = info.trusted_sni().is_some();
        // A fingerprint of the app's own TLS stack decides when the name does not.
        let by_name = by_name.or_else(|| classify::by_ja4(self.rules, info.ja4()).map(Box::new));
        f.tls = Some(info);
        f.app = by_name;
        if f.app.is_some() || named {
            self.counted(f);
        } else {
            self.by_address(f);
        }
    }

    /// Classifies a flow that no server name decided: by what the shared caches said of its
    /// endpoints when it started, else by its server's address (or the other side's, when which
    /// side is the server was only a guess).
    fn by_address(self, f: &mut Flow) {
        if f.app.is_some() {
            return;
        }
        if let Some(h) = &f.hint {
            f.app = Some(Box::new(h.class.clone()));
            self.counted(f);
            return;
        }
        let (server, client) = (f.server().0.ip(), f.client().0.ip());
        f.app = classify::by_address(self.rules, server)
            .or_else(|| {
                if f.tcp.syn {
                    None
                } else {
                    classify::by_address(self.rules, client)
                }
            })
            .map(Box::new);
        self.counted(f);
    }

    /// Counts a newly classified flow and raises its alert.
    fn counted(self, f: &mut Flow) {
        let Some(c) = f.app.as_deref() else {
            return;
        };
        let slot = match self
            .apps
            .iter()
            .position(|a| a.app == c.app && a.verdict == c.verdict)
        {
            Some(s) => s,
            None => {
                self.apps.push(AppCount {
                    app: Arc::clone(&c.app),
                    verdict: c.verdict,
                    flows: 0,
                    bytes: 0,
                });
                self.apps.len() - 1
            }
        };
        f.app_slot = u16::try_from(slot).unwrap_or(u16::MAX);
        if let Some(a) = self.apps.get_mut(slot) {
            a.flows += 1;
            a.bytes += f.to_server.bytes + f.to_client.bytes;
        }
        if c.alert {
            self.out.push(Event::Alert {
                ts: self.ts,
                at: self.at,
                flow: f.snapshot(),
            });
        }
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
    /// A new connection (a fresh SYN) took over the 5-tuple of one that never closed.
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

/// TCP facts tracked per flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpTrack {
    /// The client's SYN was seen.
    pub syn: bool,
    /// The client's initial sequence number, when its SYN was seen.
    pub isn: u32,
    /// Sequence number of the client's first data byte, from the SYN or the SYN-ACK.
    pub client_base: Option<u32>,
    /// FIN seen from the client.
    pub fin_client: bool,
    /// FIN seen from the server.
    pub fin_server: bool,
    /// RST seen.
    pub rst: bool,
}

/// One flow's state. Measured size: see the `flow_size` test (`size_of::<Flow>()` is 224 bytes on
/// 64-bit targets); the handshake buffer is boxed and freed once the handshake is read, the TLS
/// names take one allocation per TLS flow, the app one per classified flow.
#[derive(Debug)]
pub struct Flow {
    /// The flow's id: the same in every event of the flow, and the same for the same packets
    /// whatever the worker count (a hash of the key and the first packet's time).
    pub id: u64,
    /// Direction-normalised key.
    pub key: FlowKey,
    /// The key's hash.
    pub hash: u64,
    /// Whether the client is the key's `lo` endpoint.
    pub client_is_lo: bool,
    /// First packet time.
    pub first_ts: Timestamp,
    /// Last packet time.
    pub last_ts: Timestamp,
    /// Client to server.
    pub to_server: DirStats,
    /// Server to client.
    pub to_client: DirStats,
    /// TCP tracking (unused for UDP).
    pub tcp: TcpTrack,
    /// The handshake being reassembled, until it is found.
    pub hello: Option<Box<Hello>>,
    /// No more handshake search for this flow.
    pub hello_done: bool,
    /// What the ClientHello said.
    pub tls: Option<TlsInfo>,
    /// The app, once known.
    pub app: Option<Box<Classification>>,
    /// What the shared caches said of the flow's endpoints when it started (a DNS answer or a
    /// call's STUN exchange): it decides when the flow's own signals name nothing.
    pub hint: Option<Box<Hint>>,
    /// The tracker's per-app counter this flow's bytes go to (when `app` is set).
    app_slot: u16,
    /// `flow_update` events emitted so far.
    pub updates: u32,
    /// UDP datagrams looked at for an app.
    looked: u8,
    /// TCP: 1 + the index of the signature whose client side the first segment matched and
    /// which waits for the server's first segment (0: none). Until it comes, a flow with no
    /// hello is not yet left to its address.
    reply_sig: u16,
    /// The rules generation `reply_sig` indexes (a reload renumbers signatures).
    reply_gen: u8,
}

impl Flow {
    /// A new flow first seen at `ts`.
    pub fn new(key: FlowKey, hash: u64, client_is_lo: bool, ts: Timestamp) -> Self {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = foldhash::fast::FixedState::with_seed(FLOW_ID_SEED).build_hasher();
        key.hash(&mut h);
        ts.hash(&mut h);
        Flow {
            id: h.finish(),
            key,
            hash,
            client_is_lo,
            first_ts: ts,
            last_ts: ts,
            to_server: DirStats::default(),
            to_client: DirStats::default(),
            tcp: TcpTrack::default(),
            hello: None,
            hello_done: false,
            tls: None,
            app: None,
            hint: None,
            app_slot: 0,
            updates: 0,
            looked: 0,
            reply_sig: 0,
            reply_gen: 0,
        }
    }

    /// A copy of the flow's state for an event (without its reassembly buffer).
    pub fn snapshot(&self) -> Flow {
        Flow {
            id: self.id,
            key: self.key,
            hash: self.hash,
            client_is_lo: self.client_is_lo,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            to_server: self.to_server,
            to_client: self.to_client,
            tcp: self.tcp,
            hello: None,
            hello_done: self.hello_done,
            tls: self.tls.clone(),
            app: self.app.clone(),
            hint: self.hint.clone(),
            app_slot: self.app_slot,
            updates: self.updates,
            looked: self.looked,
            reply_sig: self.reply_sig,
            reply_gen: self.reply_gen,
        }
    }

    /// The client endpoint.
    pub fn client(&self) -> (crate::decode::Addr, u16) {
        if self.client_is_lo {
            self.key.lo
        } else {
            self.key.hi
        }
    }

    /// The server endpoint.
    pub fn server(&self) -> (crate::decode::Addr, u16) {
        if self.client_is_lo {
            self.key.hi
        } else {
            self.key.lo
        }
    }

    fn closing(&self) -> bool {
        self.tcp.rst || (self.tcp.fin_client && self.tcp.fin_server)
    }

    fn class(&self) -> TimeoutClass {
        match self.key.transport {
            Transport::Udp => TimeoutClass::Udp,
            Transport::Tcp if self.closing() => TimeoutClass::Closing,
            Transport::Tcp => TimeoutClass::Tcp,
        }
    }

    /// How this flow ends if it ends now for lack of packets.
    fn quiet_end(&self) -> EndReason {
        if self.tcp.rst {
            EndReason::Rst
        } else if self.closing() {
            EndReason::Fin
        } else {
            EndReason::Idle
        }
    }

    /// Whether a SYN (without ACK) from `from_client`'s side opens a new connection rather than
    /// repeating this one's.
    fn is_new_connection(&self, m: &PacketMeta, from_client: bool) -> bool {
        let same_syn = from_client && self.tcp.syn && m.seq == self.tcp.isn;
        if same_syn {
            return false; // a retransmitted SYN
        }
        self.closing()
            || self.tcp.syn
            || self.to_server.payload > 0
            || self.to_client.payload > 0
            || !from_client
    }
}

/// Per-app counts since the last report, counted as flows are classified and as their packets
/// pass (not only when flows end), so a dashboard sees a call while it lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppCount {
    /// App id.
    pub app: Arc<str>,
    /// Its verdict when counted.
    pub verdict: crate::rules::Verdict,
    /// Flows classified as this app.
    pub flows: u64,
    /// Bytes on the wire of those flows.
    pub bytes: u64,
}

/// What a worker emits, in the order it happened there.
#[derive(Debug)]
pub enum Event {
    /// A flow was first classified with an app that alerts; `ts` is the deciding packet's time.
    Alert {
        /// Packet time of the deciding packet.
        ts: Timestamp,
        /// The sensor's time when it happened (orders events; the same at any worker count).
        at: Timestamp,
        /// The flow as it was then.
        flow: Flow,
    },
    /// A long flow's counters so far; `ts` is the interval's boundary.
    Update {
        /// The time the update is for.
        ts: Timestamp,
        /// The sensor's time when it happened.
        at: Timestamp,
        /// The flow as it was then.
        flow: Flow,
    },
    /// A flow ended.
    Flow(FlowRecord),
    /// Per-app counts since the previous report.
    Counts(Vec<AppCount>),
}

/// An ended flow, on its way to the event writer.
#[derive(Debug)]
pub struct FlowRecord {
    /// The flow's final state.
    pub flow: Flow,
    /// Why it ended.
    pub reason: EndReason,
    /// The sensor's time it ended: its last packet plus its timeout when it went quiet, the
    /// packet that ended it, or the end of the input (orders events).
    pub at: Timestamp,
}

/// Plain counters of one tracker; summed by whoever owns the trackers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackerStats {
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

/// Something a hostile or broken peer did, counted (`picket_anomalies_total{kind}`); the flow
/// goes on being tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// TCP segments whose bytes disagreed with bytes already reassembled (first arrival kept).
    ReassemblyConflict,
    /// Segments dropped by the reassembly limits (16 KiB, 8 holes).
    ReassemblyLimit,
    /// A ClientHello started but never completed (the flow ended or the cap was reached).
    HelloIncomplete,
    /// Bytes that looked like a ClientHello record but did not parse, or a ClientHello whose
    /// extension list does not hold together.
    TlsMalformed,
    /// A server name longer than a DNS name can be (253 bytes).
    SniOversized,
    /// A datagram that looked like a QUIC client Initial but did not decrypt or parse.
    QuicUndecryptable,
    /// A DNS message with a compression loop, a reserved label type or an overlong name.
    DnsMalformed,
    /// A datagram with the STUN magic cookie whose lengths do not hold.
    StunMalformed,
}

impl Anomaly {
    /// Every kind, in index order.
    pub const ALL: [Anomaly; 8] = [
        Anomaly::ReassemblyConflict,
        Anomaly::ReassemblyLimit,
        Anomaly::HelloIncomplete,
        Anomaly::TlsMalformed,
        Anomaly::SniOversized,
        Anomaly::QuicUndecryptable,
        Anomaly::DnsMalformed,
        Anomaly::StunMalformed,
    ];

    /// Position in [`Anomaly::ALL`] and the counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Anomaly::ReassemblyConflict => "reassembly_conflict",
            Anomaly::ReassemblyLimit => "reassembly_limit",
            Anomaly::HelloIncomplete => "hello_incomplete",
            Anomaly::TlsMalformed => "tls_malformed",
            Anomaly::SniOversized => "sni_oversized",
            Anomaly::QuicUndecryptable => "quic_undecryptable",
            Anomaly::DnsMalformed => "dns_malformed",
            Anomaly::StunMalformed => "stun_malformed",
        }
    }
}

impl TrackerStats {
    /// Adds another tracker's counters (peaks add too: trackers hold disjoint flows).
    pub fn add(&mut self, o: &TrackerStats) {
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

    /// Counts a ClientHello read (over TCP or QUIC) and what was wrong with it.
    fn hello_read(&mut self, ch: &ClientHello<'_>) {
        self.hellos += 1;
        if ch.sni.is_some_and(|n| n.len() > MAX_SNI) {
            self.anomaly(Anomaly::SniOversized, 1);
        }
        if ch.malformed_extensions {
            self.anomaly(Anomaly::TlsMalformed, 1);
        }
    }

    /// Segments whose bytes disagreed with bytes already held (TCP and QUIC CRYPTO).
    pub fn overlap_conflicts(&self) -> u64 {
        self.anomalies[Anomaly::ReassemblyConflict.index()]
    }

    /// Counts one anomaly.
    pub fn anomaly(&mut self, kind: Anomaly, n: u64) {
        self.anomalies[kind.index()] += n;
    }
}

/// Packet time as the sensor believes it: the latest timestamp seen, except that one record far
/// ahead of the rest (a damaged timestamp) is not believed until a second packet near it
/// confirms the jump — otherwise a single bad record would end every flow as idle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    now: Timestamp,
    pending: Option<Timestamp>,
}

/// A jump forward larger than this needs a second packet to confirm it.
const MAX_JUMP: u64 = 3600 * SEC;

impl Clock {
    /// Takes a packet's timestamp into account.
    pub fn observe(&mut self, ts: Timestamp) {
        if ts <= self.now {
            return;
        }
        if self.now.0 == 0 || ts.0 - self.now.0 <= MAX_JUMP {
            self.now = ts;
            self.pending = None;
            return;
        }
        match self.pending {
            Some(p) if ts.0.abs_diff(p.0) <= MAX_JUMP => {
                self.now = ts;
                self.pending = None;
            }
            _ => self.pending = Some(ts),
        }
    }

    /// The time now.
    pub fn now(&self) -> Timestamp {
        self.now
    }
}

/// The flow logic of one worker.
#[derive(Debug)]
pub struct FlowTracker {
    table: FlowTable,
    cfg: FlowConfig,
    rules: Arc<CompiledRules>,
    /// Bumped at each rule reload: a flow waiting for a reply names its signature by index,
    /// which only holds in the rules it was found in.
    rules_gen: u8,
    scratch: Vec<u8>,
    /// Decrypted QUIC Initial payloads.
    quic_scratch: Vec<u8>,
    clock: Clock,
    /// Time of the last look for quiet flows.
    swept: Timestamp,
    /// When per-app counts are next reported.
    next_report: Timestamp,
    /// Per-app counts since the last report; flows point at their slot.
    apps: Vec<AppCount>,
    /// The caches of DNS answers and call endpoints, shared with the reader.
    hints: Arc<Hints>,
    /// Counters.
    pub stats: TrackerStats,
}

/// How often (in packet time) per-app counts are reported.
const REPORT_EVERY: u64 = SEC;

/// Whether the sender of a packet without SYN information looks like the client: a port below
/// 1024 on one side only marks that side as the server; otherwise the first packet's sender is
/// taken as the client.
fn sender_looks_like_client(sport: u16, dport: u16) -> bool {
    !(sport < 1024 && dport >= 1024)
}

impl FlowTracker {
    /// A tracker with its own table, sharing the compiled rules.
    pub fn new(cfg: FlowConfig, rules: Arc<CompiledRules>) -> Self {
        FlowTracker {
            table: FlowTable::new(cfg.max_flows),
            cfg,
            rules,
            rules_gen: 0,
            scratch: Vec::with_capacity(4096),
            quic_scratch: Vec::with_capacity(2048),
            clock: Clock::default(),
            swept: Timestamp(0),
            next_report: Timestamp(0),
            apps: Vec::new(),
            hints: Arc::new(Hints::new(1)),
            stats: TrackerStats::default(),
        }
    }

    /// Reads flow hints from `hints` (the caches the reader fills).
    pub fn with_hints(mut self, hints: Arc<Hints>) -> Self {
        self.hints = hints;
        self
    }

    /// Flows held now.
    pub fn active(&self) -> usize {
        self.table.len()
    }

    /// Replaces the rules used for flows classified from now on.
    pub fn set_rules(&mut self, rules: Arc<CompiledRules>) {
        self.rules = rules;
        self.rules_gen = self.rules_gen.wrapping_add(1);
    }

    /// Processes one packet; what happens on the way is pushed to `out`. `now` is the sensor's
    /// time when the packet was read (the dispatcher's clock over all packets), so flows age the
    /// same way whichever worker holds them.
    pub fn packet(
        &mut self,
        m: &PacketMeta,
        hash: u64,
        payload: &[u8],
        now: Timestamp,
        out: &mut Vec<Event>,
    ) {
        self.stats.packets += 1;
        self.stats.bytes += u64::from(m.wire_len);
        self.advance(now.max(m.ts), out);
        let now = self.clock.now();
        let (key, src_is_lo) = FlowKey::of(m);
        let is_tcp = m.transport == Transport::Tcp;
        let syn_only = is_tcp && m.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN;
        let mut slot = self.table.find(hash, &key);
        if let Some(i) = slot {
            if let Some(f) = self.table.get(i) {
                let from_client = src_is_lo == f.client_is_lo;
                let quiet_at = f.last_ts.plus_nanos(self.cfg.timeout(f.class()));
                let end = if now > quiet_at {
                    Some((f.quiet_end(), quiet_at))
                } else if syn_only && f.is_new_connection(m, from_client) {
                    Some(if f.closing() {
                        (f.quiet_end(), now)
                    } else {
                        (EndReason::Reused, now)
                    })
                } else {
                    None
                };
                if let Some((reason, at)) = end {
                    self.end(i, reason, at, out);
                    slot = None;
                }
            }
        }
        let i = match slot {
            Some(i) => i,
            None => self.create(key, hash, src_is_lo, m, out),
        };
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let from_client = src_is_lo == f.client_is_lo;
        let d = if from_client {
            &mut f.to_server
        } else {
            &mut f.to_client
        };
        d.packets += 1;
        d.bytes += u64::from(m.wire_len);
        d.payload += payload.len() as u64;
        d.flags |= m.flags;
        if m.ts > f.last_ts {
            f.last_ts = m.ts;
        }
        if f.app.is_some() {
            if let Some(a) = self.apps.get_mut(usize::from(f.app_slot)) {
                a.bytes += u64::from(m.wire_len);
            }
        }
        let every = self.cfg.update_ns;
        if every > 0 {
            let age = m.ts.0.saturating_sub(f.first_ts.0);
            let due = u64::from(f.updates) + 1;
            if age >= due.saturating_mul(every) {
                let n = age / every;
                f.updates = u32::try_from(n).unwrap_or(u32::MAX);
                out.push(Event::Update {
                    ts: f.first_ts.plus_nanos(n * every),
                    at: now,
                    flow: f.snapshot(),
                });
            }
        }
        if !is_tcp {
            if !payload.is_empty() && !f.hello_done {
                let dns = (m.sport == DNS_PORT || m.dport == DNS_PORT)
                    && self.dns_datagram(i, payload, m.ts, out);
                if !dns {
                    self.udp_datagram(i, payload, from_client, m.ts, out);
                }
            }
        } else {
            track_tcp(f, m, from_client);
            if !from_client && !payload.is_empty() && f.reply_sig != 0 {
                self.server_reply(i, payload.len(), m.ts, out);
            } else if from_client
                && !payload.is_empty()
                && f.reply_sig != 0
                && f.hello_done
                && f.tcp.client_base != Some(m.seq)
            {
                // More client data before any reply: not the handshake that was waited for.
                // (A one-way capture would otherwise wait until the flow ends.)
                self.reply_abandoned(i, m.ts, out);
            } else if from_client && !payload.is_empty() && !f.hello_done {
                // Data on a SYN (TCP Fast Open) starts after the SYN's own sequence number.
                let seq = if m.flags & tcp_flags::SYN != 0 {
                    m.seq.wrapping_add(1)
                } else {
                    m.seq
                };
                self.client_bytes(i, seq, payload, m.ts, out);
            }
        }
        if let Some(f) = self.table.get(i) {
            let class = f.class();
            self.table.touch(i, class);
        }
    }

    fn create(
        &mut self,
        key: FlowKey,
        hash: u64,
        src_is_lo: bool,
        m: &PacketMeta,
        out: &mut Vec<Event>,
    ) -> u32 {
        if self.table.is_full() {
            if let Some(old) = self.table.oldest_overall() {
                self.stats.evicted += 1;
                let at = self.clock.now();
                self.end(old, EndReason::Evicted, at, out);
            }
        }
        let syn = m.flags & tcp_flags::SYN != 0;
        let ack = m.flags & tcp_flags::ACK != 0;
        let src_is_client = match (m.transport, syn, ack) {
            (Transport::Tcp, true, false) => true,
            (Transport::Tcp, true, true) => false,
            _ => sender_looks_like_client(m.sport, m.dport),
        };
        let client_is_lo = src_is_lo == src_is_client;
        let mut flow = Flow::new(key, hash, client_is_lo, m.ts);
        if !self.hints.is_empty() {
            let sock = |(a, p): (crate::decode::Addr, u16)| std::net::SocketAddr::new(a.ip(), p);
            flow.hint = self
                .hints
                .lookup(
                    &self.rules,
                    m.transport == Transport::Udp,
                    sock(flow.server()),
                    sock(flow.client()),
                    m.ts,
                )
                .map(Box::new);
        }
        let class = flow.class();
        self.stats.flows += 1;
        let i = self.table.insert(flow, class);
        self.stats.peak_flows = self.stats.peak_flows.max(self.table.len() as u64);
        i
    }

    /// Feeds client payload to the handshake search, and classifies when a hello completes.
    fn client_bytes(
        &mut self,
        i: u32,
        seq: u32,
        payload: &[u8],
        ts: Timestamp,
        out: &mut Vec<Event>,
    ) {
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let base = f.tcp.client_base.unwrap_or(seq);
        // Taken out while it is read, so what it says can go into the flow.
        let mut hello = f
            .hello
            .take()
            .unwrap_or_else(|| Box::new(Hello::Tcp(ClientPrefix::new(base))));
        let Hello::Tcp(prefix) = &mut *hello else {
            f.hello_done = true;
            return;
        };
        let ins = prefix.insert(seq, payload);
        self.stats
            .anomaly(Anomaly::ReassemblyConflict, u64::from(ins.conflict));
        self.stats.anomaly(
            Anomaly::ReassemblyLimit,
            u64::from(ins.beyond_cap || ins.too_many_holes),
        );
        let reach = self.rules.signature_reach(Transport::Tcp);
        if ins.grew && f.app.is_none() && reach > 0 && prefix.contiguous_len() as usize >= reach {
            let port = f.server().1;
            // Length fields count the client's first segment only.
            let frame = if seq == base {
                payload.len()
            } else {
                usize::MAX
            };
            if let Some(c) = classify::by_payload(
                &self.rules,
                Transport::Tcp,
                port,
                prefix.contiguous(),
                frame,
            ) {
                // A signature decides at once: no handshake is coming.
                f.app = Some(Box::new(c));
                f.hello_done = true;
                Adopt::new(&self.rules, &mut self.apps, &self.clock, ts, out).counted(f);
                return;
            }
        }
        // Client data past the first segment before any reply: not the handshake waited for.
        if f.reply_sig != 0 && seq != base {
            f.reply_sig = 0;
        }
        // Only a handshake seen from its start: the SYN or SYN-ACK fixed where the client's data
        // begins, and the server has sent nothing yet (a flow picked up mid-way has no "first"
        // segments, and 48- and 80-byte records are common there).
        if ins.grew
            && seq == base
            && f.tcp.client_base.is_some()
            && f.to_client.payload == 0
            && f.app.is_none()
            && f.reply_sig == 0
            && self.rules.has_reply_signatures()
        {
            let port = f.server().1;
            if let Some(ix) = self
                .rules
                .reply_candidate(port, prefix.contiguous(), payload.len())
            {
                f.reply_sig = ix.saturating_add(1);
                f.reply_gen = self.rules_gen;
            }
        }
        if ins.grew && f.app.is_none() && stun::parse_stream(prefix.contiguous()).is_some() {
            // STUN/TURN over TCP (RFC 8489 §6.2.2, or framed as ICE-TCP does): no TLS is coming.
            // The client's first messages are read as they come (an allocation's first try
            // usually carries no realm; its retry after the 401 does).
            let data = prefix.contiguous();
            let found = stun::stream_messages(data, MAX_TCP_STUN)
                .find_map(|msg| classify::by_stun(&self.rules, &msg));
            let whole = stun::stream_messages(data, MAX_TCP_STUN).count();
            let cx = Adopt::new(&self.rules, &mut self.apps, &self.clock, ts, out);
            if let Some(c) = found {
                f.app = Some(Box::new(c));
                f.hello_done = true;
                cx.counted(f);
            } else if whole >= MAX_TCP_STUN || ins.beyond_cap {
                f.hello_done = true;
                cx.by_address(f);
            } else {
                f.hello = Some(hello);
            }
            return;
        }
        let done = if !ins.grew {
            // The client is past the cap and the prefix still has a hole: the missing bytes
            // are not coming back in time. Stop and free the buffer.
            if ins.beyond_cap {
                self.stats.hello_gave_up += 1;
                true
            } else {
                false
            }
        } else {
            match prefix.scan_hello(&mut self.scratch) {
                HelloScan::Found(ch) => {
                    self.stats.hello_read(&ch);
                    let cx = Adopt::new(&self.rules, &mut self.apps, &self.clock, ts, out);
                    cx.adopt(f, &ch, AppSource::Sni);
                    true
                }
                HelloScan::GiveUp => {
                    self.stats.hello_gave_up += 1;
                    true
                }
                HelloScan::Pending => false,
            }
        };
        let bad = prefix.take_malformed();
        self.stats.anomaly(Anomaly::TlsMalformed, u64::from(bad));
        if done && f.tls.is_none() && prefix.hello_started() {
            self.stats.anomaly(Anomaly::HelloIncomplete, 1);
        }
        Adopt::new(&self.rules, &mut self.apps, &self.clock, ts, out).conclude(f, hello, done);
    }

    /// The server's first segment on a flow whose client's first segment matched a signature that
    /// waits for the reply: its exact size decides. Otherwise a search that already ended
    /// without a hello leaves the flow to its address now, and one still going on goes on.
    fn server_reply(&mut self, i: u32, len: usize, ts: Timestamp, out: &mut Vec<Event>) {
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        let ix = f.reply_sig - 1;
        f.reply_sig = 0;
        if f.app.is_some() || f.tls.is_some() {
            return;
        }
        // Rules reloaded since the client's segment: the index means another signature now. And
        // only the server's first data counts (its bytes so far are this segment's).
        let first = f.to_client.payload == len as u64;
        let found = (f.reply_gen == self.rules_gen && first)
            .then(|| classify::by_reply(&self.rules, ix, len))
            .flatten();
        let cx = Adopt::new(&self.rules, &mut self.apps, &self.clock, ts, out);
        match found {
            Some(c) => {
                // A server that answers before any ClientHello completed: no TLS is coming.
                if let Some(Hello::Tcp(p)) = f.hello.as_deref() {
                    if p.hello_started() {
                        self.stats.anomaly(Anomaly::HelloIncomplete, 1);
                    }
                }
                f.hello = None;
                f.hello_done = true;
                f.app = Some(Box::new(c));
                cx.counted(f);
            }
            None if f.hello_done => cx.by_address(f),
            None => {}
        }
    }

    /// Stops waiting for a server reply (the client went on without one): a search that already
    /// ended without a hello leaves the flow to its address now.
    fn reply_abandoned(&mut self, i: u32, ts: Timestamp, out: &mut Vec<Event>) {
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        f.reply_sig = 0;
        if f.app.is_none() && f.tls.is_none() {
            Adopt::new(&self.rules, &mut self.apps, &self.clock, ts, out).by_address(f);
        }
    }

    /// Reads the question of a DNS message (a query, or the response to one when only that
    /// direction is captured) and classifies the flow by the name asked for.
    /// False when the datagram is no DNS message (something else uses port 53), so the other
    /// UDP signals get their look.
    fn dns_datagram(
        &mut self,
        i: u32,
        payload: &[u8],
        ts: Timestamp,
        out: &mut Vec<Event>,
    ) -> bool {
        let Some(f) = self.table.get_mut(i) else {
            return true;
        };
        let mut name = [0u8; dns::MAX_NAME];
        let q = match dns::first_question(payload, &mut name) {
            Ok(q) => q,
            Err(e) => {
                if matches!(e, dns::DnsError::Malformed(_)) {
                    self.stats.anomaly(Anomaly::DnsMalformed, 1);
                }
                return false;
            }
        };
        f.hello_done = true;
        let name = &name[..q.name_len];
        f.app = classify::by_server_name(&self.rules, name, AppSource::DnsQuery).map(Box::new);
        Adopt::new(&self.rules, &mut self.apps, &self.clock, ts, out).counted(f);
        true
    }

    /// Looks at one of the first datagrams of a UDP flow: STUN/TURN messages (either direction),
    /// QUIC Initials and payload signatures (the client's). After [`MAX_UDP_LOOK`] datagrams
    /// without an answer, the flow is left to its address.
    fn udp_datagram(
        &mut self,
        i: u32,
        payload: &[u8],
        from_client: bool,
        ts: Timestamp,
        out: &mut Vec<Event>,
    ) {
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        f.looked = f.looked.saturating_add(1);
        // TURN ChannelData (a relayed channel) carries the relayed datagram: ICE checks through
        // a relay are STUN messages inside it.
        let stun_bytes = stun::channel_data(payload).map_or(payload, |c| c.data);
        let msg = stun::parse(stun_bytes);
        if msg.is_none() && stun::has_cookie(stun_bytes) {
            self.stats.anomaly(Anomaly::StunMalformed, 1);
        }
        let found = if let Some(msg) = msg {
            classify::by_stun(&self.rules, &msg)
        } else if from_client && (f.hello.is_some() || quic::looks_like_client_initial(payload)) {
            self.quic_datagram(i, payload, ts, out);
            return;
        } else if from_client {
            classify::by_payload(
                &self.rules,
                Transport::Udp,
                f.server().1,
                payload,
                payload.len(),
            )
        } else {
            None
        };
        let cx = Adopt::new(&self.rules, &mut self.apps, &self.clock, ts, out);
        if let Some(c) = found {
            f.app = Some(Box::new(c));
            f.hello_done = true;
            f.hello = None;
            cx.counted(f);
        } else if (f.hint.is_some() || f.looked >= MAX_UDP_LOOK) && f.hello.is_none() {
            // A datagram that is neither STUN, nor a QUIC Initial, nor a signature: a hint
            // decides at once (a call's media, a flow to an address a DNS answer gave).
            f.hello_done = true;
            cx.by_address(f);
        }
    }

    /// Gathers the CRYPTO data of QUIC client Initials and classifies when the ClientHello is
    /// complete.
    fn quic_datagram(&mut self, i: u32, payload: &[u8], ts: Timestamp, out: &mut Vec<Event>) {
        let Some(f) = self.table.get_mut(i) else {
            return;
        };
        // Taken out while it is read, so what it says can go into the flow.
        let mut hello = f.hello.take().unwrap_or_else(|| {
            Box::new(Hello::Quic {
                dcid: None,
                crypto: ClientPrefix::new(0),
                datagrams: 0,
            })
        });
        let Hello::Quic {
            dcid,
            crypto,
            datagrams,
        } = &mut *hello
        else {
            f.hello_done = true;
            return;
        };
        *datagrams = datagrams.saturating_add(1);
        let known = *dcid;
        let mut conflict = false;
        let got = quic::client_initials(
            payload,
            known.as_ref(),
            &mut self.quic_scratch,
            |off, data| {
                if let Ok(off) = u32::try_from(off) {
                    conflict |= crypto.insert(off, data).conflict;
                }
            },
        );
        self.stats
            .anomaly(Anomaly::ReassemblyConflict, u64::from(conflict));
        if matches!(
            got,
            Err(quic::QuicError::Decrypt
                | quic::QuicError::Malformed(_)
                | quic::QuicError::BadLength)
        ) {
            self.stats.anomaly(Anomaly::QuicUndecryptable, 1);
        }
        if let Ok(info) = got {
            if dcid.is_none() {
                *dcid = Some(info.dcid);
            }
        }
        let done = match crypto.scan_handshake_message() {
            HelloScan::Found(ch) => {
                self.stats.hello_read(&ch);
                let cx = Adopt::new(&self.rules, &mut self.apps, &self.clock, ts, out);
                cx.adopt(f, &ch, AppSource::QuicSni);
                true
            }
            HelloScan::GiveUp => {
                self.stats.hello_gave_up += 1;
                true
            }
            HelloScan::Pending if *datagrams >= MAX_QUIC_DATAGRAMS || dcid.is_none() => {
                self.stats.hello_gave_up += 1;
                true
            }
            HelloScan::Pending => false,
        };
        Adopt::new(&self.rules, &mut self.apps, &self.clock, ts, out).conclude(f, hello, done);
    }

    /// Moves packet time forward and ends the flows that went quiet.
    ///
    /// Every flow whose timeout has passed is ended as soon as time passes it (a look at the
    /// oldest flow of each timeout class: cheap when nothing expires), with its deterministic
    /// end time, so ended flows never come after the progress mark that covers them.
    pub fn advance(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        self.clock.observe(now);
        let now = self.clock.now();
        if now <= self.swept {
            return;
        }
        self.swept = now;
        if now >= self.next_report {
            self.next_report = now.plus_nanos(REPORT_EVERY);
            self.report_counts(out);
        }
        for class in [TimeoutClass::Closing, TimeoutClass::Udp, TimeoutClass::Tcp] {
            let timeout = self.cfg.timeout(class);
            while let Some(i) = self.table.oldest(class) {
                let Some(f) = self.table.get(i) else { break };
                let quiet_at = f.last_ts.plus_nanos(timeout);
                if quiet_at >= now {
                    break;
                }
                let reason = f.quiet_end();
                self.end(i, reason, quiet_at, out);
            }
        }
    }

    /// Ends every flow (end of input or shutdown), oldest first, handing them to `emit` in
    /// batches of at most `batch`, so ending a full table never holds a copy of it.
    ///
    /// `now` is the whole sensor's final time: a flow already past its timeout then ends as idle
    /// whether or not a sweep of this worker came to it first, so the events do not depend on how
    /// flows were spread over workers.
    pub fn finish(&mut self, now: Timestamp, batch: usize, mut emit: impl FnMut(Vec<Event>)) {
        let mut out = Vec::with_capacity(batch.min(self.table.len()));
        while let Some(mut flow) = self.table.pop_oldest() {
            let quiet_at = flow.last_ts.plus_nanos(self.cfg.timeout(flow.class()));
            let (reason, at) = if quiet_at < now {
                (flow.quiet_end(), quiet_at)
            } else if flow.closing() {
                (flow.quiet_end(), now)
            } else {
                (EndReason::Eof, now)
            };
            self.drop_hello(&mut flow);
            self.settle(&mut flow, at, &mut out);
            out.push(Event::Flow(FlowRecord { flow, reason, at }));
            if out.len() >= batch {
                emit(std::mem::replace(&mut out, Vec::with_capacity(batch)));
            }
        }
        self.report_counts(&mut out);
        if !out.is_empty() {
            emit(out);
        }
    }

    /// Frees an ending flow's handshake buffer, counting a ClientHello that started and never
    /// completed.
    fn drop_hello(&mut self, flow: &mut Flow) {
        if let Some(Hello::Tcp(p)) = flow.hello.as_deref() {
            if p.hello_started() {
                self.stats.anomaly(Anomaly::HelloIncomplete, 1);
            }
        }
        flow.hello = None;
    }

    /// Emits the per-app counts gathered since the last report.
    fn report_counts(&mut self, out: &mut Vec<Event>) {
        if self.apps.iter().all(|a| a.flows == 0 && a.bytes == 0) {
            return;
        }
        let counts = self
            .apps
            .iter_mut()
            .filter(|a| a.flows > 0 || a.bytes > 0)
            .map(|a| {
                let c = a.clone();
                a.flows = 0;
                a.bytes = 0;
                c
            })
            .collect();
        out.push(Event::Counts(counts));
    }

    fn end(&mut self, i: u32, reason: EndReason, at: Timestamp, out: &mut Vec<Event>) {
        if let Some(mut flow) = self.table.remove(i) {
            self.drop_hello(&mut flow);
            self.settle(&mut flow, at, out);
            out.push(Event::Flow(FlowRecord { flow, reason, at }));
        }
    }

    /// A flow that no server name decided is classified by its address, at the latest when it
    /// ends (a server name, when the flow had one, always wins).
    fn settle(&mut self, f: &mut Flow, at: Timestamp, out: &mut Vec<Event>) {
        let named = f.tls.as_ref().is_some_and(|t| t.trusted_sni().is_some());
        if f.app.is_none() && !named {
            Adopt {
                rules: &self.rules,
                apps: &mut self.apps,
                ts: at,
                at,
                out,
            }
            .by_address(f);
        }
    }
}

fn track_tcp(f: &mut Flow, m: &PacketMeta, from_client: bool) {
    let syn = m.flags & tcp_flags::SYN != 0;
    let ack = m.flags & tcp_flags::ACK != 0;
    if syn && !ack && from_client && !f.tcp.syn {
        f.tcp.syn = true;
        f.tcp.isn = m.seq;
        f.tcp.client_base = Some(m.seq.wrapping_add(1));
    } else if syn && ack && !from_client && f.tcp.client_base.is_none() {
        f.tcp.client_base = Some(m.ack);
    }
    if m.flags & tcp_flags::FIN != 0 {
        if from_client {
            f.tcp.fin_client = true;
        } else {
            f.tcp.fin_server = true;
        }
    }
    if m.flags & tcp_flags::RST != 0 {
        f.tcp.rst = true;
    }
}

#[cfg(test)]
mod tests;

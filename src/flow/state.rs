//! One flow's state: identity, counters, TCP facts, the handshake being gathered, and the facts
//! classification reads. Plain data; the tracker changes it.

use super::hints::Hint;
use super::key::FlowKey;
use super::reasm::ClientPrefix;
use super::table::TimeoutClass;
use crate::capture::Timestamp;
use crate::classify::{self, AppSource, Classification, Explanation, Facts, Unattributed, Unseen};
use crate::decode::{Addr, PacketMeta, Transport};
use crate::export::record::{Anomaly, CallCounts, DirStats, EndReason, Evasion, FlowView, Vlans};
use crate::proto::quic;
use crate::proto::shape::Shape;
use crate::proto::tls::TlsSummary;
use std::sync::Arc;

/// Seed of flow ids: fixed, so ids are the same in every run and at every worker count.
const FLOW_ID_SEED: u64 = 0x7069_636b_6574_0001;

/// A handshake being gathered, boxed in its flow only while it lasts.
#[derive(Debug)]
pub enum Hello {
    /// TCP: the client's first stream bytes.
    Tcp(ClientPrefix),
    /// TCP: data the client's SYN carried, read only once the server is known to have taken it
    /// (the SYN-ACK acknowledges it: TCP Fast Open), else a decoy.
    Syn(ClientPrefix),
    /// QUIC: the CRYPTO stream of the client's Initial packets, and the connection id their
    /// keys derive from (the destination of the client's first Initial).
    Quic {
        /// The original destination connection id, once the first Initial was read.
        dcid: Option<quic::ConnId>,
        /// CRYPTO data by offset.
        crypto: ClientPrefix,
        /// Client datagrams looked at.
        datagrams: u8,
        /// The connections the client's Initials opened (each by its own DCID's keys), in the
        /// order seen: one, unless decoys came (see `flow::udp`).
        attempts: Box<Attempts>,
    },
    /// TCP seen from the server's side only (a span port's one direction, or a client hello
    /// missed): the server's first stream bytes, read for its TLS 1.2 certificate.
    Server(ClientPrefix),
}

/// Most QUIC connections (client Initials with their own DCID) told apart on one flow.
pub const MAX_ATTEMPTS: usize = 4;

/// One QUIC connection a client's Initial opened: its ids, its decoy markers, the hello read.
#[derive(Debug, Default)]
pub struct Attempt {
    /// The DCID of its first Initial (its keys derive from it).
    pub dcid: quic::ConnId,
    /// The client's SCID: the DCID of the server's packets that answer it.
    pub scid: quic::ConnId,
    /// TTL (hop limit) of its first datagram (0: unknown).
    pub ttl: u8,
    /// Its first datagram's UDP checksum held (None: cannot be told).
    pub sum_ok: Option<bool>,
    /// A server packet answered it (its DCID is this attempt's SCID).
    pub answered: bool,
    /// Its ClientHello was read.
    pub read: bool,
    /// Its hello's facts while another attempt's are the flow's (`Flow::tls`).
    pub tls: Option<Box<TlsSummary>>,
}

/// The QUIC connections seen on a flow, and which one's hello is the flow's.
#[derive(Debug, Default)]
pub struct Attempts {
    /// Attempts seen, the first `n` in use.
    pub list: [Attempt; MAX_ATTEMPTS],
    /// Attempts in use.
    pub n: u8,
    /// The attempt whose CRYPTO data is being read (`Hello::Quic`'s buffer).
    pub reading: u8,
    /// The attempt whose hello is the flow's `tls`.
    pub chosen: u8,
    /// The server's datagrams and short headers seen since the flow's hello was read.
    pub watched: u8,
}

impl Attempts {
    /// The attempts in use.
    pub fn seen(&self) -> &[Attempt] {
        self.list.get(..usize::from(self.n)).unwrap_or_default()
    }

    /// The attempt with this DCID.
    pub fn by_dcid(&self, dcid: &quic::ConnId) -> Option<usize> {
        self.seen().iter().position(|a| a.dcid == *dcid)
    }
}

/// Names a flow's own bytes gave besides a ClientHello.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// The name a DNS flow asked for.
    pub dns_query: Option<Box<str>>,
    /// The name of the server's TLS 1.2 certificate that speaks for it (see
    /// `classify::certificate_name`), read when no ClientHello was.
    pub cert_name: Option<Box<str>>,
}

impl Flow {
    /// The name a DNS flow asked for.
    pub fn dns_query(&self) -> Option<&str> {
        self.names.as_deref()?.dns_query.as_deref()
    }

    /// The server certificate's name that speaks for it.
    pub fn cert_name(&self) -> Option<&str> {
        self.names.as_deref()?.cert_name.as_deref()
    }

    /// The names' box, made when a first name comes.
    pub(super) fn names_mut(&mut self) -> &mut Names {
        self.names.get_or_insert_with(Box::default)
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
    /// The highest TTL (hop limit) of each side's packets taken (client, server; 0: none).
    pub ttl: [u8; 2],
    /// Per side (client bit 0, server bit 1): [`side::SUM_GOOD`], [`side::MD5`], [`side::TS`],
    /// [`side::SHORT`].
    pub sides: u8,
    /// The newest timestamp value the client sent (with [`side::TS`]; RFC 7323 PAWS).
    pub ts: u32,
}

/// Bits of [`TcpTrack::sides`], shifted left by the side (0: client, 1: server).
pub mod side {
    /// A packet with a good checksum was seen (a side with none has its checksums offloaded
    /// on the sensor, or they cannot be verified: a bad one there is no decoy).
    pub const SUM_GOOD: u8 = 0x01;
    /// Its SYN carried the MD5 option (RFC 2385).
    pub const MD5: u8 = 0x04;
    /// It sent timestamps.
    pub const TS: u8 = 0x10;
    /// UDP: it sent a QUIC short-header (1-RTT) packet: that connection's handshake is over.
    pub const SHORT: u8 = 0x40;
}

impl TcpTrack {
    /// Whether bit `b` of [`side`] is set for side `s`.
    pub fn has(&self, b: u8, s: usize) -> bool {
        self.sides & (b << s) != 0
    }
}

/// A signature whose client side the first segment matched, waiting for the server's first
/// segment (whose size decides). Until it comes, a flow with no hello is not yet left to its
/// address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyWait {
    /// The signature's index in the rules it was found in.
    pub sig: u16,
    /// The rules generation that index belongs to (a reload renumbers signatures).
    pub rules_gen: u8,
}

/// One flow's state. Measured size: see the `flow_size` test; the handshake buffer is boxed and
/// freed once the handshake is read, the hello's summary takes a few allocations per TLS flow,
/// the app one per classified flow.
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
    /// TCP tracking; for UDP only the client's highest TTL and the checksum and short-header
    /// bits of [`TcpTrack::sides`].
    pub tcp: TcpTrack,
    /// The handshake being reassembled, until it is found.
    pub hello: Option<Box<Hello>>,
    /// No more handshake search for this flow.
    pub hello_done: bool,
    /// Fact: what the ClientHello said.
    pub tls: Option<Box<TlsSummary>>,
    /// Facts: names the flow's own bytes gave besides a ClientHello (a DNS question, a server
    /// certificate's name), boxed together: most flows have none and pay one thin pointer.
    pub names: Option<Box<Names>>,
    /// Fact: a rule match of the flow's own bytes (signature, reply size, STUN mark).
    pub marks: Option<Box<Classification>>,
    /// Fact: the shape of the client's first payload (a VPN tunnel, an unknown QUIC version).
    pub shape: Shape,
    /// Fact: what the hint caches said of the flow's endpoints when it started (a DNS answer or
    /// a call's STUN exchange).
    pub hint: Option<Box<Hint>>,
    /// The decision, once made.
    pub app: Option<Box<Classification>>,
    /// Every signal that spoke for the decision, and its confidence.
    pub explain: Option<Arc<Explanation>>,
    /// The tracker's per-app counter this flow's bytes go to (when `app` is set).
    pub(super) app_slot: u16,
    /// `flow_update` events emitted so far.
    pub updates: u32,
    /// UDP datagrams looked at for an app.
    pub(super) looked: u8,
    /// TCP: a signature waiting for the server's reply.
    pub(super) reply: Option<ReplyWait>,
    /// What the flow showed of evasion, once it showed any.
    pub evasion: Option<Box<Evasion>>,
    /// UDP: its STUN and ChannelData packets.
    pub calls: CallCounts,
}

impl Flow {
    /// Turns the flow around: the side taken for the client is the server, its counters and
    /// call counts going with it. For a flow oriented by a guess, when its bytes say otherwise.
    pub(super) fn turn_around(&mut self) {
        self.client_is_lo = !self.client_is_lo;
        std::mem::swap(&mut self.to_server, &mut self.to_client);
        self.calls.swap_sides();
    }

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
            names: None,
            marks: None,
            shape: Shape::None,
            hint: None,
            app: None,
            explain: None,
            app_slot: 0,
            updates: 0,
            looked: 0,
            reply: None,
            evasion: None,
            calls: CallCounts::default(),
        }
    }

    /// The client endpoint.
    pub fn client(&self) -> (Addr, u16) {
        if self.client_is_lo {
            self.key.lo
        } else {
            self.key.hi
        }
    }

    /// The server endpoint.
    pub fn server(&self) -> (Addr, u16) {
        if self.client_is_lo {
            self.key.hi
        } else {
            self.key.lo
        }
    }

    /// The facts classification reads.
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            marks: self.marks.as_deref(),
            tls: self.tls.as_deref(),
            dns_query: self.dns_query().map(str::as_bytes),
            cert_name: self.cert_name().map(str::as_bytes),
            hint: self.hint.as_deref(),
            server: self.server().0.ip(),
            client: self.client().0.ip(),
            client_known: self.tcp.syn,
            server_port: self.server().1,
        }
    }

    /// What the flow showed besides its facts, for the reason it stayed unattributed.
    pub fn unseen(&self) -> Unseen {
        Unseen {
            transport: self.key.transport,
            server_port: self.server().1,
            shape: self.shape,
            one_way: self.to_server.packets == 0 || self.to_client.packets == 0,
        }
    }

    /// Why the flow has no app (none when it has one).
    pub fn unattributed(&self, rules: &crate::rules::CompiledRules) -> Option<Unattributed> {
        if self.app.is_some() {
            return None;
        }
        Some(classify::unattributed(&self.facts(), &self.unseen(), rules))
    }

    /// The DNS name behind a `dns_answer` decision.
    fn dns_name(&self) -> Option<Arc<str>> {
        let app = self.app.as_deref()?;
        if app.source != AppSource::DnsAnswer {
            return None;
        }
        self.hint.as_deref()?.name.clone()
    }

    /// The flow as export sees it now (a copy: the flow goes on).
    pub fn view(&self) -> FlowView {
        FlowView {
            id: self.id,
            transport: self.key.transport,
            client: self.client(),
            server: self.server(),
            vlans: Vlans::new(self.key.vlans, self.key.nvlan),
            segment: self.key.segment,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            to_server: self.to_server,
            to_client: self.to_client,
            syn_seen: self.tcp.syn,
            tls: self.tls.clone(),
            cert_name: self.cert_name().map(Box::from),
            app: self.app.clone(),
            explain: self.explain.clone(),
            dns_name: self.dns_name(),
            evasion: self.evasion.clone(),
            dns_query: self.dns_query().map(Box::from),
            unattributed: None,
            calls: self.calls,
        }
    }

    /// The flow as export sees it at its end (moved out: the flow is gone).
    pub fn into_view(self) -> FlowView {
        let dns_name = self.dns_name();
        let (client, server) = (self.client(), self.server());
        let names = self.names.map(|n| *n).unwrap_or_default();
        FlowView {
            id: self.id,
            transport: self.key.transport,
            client,
            server,
            vlans: Vlans::new(self.key.vlans, self.key.nvlan),
            segment: self.key.segment,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            to_server: self.to_server,
            to_client: self.to_client,
            syn_seen: self.tcp.syn,
            tls: self.tls,
            cert_name: names.cert_name,
            app: self.app,
            explain: self.explain,
            dns_name,
            evasion: self.evasion,
            dns_query: names.dns_query,
            unattributed: None,
            calls: self.calls,
        }
    }

    /// Notes an anomaly on the flow's own record.
    pub(super) fn mark(&mut self, a: Anomaly) {
        self.evasion.get_or_insert_with(Box::default).mark(a);
    }

    /// Keeps a server name the flow carried (a decoy's, or a conflicting copy's).
    pub(super) fn candidate(&mut self, name: &[u8]) {
        self.evasion
            .get_or_insert_with(Box::default)
            .candidate(name);
    }

    pub(super) fn closing(&self) -> bool {
        self.tcp.rst || (self.tcp.fin_client && self.tcp.fin_server)
    }

    pub(super) fn class(&self) -> TimeoutClass {
        match self.key.transport {
            Transport::Udp => TimeoutClass::Udp,
            Transport::Tcp if self.closing() => TimeoutClass::Closing,
            Transport::Tcp => TimeoutClass::Tcp,
        }
    }

    /// How this flow ends if it ends now for lack of packets.
    pub(super) fn quiet_end(&self) -> EndReason {
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
    pub(super) fn is_new_connection(&self, m: &PacketMeta, from_client: bool) -> bool {
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

//! Frame decoding: link layer (Ethernet with up to 3 VLAN tags, Linux SLL/SLL2, raw IP, BSD
//! loopback), IPv4/IPv6 with options and extension headers, tunnels (GRE, ERSPAN I–III, VXLAN,
//! IP-in-IP, MPLS, GTP-U; nested up to [`MAX_TUNNEL_DEPTH`]), TCP and UDP — read through
//! etherparse's header slices and a few hand-checked fixed fields, so snaplen-truncated frames
//! are used as far as they go. IPv4 and IPv6 fragments are reassembled by the reader's
//! [`Decoder`] ([`frag`]), before the flow key is known.
//!
//! Zero-copy: the result is a small `Copy` [`PacketMeta`] whose payload is a range into the frame.
//! [`decode`] never allocates and never panics on any input; whatever is not TCP/UDP over IP is a
//! [`Skip`] kind, counted by the caller.
//!
//! # Tunnels and the flow key
//!
//! A tunnelled packet is the flow of its innermost IP packet: addresses, ports and payload come
//! from there. The outer endpoints are not in the key (a routed tunnel's two directions have them
//! swapped). Two things from the outer layers are:
//!
//! - the VLAN ids of the innermost Ethernet header (for IP-in-IP, GRE, MPLS and GTP-U that is the
//!   outer frame's; for VXLAN, Ethernet over GRE and ERSPAN the mirrored or bridged frame's);
//! - the innermost [`Segment`] a tunnel names: a VXLAN VNI, an NVGRE VSID or an ERSPAN session
//!   id. Mirrors and overlays from several sites often reuse private inner addresses; their
//!   flows stay apart by segment. GTP-U TEIDs (one per direction) and the keys of GRE carrying IP
//!   (which may differ per direction) are not used.
//!
//! Which tunnels a packet went through is counted per kind ([`TunnelKind`]), not kept per flow.

pub mod frag;
pub(crate) mod tunnel;

use crate::capture::{LinkType, Timestamp};
use etherparse::{
    IpAuthHeaderSlice, IpNumber, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice,
    Ipv6RawExtHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};
use frag::{FragKey, Reassembler, ReassemblyStats};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tunnel::{Decap, ETH_MPLS, ETH_MPLS_MC};
pub use tunnel::{GTP_U_PORT, MAX_MPLS_LABELS, VXLAN_LINUX_PORT, VXLAN_PORT};

/// An IP address stored as 16 bytes (IPv4 mapped into `::ffff:0:0/96`), cheap to hash and compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    /// The address in std form (IPv4-mapped addresses become IPv4 again).
    pub fn ip(self) -> IpAddr {
        Ipv6Addr::from(self.0).to_canonical()
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Addr(v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => Addr(v6.octets()),
        }
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(ip: Ipv4Addr) -> Self {
        Addr::v4(ip.octets())
    }
}

impl Addr {
    /// An IPv4 address in its mapped form, built as one 128-bit value: the per-packet path then
    /// stores it whole, and a later copy reads what one store wrote.
    #[inline]
    fn v4(octets: [u8; 4]) -> Self {
        let mapped = 0xffff_0000_0000u128 | u128::from(u32::from_be_bytes(octets));
        Addr(mapped.to_be_bytes())
    }
}

/// Transport protocol of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Transport {
    /// Lower-case name as used in events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// TCP flag bits as in the header's low byte.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
}

/// Most VLAN tags kept per packet.
pub const MAX_VLANS: usize = 3;

/// Most tunnels opened for one packet; one more nested inside is [`Skip::TunnelDepth`].
pub const MAX_TUNNEL_DEPTH: u8 = 4;

/// A virtual network named by a tunnel header: a VXLAN VNI, an NVGRE VSID or an ERSPAN session
/// id, tagged with its kind so equal numbers of different kinds stay apart. Part of the flow key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Segment(u32);

impl Segment {
    /// No segment (the packet went through no tunnel that names one).
    pub const NONE: Segment = Segment(0);
    const VXLAN: u32 = 1;
    const NVGRE: u32 = 2;
    const ERSPAN: u32 = 3;

    /// A VXLAN network identifier (24 bits).
    pub fn vxlan(vni: u32) -> Self {
        Segment(Self::VXLAN << 24 | vni & 0x00FF_FFFF)
    }

    /// An NVGRE virtual subnet id (the upper 24 bits of the GRE key).
    pub fn nvgre(vsid: u32) -> Self {
        Segment(Self::NVGRE << 24 | vsid & 0x00FF_FFFF)
    }

    /// An ERSPAN session id (10 bits).
    pub fn erspan(session: u16) -> Self {
        Segment(Self::ERSPAN << 24 | u32::from(session & 0x03FF))
    }

    /// Whether this is [`Segment::NONE`].
    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The kind as a lower-case name (`"vxlan"`, `"nvgre"`, `"erspan"`), None for no segment.
    pub fn kind(self) -> Option<&'static str> {
        match self.0 >> 24 {
            Self::VXLAN => Some("vxlan"),
            Self::NVGRE => Some("nvgre"),
            Self::ERSPAN => Some("erspan"),
            _ => None,
        }
    }

    /// The number within its kind.
    pub fn id(self) -> u32 {
        self.0 & 0x00FF_FFFF
    }

    /// Kind and number in one word, for hashing.
    pub fn to_bits(self) -> u32 {
        self.0
    }
}

/// What one frame says about its flow: a `Copy` summary with the payload as a range into the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// Capture timestamp.
    pub ts: Timestamp,
    /// Frame length on the wire (for a reassembled datagram, its fragments' lengths summed).
    pub wire_len: u32,
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TCP or UDP.
    pub transport: Transport,
    /// VLAN ids of the innermost Ethernet header, outermost first; `nvlan` of them are valid.
    pub vlans: [u16; MAX_VLANS],
    /// Number of VLAN tags.
    pub nvlan: u8,
    /// The virtual network of the innermost tunnel that names one.
    pub segment: Segment,
    /// TCP flags (0 for UDP).
    pub flags: u8,
    /// TCP sequence number (0 for UDP).
    pub seq: u32,
    /// TCP acknowledgement number (0 for UDP).
    pub ack: u32,
    /// Offset of the transport payload in the frame.
    pub payload_off: u32,
    /// Length of the captured transport payload.
    pub payload_len: u32,
}

impl PacketMeta {
    /// The transport payload within `frame` (the bytes this meta was decoded from).
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        let start = self.payload_off as usize;
        frame
            .get(start..start + self.payload_len as usize)
            .unwrap_or(&[])
    }
}

/// A kind of tunnel, as counted in `picket_tunnel_packets_total{kind}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// GRE carrying IP, Ethernet (including NVGRE) or MPLS.
    Gre,
    /// ERSPAN type I, II or III (over GRE).
    Erspan,
    /// VXLAN (UDP port 4789 or 8472).
    Vxlan,
    /// IPv4 or IPv6 directly inside IPv4 or IPv6 (IP protocols 4 and 41).
    IpIp,
    /// An MPLS label stack.
    Mpls,
    /// GTP-U (UDP port 2152).
    GtpU,
}

impl TunnelKind {
    /// All kinds, in the order summaries list them.
    pub const ALL: [TunnelKind; 6] = [
        TunnelKind::Gre,
        TunnelKind::Erspan,
        TunnelKind::Vxlan,
        TunnelKind::IpIp,
        TunnelKind::Mpls,
        TunnelKind::GtpU,
    ];

    /// Dense index into [`TunnelKind::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable lower-case name, used as a metric label and in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelKind::Gre => "gre",
            TunnelKind::Erspan => "erspan",
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::IpIp => "ipip",
            TunnelKind::Mpls => "mpls",
            TunnelKind::GtpU => "gtpu",
        }
    }
}

impl fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a frame gave no flow packet: skipped kinds and decode errors, each counted by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Skip {
    /// A link type this sensor does not decode.
    UnsupportedLink,
    /// An ether type other than IP (ARP, LLDP, ...), also inside a tunnel.
    NotIp,
    /// An IP protocol other than TCP, UDP and the tunnels (ICMP, ESP, ...).
    OtherTransport,
    /// An IP fragment: held for reassembly, or dropped by it (the fragment that completes a
    /// datagram is counted as the datagram instead).
    Fragment,
    /// The frame ended inside a header of this layer.
    Truncated(DecodeLayer),
    /// A header of this layer had an invalid field.
    Malformed(DecodeLayer),
    /// More tunnels nested than [`MAX_TUNNEL_DEPTH`].
    TunnelDepth,
}

/// The layer a decode error happened in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeLayer {
    /// Ethernet, VLAN, SLL or loopback header.
    Link,
    /// IPv4 or IPv6 header, options or extension headers.
    Ip,
    /// TCP header.
    Tcp,
    /// UDP header.
    Udp,
    /// A tunnel header (GRE, ERSPAN, MPLS, IP-in-IP).
    Tunnel,
}

impl Skip {
    /// All kinds, in the order summaries list them.
    pub const ALL: [Skip; 15] = [
        Skip::UnsupportedLink,
        Skip::NotIp,
        Skip::OtherTransport,
        Skip::Fragment,
        Skip::Truncated(DecodeLayer::Link),
        Skip::Truncated(DecodeLayer::Ip),
        Skip::Truncated(DecodeLayer::Tcp),
        Skip::Truncated(DecodeLayer::Udp),
        Skip::Malformed(DecodeLayer::Link),
        Skip::Malformed(DecodeLayer::Ip),
        Skip::Malformed(DecodeLayer::Tcp),
        Skip::Malformed(DecodeLayer::Udp),
        Skip::Truncated(DecodeLayer::Tunnel),
        Skip::Malformed(DecodeLayer::Tunnel),
        Skip::TunnelDepth,
    ];

    /// Dense index into [`Skip::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        use DecodeLayer::*;
        match self {
            Skip::UnsupportedLink => 0,
            Skip::NotIp => 1,
            Skip::OtherTransport => 2,
            Skip::Fragment => 3,
            Skip::Truncated(Link) => 4,
            Skip::Truncated(Ip) => 5,
            Skip::Truncated(Tcp) => 6,
            Skip::Truncated(Udp) => 7,
            Skip::Malformed(Link) => 8,
            Skip::Malformed(Ip) => 9,
            Skip::Malformed(Tcp) => 10,
            Skip::Malformed(Udp) => 11,
            Skip::Truncated(Tunnel) => 12,
            Skip::Malformed(Tunnel) => 13,
            Skip::TunnelDepth => 14,
        }
    }

    /// Whether this kind is damage (truncated, malformed, nested too deep) rather than traffic we
    /// do not track.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Skip::Truncated(_) | Skip::Malformed(_) | Skip::TunnelDepth
        )
    }

    /// A stable snake_case name, used as a metric label and in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::UnsupportedLink => "unsupported_link",
            Skip::NotIp => "not_ip",
            Skip::OtherTransport => "other_transport",
            Skip::Fragment => "ip_fragment",
            Skip::Truncated(DecodeLayer::Link) => "truncated_link",
            Skip::Truncated(DecodeLayer::Ip) => "truncated_ip",
            Skip::Truncated(DecodeLayer::Tcp) => "truncated_tcp",
            Skip::Truncated(DecodeLayer::Udp) => "truncated_udp",
            Skip::Truncated(DecodeLayer::Tunnel) => "truncated_tunnel",
            Skip::Malformed(DecodeLayer::Link) => "malformed_link",
            Skip::Malformed(DecodeLayer::Ip) => "malformed_ip",
            Skip::Malformed(DecodeLayer::Tcp) => "malformed_tcp",
            Skip::Malformed(DecodeLayer::Udp) => "malformed_udp",
            Skip::Malformed(DecodeLayer::Tunnel) => "malformed_tunnel",
            Skip::TunnelDepth => "tunnel_too_deep",
        }
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88A8;
const ETH_QINQ_OLD: u16 = 0x9100;
/// PPPoE session stage (RFC 2516): broadband access links, often behind QinQ.
const ETH_PPPOE_SESSION: u16 = 0x8864;
/// PPP protocol numbers of IPv4 and IPv6 (RFC 1332, RFC 5072).
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const ETH_LEN: usize = 14;
const SLL_LEN: usize = 16;
const SLL2_LEN: usize = 20;

/// Decodes one frame into its flow-relevant summary. Stateless: a fragment is
/// [`Skip::Fragment`] (the reader's [`Decoder`] reassembles them).
///
/// The link layer is a few fixed fields, read here; IPv4, IPv6 (with its extension headers), TCP
/// and UDP headers are checked and read through etherparse's header slices, which borrow the
/// frame and copy nothing. A frame cut short by the snaplen keeps the payload it has.
pub fn decode(
    link: LinkType,
    ts: Timestamp,
    wire_len: u32,
    data: &[u8],
) -> Result<PacketMeta, Skip> {
    let mut cx = Ctx::default();
    let wire_len = wire_len.max(data.len() as u32);
    match walk(first_layer(link, data)?, data, ts, wire_len, &mut cx)? {
        Walked::Packet(m) => Ok(m),
        Walked::Fragment(_) => Err(Skip::Fragment),
    }
}

/// What [`decode_traced`] saw on the way: the tunnels it opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Trace {
    /// Tunnels opened (at most [`MAX_TUNNEL_DEPTH`]).
    pub depth: u8,
    /// Kinds of tunnels opened, one bit per [`TunnelKind::index`].
    pub tunnels: u8,
    /// The innermost segment a tunnel named.
    pub segment: Segment,
}

/// [`decode`], also returning how deep it went, for the fuzz targets' checks (the packet path
/// calls [`decode`] or the [`Decoder`]).
pub(crate) fn decode_traced(
    link: LinkType,
    ts: Timestamp,
    wire_len: u32,
    data: &[u8],
) -> (Result<PacketMeta, Skip>, Trace) {
    let mut cx = Ctx::default();
    let wire_len = wire_len.max(data.len() as u32);
    let walked = first_layer(link, data).and_then(|n| walk(n, data, ts, wire_len, &mut cx));
    let trace = Trace {
        depth: cx.depth,
        tunnels: cx.tunnels,
        segment: cx.segment,
    };
    let got = match walked {
        Ok(Walked::Packet(m)) => Ok(m),
        Ok(Walked::Fragment(_)) => Err(Skip::Fragment),
        Err(e) => Err(e),
    };
    (got, trace)
}

/// What the reader's [`Decoder`] made of a frame.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// A flow packet whose payload lies in the frame it was decoded from.
    Frame(PacketMeta),
    /// A datagram reassembled from fragments (this frame held the last missing one). Its payload
    /// lies in `frame`, the decoder's scratch buffer, valid until the next call: the caller
    /// copies it on (the dispatcher into the batch bound for the flow's worker).
    Reassembled {
        /// The datagram's summary; its payload offset is into `frame`.
        meta: PacketMeta,
        /// The reassembled IP payload.
        frame: &'a [u8],
    },
}

/// What a reader's [`Decoder`] counted: tunnels per kind and the reassembly's outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Packets that went through at least one tunnel of a kind, by [`TunnelKind::index`]
    /// (frames, and datagrams for tunnels found inside a reassembled one).
    pub tunnels: [u64; TunnelKind::ALL.len()],
    /// Fragment reassembly.
    pub reassembly: ReassemblyStats,
}

/// The reader thread's decoder: [`decode`], plus reassembly of IP fragments and counters of the
/// tunnels seen. Owned by the one thread that reads packets; plain counters, no locks.
///
/// Ordinary frames cost what [`decode`] costs and allocate nothing; the reassembly's memory is
/// taken on the first fragment and bounded by the caps in [`frag`].
#[derive(Debug, Default)]
pub struct Decoder {
    table: Reassembler,
    /// Where a completed datagram is assembled.
    scratch: Vec<u8>,
    tunnels: [u64; TunnelKind::ALL.len()],
}

impl Decoder {
    /// A decoder with nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one frame; a fragment goes into reassembly and, when it completes a datagram, the
    /// datagram comes out as [`Decoded::Reassembled`].
    #[inline]
    pub fn decode<'s>(
        &'s mut self,
        link: LinkType,
        ts: Timestamp,
        wire_len: u32,
        data: &[u8],
    ) -> Result<Decoded<'s>, Skip> {
        let wire_len = wire_len.max(data.len() as u32);
        let mut cx = Ctx::default();
        let walked = first_layer(link, data).and_then(|n| walk(n, data, ts, wire_len, &mut cx));
        count_tunnels(&mut self.tunnels, cx.tunnels);
        match walked? {
            Walked::Packet(m) => Ok(Decoded::Frame(m)),
            Walked::Fragment(f) => self.reassemble(&f, cx, ts, wire_len),
        }
    }

    /// Adds a fragment; decodes the datagram it completes. One level of fragments found inside a
    /// reassembled datagram (a fragmented packet in a fragmented tunnel) is reassembled too.
    fn reassemble(
        &mut self,
        f: &frag::Frag<'_>,
        cx: Ctx,
        ts: Timestamp,
        wire_len: u32,
    ) -> Result<Decoded<'_>, Skip> {
        let slot = self
            .table
            .add(FragKey::new(f, &cx), f, ts, wire_len)
            .ok_or(Skip::Fragment)?;
        let mut done = self.table.emit(slot, &mut self.scratch);
        let mut inner_round = false;
        let mut base = cx;
        let meta = loop {
            let frame = self.scratch.as_slice();
            let mut icx = Ctx { tunnels: 0, ..base };
            let walked = walk(
                Next::Upper(done.upper(frame)),
                frame,
                ts,
                done.wire,
                &mut icx,
            );
            count_tunnels(&mut self.tunnels, icx.tunnels);
            match walked? {
                Walked::Packet(m) => break m,
                Walked::Fragment(_) if inner_round => return Err(Skip::Malformed(DecodeLayer::Ip)),
                Walked::Fragment(inner) => {
                    let slot = self
                        .table
                        .add(FragKey::new(&inner, &icx), &inner, ts, done.wire)
                        .ok_or(Skip::Fragment)?;
                    done = self.table.emit(slot, &mut self.scratch);
                    inner_round = true;
                    base = icx;
                }
            }
        };
        Ok(Decoded::Reassembled {
            meta,
            frame: &self.scratch,
        })
    }

    /// Ends reassemblies that timed out by `now` (packet time). Fragments do this as they come;
    /// the reader calls it now and then so a quiet spell frees memory too.
    pub fn expire(&mut self, now: Timestamp) {
        self.table.expire(now);
    }

    /// Checks the reassembly's bookkeeping and caps, panicking on a mismatch (see
    /// [`frag::MAX_DATAGRAMS`] and the other caps); `expired`: the time of the last
    /// [`Decoder::expire`] just before. For the fuzz target.
    pub(crate) fn assert_consistent(&self, expired: Option<Timestamp>) {
        self.table.assert_consistent(expired);
        assert!(
            self.scratch.capacity() <= frag::MAX_DATAGRAM_BYTES,
            "scratch grew to {}",
            self.scratch.capacity()
        );
    }

    /// The counters so far.
    pub fn stats(&self) -> DecodeStats {
        let mut reassembly = self.table.stats();
        reassembly.held_bytes += self.scratch.capacity() as u64;
        DecodeStats {
            tunnels: self.tunnels,
            reassembly,
        }
    }
}

fn count_tunnels(counts: &mut [u64; TunnelKind::ALL.len()], mask: u8) {
    if mask != 0 {
        for (i, c) in counts.iter_mut().enumerate() {
            *c += u64::from(mask >> i & 1);
        }
    }
}

/// What the layers walked so far say about the flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ctx {
    /// VLAN ids of the innermost Ethernet header so far.
    vlans: [u16; MAX_VLANS],
    /// Number of them.
    nvlan: u8,
    /// The innermost segment so far.
    segment: Segment,
    /// Tunnels opened.
    depth: u8,
    /// Kinds of tunnels opened, one bit per [`TunnelKind::index`].
    tunnels: u8,
}

impl Ctx {
    /// Opens a tunnel: checks the depth, counts the kind, takes its segment.
    fn enter(&mut self, d: &Decap<'_>) -> Result<(), Skip> {
        if self.depth >= MAX_TUNNEL_DEPTH {
            return Err(Skip::TunnelDepth);
        }
        self.depth += 1;
        self.tunnels |= 1 << d.kind.index();
        if let Some(s) = d.segment {
            self.segment = s;
        }
        Ok(())
    }
}

/// A layer still to decode, borrowed from the frame (or a reassembled datagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next<'a> {
    /// An Ethernet frame, from its destination MAC.
    Ether(&'a [u8]),
    /// What follows an ether type field (of Ethernet, SLL, a VLAN tag): the type and the rest.
    Type(u16, &'a [u8]),
    /// An IPv4 or IPv6 packet.
    Ip(&'a [u8]),
    /// An MPLS label stack.
    Mpls(&'a [u8]),
    /// An IP packet's payload (IPv6 extension headers not yet walked).
    Upper(Upper<'a>),
}

/// An IP packet's addresses, protocol and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Upper<'a> {
    /// IPv6 (extension headers may follow).
    v6: bool,
    src: Addr,
    dst: Addr,
    proto: IpNumber,
    body: &'a [u8],
}

/// Where a walk ended.
enum Walked<'a> {
    /// A TCP or UDP packet.
    Packet(PacketMeta),
    /// An IP fragment, for reassembly.
    Fragment(frag::Frag<'a>),
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The first layer of a frame of this link type.
fn first_layer(link: LinkType, data: &[u8]) -> Result<Next<'_>, Skip> {
    let trunc = Skip::Truncated(DecodeLayer::Link);
    Ok(match link {
        LinkType::Ethernet => Next::Ether(data),
        LinkType::LinuxSll => Next::Type(
            be16(data, 14)
                .filter(|_| data.len() >= SLL_LEN)
                .ok_or(trunc)?,
            &data[SLL_LEN..],
        ),
        LinkType::LinuxSll2 => Next::Type(
            be16(data, 0)
                .filter(|_| data.len() >= SLL2_LEN)
                .ok_or(trunc)?,
            &data[SLL2_LEN..],
        ),
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => Next::Ip(data),
        LinkType::Null | LinkType::Loop => {
            let hdr = data.get(..4).ok_or(trunc)?;
            let le = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
            let be = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
            // AF_INET is 2 everywhere; AF_INET6 is 10 (Linux), 24 (NetBSD/OpenBSD), 28 (FreeBSD),
            // 30 (macOS). The writer's byte order is unknown for `Null`, so accept either.
            let ether_type = match if le < 0x100 { le } else { be } {
                2 => ETH_IPV4,
                10 | 24 | 28 | 30 => ETH_IPV6,
                _ => return Err(Skip::NotIp),
            };
            Next::Type(ether_type, &data[4..])
        }
        LinkType::Other(_) => return Err(Skip::UnsupportedLink),
    })
}

/// Walks layers from `next` to a TCP/UDP packet or an IP fragment, opening tunnels on the way.
/// Every slice lies in `frame`, which payload offsets are taken against.
///
/// Straight-line for the common case (link, IP, TCP/UDP); the loop turns once per tunnel.
#[inline]
fn walk<'a>(
    mut next: Next<'a>,
    frame: &'a [u8],
    ts: Timestamp,
    wire_len: u32,
    cx: &mut Ctx,
) -> Result<Walked<'a>, Skip> {
    // The capture kept the whole frame: a length field that runs past it is damage, not the
    // snaplen.
    let whole = wire_len as usize <= frame.len();
    loop {
        let ip = match next {
            Next::Upper(u) => Err(u),
            Next::Ip(b) => Ok(b),
            Next::Ether(_) | Next::Type(..) | Next::Mpls(_) => Ok(link(next, cx)?),
        };
        let mut u = match ip {
            Err(u) => u,
            Ok(b) => {
                if whole && ip_length_overruns(b) {
                    return Err(Skip::Malformed(DecodeLayer::Ip));
                }
                match ip_header(b)? {
                    IpHeader::Whole(u) => u,
                    IpHeader::Fragment(f) => return Ok(Walked::Fragment(f)),
                }
            }
        };
        if u.v6 && is_ipv6_ext(u.proto) {
            if let Some(f) = ipv6_exts(&mut u)? {
                return Ok(Walked::Fragment(f));
            }
        }
        let d = match u.proto {
            IpNumber::TCP => return tcp(&u, frame, ts, wire_len, cx).map(Walked::Packet),
            IpNumber::UDP => {
                if whole && be16(u.body, 4).is_some_and(|l| usize::from(l) > u.body.len()) {
                    return Err(Skip::Malformed(DecodeLayer::Udp));
                }
                let (sport, dport, body) = udp(u.body)?;
                let decap = match (sport, dport) {
                    (_, VXLAN_PORT | VXLAN_LINUX_PORT) => tunnel::vxlan(body),
                    (GTP_U_PORT, _) | (_, GTP_U_PORT) => tunnel::gtp_u(body),
                    _ => None,
                };
                match decap {
                    Some(d) => d,
                    None => {
                        let l4 = L4 {
                            sport,
                            dport,
                            transport: Transport::Udp,
                            flags: 0,
                            seq: 0,
                            ack: 0,
                        };
                        return Ok(Walked::Packet(meta(&u, l4, body, frame, ts, wire_len, cx)));
                    }
                }
            }
            IpNumber::GRE => tunnel::gre(u.body)?,
            IpNumber::IPV4 | IpNumber::IPV6 => {
                let want = if u.proto == IpNumber::IPV4 { 4 } else { 6 };
                match u.body.first().map(|b| b >> 4) {
                    Some(v) if v == want => {}
                    Some(_) => return Err(Skip::Malformed(DecodeLayer::Tunnel)),
                    None => return Err(Skip::Truncated(DecodeLayer::Tunnel)),
                }
                Decap {
                    kind: TunnelKind::IpIp,
                    next: Next::Ip(u.body),
                    segment: None,
                }
            }
            _ => return Err(Skip::OtherTransport),
        };
        cx.enter(&d)?;
        next = d.next;
    }
}

/// Walks link layers (Ethernet, VLAN tags, MPLS label stacks) down to an IP packet.
#[inline]
fn link<'a>(next: Next<'a>, cx: &mut Ctx) -> Result<&'a [u8], Skip> {
    let trunc = Skip::Truncated(DecodeLayer::Link);
    let ether = |b: &'a [u8], cx: &mut Ctx| -> Result<(u16, &'a [u8]), Skip> {
        let t = be16(b, 12).ok_or(trunc)?;
        cx.vlans = [0; MAX_VLANS];
        cx.nvlan = 0;
        Ok((t, &b[ETH_LEN..]))
    };
    let (mut t, mut rest) = match next {
        Next::Ether(b) => ether(b, cx)?,
        Next::Type(t, b) => (t, b),
        Next::Mpls(b) => (ETH_MPLS, b),
        Next::Ip(b) => return Ok(b),
        Next::Upper(u) => return Ok(u.body), // not reached: the walk reads these itself
    };
    loop {
        match t {
            ETH_IPV4 | ETH_IPV6 => return Ok(rest),
            ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD => {
                let tci = be16(rest, 0).ok_or(trunc)?;
                t = be16(rest, 2).ok_or(trunc)?;
                if usize::from(cx.nvlan) == MAX_VLANS {
                    return Err(Skip::Malformed(DecodeLayer::Link)); // more tags than any real network uses
                }
                cx.vlans[usize::from(cx.nvlan)] = tci & 0x0FFF;
                cx.nvlan += 1;
                rest = &rest[4..];
            }
            ETH_PPPOE_SESSION => {
                // Version/type 0x11, code 0 (session data), session id, length; then the PPP
                // protocol field.
                let hdr = rest.get(..8).ok_or(trunc)?;
                if hdr[0] != 0x11 || hdr[1] != 0 {
                    return Err(Skip::Malformed(DecodeLayer::Link));
                }
                t = match u16::from_be_bytes([hdr[6], hdr[7]]) {
                    PPP_IPV4 => ETH_IPV4,
                    PPP_IPV6 => ETH_IPV6,
                    _ => return Err(Skip::NotIp), // LCP, IPCP, CHAP...: control, no flows
                };
                rest = &rest[8..];
            }
            ETH_MPLS | ETH_MPLS_MC => {
                let inner = tunnel::mpls(rest)?;
                cx.enter(&Decap {
                    kind: TunnelKind::Mpls,
                    next: inner,
                    segment: None,
                })?;
                match inner {
                    Next::Ether(b) => (t, rest) = ether(b, cx)?,
                    Next::Ip(b) => return Ok(b),
                    _ => return Err(Skip::NotIp), // mpls() gives only these two
                }
            }
            _ => return Err(Skip::NotIp),
        }
    }
}

/// Whether an IP header's length field (IPv4 total length, IPv6 payload length) claims more bytes
/// than `ip` holds. Zero lengths (segmentation offload, jumbograms) claim nothing.
fn ip_length_overruns(ip: &[u8]) -> bool {
    match ip.first().map(|b| b >> 4) {
        // Only past a whole fixed header: a frame cut inside it is truncated, as before.
        Some(4) if ip.len() >= 20 => be16(ip, 2).is_some_and(|t| usize::from(t) > ip.len()),
        Some(6) if ip.len() >= 40 => be16(ip, 4).is_some_and(|p| 40 + usize::from(p) > ip.len()),
        _ => false,
    }
}

/// An IP header read: the whole packet's payload, or a fragment of it.
enum IpHeader<'a> {
    Whole(Upper<'a>),
    Fragment(frag::Frag<'a>),
}

/// Reads an IPv4 or IPv6 header (not the IPv6 extension headers). Inlined: returned through
/// memory, its addresses would be read back in pieces other than they were written, and the
/// store-forwarding stalls cost more than the rest of decoding.
#[inline(always)]
fn ip_header(ip: &[u8]) -> Result<IpHeader<'_>, Skip> {
    use etherparse::err::{ipv4, ipv6};
    match ip.first().map(|b| b >> 4) {
        Some(4) => {
            let h = Ipv4HeaderSlice::from_slice(ip).map_err(|e| match e {
                ipv4::HeaderSliceError::Len(_) => Skip::Truncated(DecodeLayer::Ip),
                ipv4::HeaderSliceError::Content(_) => Skip::Malformed(DecodeLayer::Ip),
            })?;
            let hlen = h.slice().len();
            // A total length of 0 comes from segmentation offload (TSO/LRO) on the capturing
            // host: the frame's own length is the truth then.
            let total = match usize::from(h.total_len()) {
                0 => ip.len(),
                t => t,
            };
            if total < hlen {
                return Err(Skip::Malformed(DecodeLayer::Ip));
            }
            let src = Addr::v4(h.source());
            let dst = Addr::v4(h.destination());
            if h.is_fragmenting_payload() {
                // A fragment cut by the snaplen cannot be reassembled.
                let data = ip
                    .get(hlen..total)
                    .ok_or(Skip::Truncated(DecodeLayer::Ip))?;
                return Ok(IpHeader::Fragment(frag::Frag {
                    v6: false,
                    src,
                    dst,
                    id: u32::from(h.identification()),
                    proto: h.protocol(),
                    offset: u32::from(h.fragments_offset().value()) * 8,
                    more: h.more_fragments(),
                    data,
                }));
            }
            // Lax: a total length beyond the captured bytes (snaplen) keeps what was captured;
            // Ethernet padding after the total length is not payload.
            let end = total.min(ip.len());
            Ok(IpHeader::Whole(Upper {
                v6: false,
                src,
                dst,
                proto: h.protocol(),
                body: &ip[hlen..end],
            }))
        }
        Some(6) => {
            let h = Ipv6HeaderSlice::from_slice(ip).map_err(|e| match e {
                ipv6::HeaderSliceError::Len(_) => Skip::Truncated(DecodeLayer::Ip),
                ipv6::HeaderSliceError::Content(_) => Skip::Malformed(DecodeLayer::Ip),
            })?;
            let plen = usize::from(h.payload_length());
            let body = &ip[40..];
            let body = if plen == 0 {
                body
            } else {
                &body[..plen.min(body.len())]
            };
            Ok(IpHeader::Whole(Upper {
                v6: true,
                src: Addr(h.source()),
                dst: Addr(h.destination()),
                proto: h.next_header(),
                body,
            }))
        }
        Some(_) => Err(Skip::Malformed(DecodeLayer::Ip)),
        None => Err(Skip::Truncated(DecodeLayer::Ip)),
    }
}

/// Whether an IPv6 next-header value is an extension header walked here.
fn is_ipv6_ext(n: IpNumber) -> bool {
    matches!(
        n,
        IpNumber::IPV6_HEADER_HOP_BY_HOP
            | IpNumber::IPV6_ROUTE_HEADER
            | IpNumber::IPV6_FRAGMENTATION_HEADER
            | IpNumber::IPV6_DESTINATION_OPTIONS
            | IpNumber::AUTHENTICATION_HEADER
    )
}

/// Walks IPv6 extension headers (RFC 8200 §4), leaving `u` at the upper-layer protocol; a
/// Fragment header that fragments ends the walk with the fragment (atomic fragments, RFC 6946,
/// are walked through). Hop-by-hop options are only allowed first.
fn ipv6_exts<'a>(u: &mut Upper<'a>) -> Result<Option<frag::Frag<'a>>, Skip> {
    let trunc = Skip::Truncated(DecodeLayer::Ip);
    let mut first = true;
    loop {
        let len = match u.proto {
            IpNumber::IPV6_HEADER_HOP_BY_HOP if !first => {
                return Err(Skip::Malformed(DecodeLayer::Ip))
            }
            IpNumber::IPV6_HEADER_HOP_BY_HOP
            | IpNumber::IPV6_ROUTE_HEADER
            | IpNumber::IPV6_DESTINATION_OPTIONS => {
                let h = Ipv6RawExtHeaderSlice::from_slice(u.body).map_err(|_| trunc)?;
                u.proto = h.next_header();
                h.slice().len()
            }
            IpNumber::IPV6_FRAGMENTATION_HEADER => {
                let h = Ipv6FragmentHeaderSlice::from_slice(u.body).map_err(|_| trunc)?;
                if h.is_fragmenting_payload() {
                    return Ok(Some(frag::Frag {
                        v6: true,
                        src: u.src,
                        dst: u.dst,
                        id: h.identification(),
                        proto: h.next_header(),
                        offset: u32::from(h.fragment_offset().value()) * 8,
                        more: h.more_fragments(),
                        data: &u.body[8..],
                    }));
                }
                u.proto = h.next_header();
                8
            }
            IpNumber::AUTHENTICATION_HEADER => {
                use etherparse::err::ip_auth::HeaderSliceError;
                let h = IpAuthHeaderSlice::from_slice(u.body).map_err(|e| match e {
                    HeaderSliceError::Len(_) => trunc,
                    HeaderSliceError::Content(_) => Skip::Malformed(DecodeLayer::Ip),
                })?;
                u.proto = h.next_header();
                h.slice().len()
            }
            _ => return Ok(None),
        };
        u.body = &u.body[len..];
        first = false;
    }
}

/// A transport header's fields.
struct L4 {
    sport: u16,
    dport: u16,
    transport: Transport,
    flags: u8,
    seq: u32,
    ack: u32,
}

#[inline]
fn tcp(
    u: &Upper<'_>,
    frame: &[u8],
    ts: Timestamp,
    wire_len: u32,
    cx: &Ctx,
) -> Result<PacketMeta, Skip> {
    let t = TcpHeaderSlice::from_slice(u.body).map_err(|e| match e {
        etherparse::err::tcp::HeaderSliceError::Len(_) => Skip::Truncated(DecodeLayer::Tcp),
        etherparse::err::tcp::HeaderSliceError::Content(_) => Skip::Malformed(DecodeLayer::Tcp),
    })?;
    let l4 = L4 {
        sport: t.source_port(),
        dport: t.destination_port(),
        transport: Transport::Tcp,
        flags: tcp_flag_byte(&t),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
    };
    Ok(meta(
        u,
        l4,
        &u.body[t.slice().len()..],
        frame,
        ts,
        wire_len,
        cx,
    ))
}

/// A UDP header's ports and the datagram's payload.
#[inline]
fn udp(payload: &[u8]) -> Result<(u16, u16, &[u8]), Skip> {
    let u = UdpHeaderSlice::from_slice(payload).map_err(|_| Skip::Truncated(DecodeLayer::Udp))?;
    let len = usize::from(u.length());
    if len != 0 && len < 8 {
        return Err(Skip::Malformed(DecodeLayer::Udp));
    }
    // Length 0 happens with IPv6 jumbograms and some offloads: take what is there.
    let end = if len == 0 {
        payload.len()
    } else {
        len.min(payload.len())
    };
    Ok((u.source_port(), u.destination_port(), &payload[8..end]))
}

#[inline]
fn meta(
    u: &Upper<'_>,
    l4: L4,
    body: &[u8],
    frame: &[u8],
    ts: Timestamp,
    wire_len: u32,
    cx: &Ctx,
) -> PacketMeta {
    // The payload is a sub-slice of the frame; its offset is a plain address difference.
    let off = (body.as_ptr() as usize).wrapping_sub(frame.as_ptr() as usize);
    let (payload_off, payload_len) = if off
        .checked_add(body.len())
        .is_some_and(|e| e <= frame.len())
    {
        (off as u32, body.len() as u32)
    } else {
        (0, 0)
    };
    PacketMeta {
        ts,
        wire_len,
        src: u.src,
        dst: u.dst,
        sport: l4.sport,
        dport: l4.dport,
        transport: l4.transport,
        vlans: cx.vlans,
        nvlan: cx.nvlan,
        segment: cx.segment,
        flags: l4.flags,
        seq: l4.seq,
        ack: l4.ack,
        payload_off,
        payload_len,
    }
}

fn tcp_flag_byte(t: &TcpHeaderSlice<'_>) -> u8 {
    use tcp_flags::*;
    let mut f = 0;
    for (set, bit) in [
        (t.fin(), FIN),
        (t.syn(), SYN),
        (t.rst(), RST),
        (t.psh(), PSH),
        (t.ack(), ACK),
        (t.urg(), URG),
    ] {
        if set {
            f |= bit;
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet header (dst, src MACs) followed by the given ether type.
    fn eth(ether_type: u16) -> Vec<u8> {
        let mut v = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        v.extend(ether_type.to_be_bytes());
        v
    }

    fn vlan_tag(tpid_next: u16, id: u16) -> [u8; 4] {
        let t = id.to_be_bytes();
        let n = tpid_next.to_be_bytes();
        [t[0], t[1], n[0], n[1]]
    }

    #[rustfmt::skip]
    const IPV4_TCP_SYN_ACK_PAYLOAD: &[u8] = &[
        0x45, 0x00, 0x00, 0x2c, 0x00, 0x01, 0x40, 0x00, // v4 ihl=5 len=44 DF
        0x40, 0x06, 0x00, 0x00, 10, 1, 0, 1,             // ttl proto=tcp csum src
        192, 0, 2, 7,                                    // dst
        0xc3, 0x50, 0x01, 0xbb, 0x00, 0x00, 0x03, 0xe8, // sport 50000 dport 443 seq 1000
        0x00, 0x00, 0x07, 0xd0, 0x50, 0x18, 0xff, 0xff, // ack 2000 off=5 PSH|ACK win
        0x00, 0x00, 0x00, 0x00, b'a', b'b', b'c', b'd', // csum urg payload "abcd"
    ];

    #[rustfmt::skip]
    const IPV6_HOPBYHOP_UDP: &[u8] = &[
        0x60, 0x00, 0x00, 0x00, 0x00, 0x12, 0x00, 0x40, // v6 plen=18 next=hop-by-hop
        0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // src fd00::1
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // dst 2001:db8::2
        0x11, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, // hop-by-hop next=udp, PadN
        0x13, 0x88, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, // udp 5000 -> 53 len 10
        0x01, 0x02,                                     // payload
    ];

    #[test]
    fn decode_ethernet_ipv4_tcp() {
        let mut f = eth(ETH_IPV4);
        f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        let m = decode(LinkType::Ethernet, Timestamp(5), 0, &f).unwrap();
        assert_eq!(m.src.ip(), "10.1.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(m.dst.ip(), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(
            (m.sport, m.dport, m.transport),
            (50000, 443, Transport::Tcp)
        );
        assert_eq!((m.seq, m.ack), (1000, 2000));
        assert_eq!(m.flags, tcp_flags::PSH | tcp_flags::ACK);
        assert_eq!(m.payload(&f), b"abcd");
        assert_eq!(m.wire_len, f.len() as u32);
        assert_eq!(m.nvlan, 0);
    }

    #[test]
    fn decode_three_vlan_tags_qinq() {
        let mut f = eth(0x88A8);
        f.extend(vlan_tag(0x8100, 100));
        f.extend(vlan_tag(0x8100, 200));
        f.extend(vlan_tag(ETH_IPV4, 300));
        f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        let m = decode(LinkType::Ethernet, Timestamp(0), 0, &f).unwrap();
        assert_eq!(m.nvlan, 3);
        assert_eq!(m.vlans, [100, 200, 300]);
        assert_eq!(m.payload(&f), b"abcd");
    }

    #[test]
    fn decode_ipv6_extension_header_udp_raw_and_sll() {
        let m = decode(LinkType::Raw, Timestamp(0), 0, IPV6_HOPBYHOP_UDP).unwrap();
        assert_eq!(m.transport, Transport::Udp);
        assert_eq!((m.sport, m.dport), (5000, 53));
        assert_eq!(m.dst.ip(), "2001:db8::2".parse::<IpAddr>().unwrap());
        assert_eq!(m.payload(IPV6_HOPBYHOP_UDP), [1, 2]);

        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
        sll.extend(ETH_IPV6.to_be_bytes());
        sll.extend(IPV6_HOPBYHOP_UDP);
        let m = decode(LinkType::LinuxSll, Timestamp(0), 0, &sll).unwrap();
        assert_eq!(m.dport, 53);

        let mut sll2 = ETH_IPV6.to_be_bytes().to_vec();
        sll2.extend([0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        sll2.extend(IPV6_HOPBYHOP_UDP);
        let m = decode(LinkType::LinuxSll2, Timestamp(0), 0, &sll2).unwrap();
        assert_eq!(m.sport, 5000);
    }

    #[test]
    fn decode_null_loopback_either_byte_order() {
        for hdr in [[2, 0, 0, 0], [0, 0, 0, 2], [30, 0, 0, 0], [0, 0, 0, 24]] {
            let mut f = hdr.to_vec();
            f.extend(if hdr.contains(&2) {
                IPV4_TCP_SYN_ACK_PAYLOAD
            } else {
                IPV6_HOPBYHOP_UDP
            });
            assert!(
                decode(LinkType::Null, Timestamp(0), 0, &f).is_ok(),
                "{hdr:?}"
            );
        }
        let f = [7, 0, 0, 0, 0x45];
        assert_eq!(
            decode(LinkType::Null, Timestamp(0), 0, &f),
            Err(Skip::NotIp)
        );
    }

    #[test]
    fn decode_snaplen_truncated_payload_is_used_as_far_as_it_goes() {
        let mut f = eth(ETH_IPV4);
        f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        f.truncate(f.len() - 2);
        let m = decode(LinkType::Ethernet, Timestamp(0), 58, &f).unwrap();
        assert_eq!(m.payload(&f), b"ab");
        assert_eq!(m.wire_len, 58);
    }

    #[test]
    fn decode_ipv4_total_length_zero_from_offload_uses_captured_length() {
        let mut f = eth(ETH_IPV4);
        f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        f[14 + 2] = 0;
        f[14 + 3] = 0;
        let m = decode(LinkType::Ethernet, Timestamp(0), 0, &f).unwrap();
        assert_eq!(m.payload(&f), b"abcd");
    }

    #[test]
    fn decode_error_kinds() {
        // ARP
        let mut f = eth(0x0806);
        f.extend([0; 28]);
        assert_eq!(
            decode(LinkType::Ethernet, Timestamp(0), 0, &f),
            Err(Skip::NotIp)
        );
        // Too short for Ethernet.
        assert_eq!(
            decode(LinkType::Ethernet, Timestamp(0), 0, &[1, 2, 3]),
            Err(Skip::Truncated(DecodeLayer::Link))
        );
        // IPv4 cut inside its header.
        let mut f = eth(ETH_IPV4);
        f.extend(&IPV4_TCP_SYN_ACK_PAYLOAD[..12]);
        assert_eq!(
            decode(LinkType::Ethernet, Timestamp(0), 0, &f),
            Err(Skip::Truncated(DecodeLayer::Ip))
        );
        // Bad IHL.
        let mut f = eth(ETH_IPV4);
        f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        f[14] = 0x43;
        assert_eq!(
            decode(LinkType::Ethernet, Timestamp(0), 0, &f),
            Err(Skip::Malformed(DecodeLayer::Ip))
        );
        // TCP cut inside its header by the snaplen (the wire had the whole packet).
        let mut f = eth(ETH_IPV4);
        f.extend(&IPV4_TCP_SYN_ACK_PAYLOAD[..30]);
        let wire = (14 + IPV4_TCP_SYN_ACK_PAYLOAD.len()) as u32;
        assert_eq!(
            decode(LinkType::Ethernet, Timestamp(0), wire, &f),
            Err(Skip::Truncated(DecodeLayer::Tcp))
        );
        // TCP data offset below 5.
        let mut f = eth(ETH_IPV4);
        f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        f[14 + 32] = 0x40;
        assert_eq!(
            decode(LinkType::Ethernet, Timestamp(0), 0, &f),
            Err(Skip::Malformed(DecodeLayer::Tcp))
        );
        // ICMP.
        let mut f = eth(ETH_IPV4);
        f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        f[14 + 9] = 1;
        assert_eq!(
            decode(LinkType::Ethernet, Timestamp(0), 0, &f),
            Err(Skip::OtherTransport)
        );
        // A non-first fragment.
        let mut f = eth(ETH_IPV4);
        f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        f[14 + 6] = 0x00;
        f[14 + 7] = 0x10;
        assert_eq!(
            decode(LinkType::Ethernet, Timestamp(0), 0, &f),
            Err(Skip::Fragment)
        );
        // Unsupported link type.
        assert_eq!(
            decode(LinkType::Other(147), Timestamp(0), 0, &f),
            Err(Skip::UnsupportedLink)
        );
    }

    #[test]
    fn decode_gtp_u_inner_packet_keeps_outer_vlans() {
        let mut inner = IPV4_TCP_SYN_ACK_PAYLOAD.to_vec();
        inner[12..16].copy_from_slice(&[10, 9, 9, 9]);
        // GTP-U with the S flag (4 optional bytes, no extension header).
        let mut gtp = vec![0x32, 0xFF];
        gtp.extend(((inner.len() + 4) as u16).to_be_bytes());
        gtp.extend([0, 0, 0, 1, 0, 7, 0, 0]);
        gtp.extend(&inner);
        let mut udp = vec![0x08, 0x68, 0x08, 0x68];
        udp.extend(((gtp.len() + 8) as u16).to_be_bytes());
        udp.extend([0, 0]);
        udp.extend(&gtp);
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let total = (ip.len() + udp.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend(&udp);
        let mut f = eth(0x8100);
        f.extend(vlan_tag(ETH_IPV4, 42));
        f.extend(&ip);
        let m = decode(LinkType::Ethernet, Timestamp(0), 0, &f).unwrap();
        assert_eq!(m.src.ip(), "10.9.9.9".parse::<IpAddr>().unwrap());
        assert_eq!((m.transport, m.dport), (Transport::Tcp, 443));
        assert_eq!(m.payload(&f), b"abcd");
        assert_eq!((m.nvlan, m.vlans[0]), (1, 42));
        // Not a G-PDU (an echo request): the outer UDP flow stays.
        let mut f2 = f.clone();
        let at = f2.len() - gtp.len();
        f2[at + 1] = 1;
        let m = decode(LinkType::Ethernet, Timestamp(0), 0, &f2).unwrap();
        assert_eq!((m.transport, m.dport), (Transport::Udp, GTP_U_PORT));
    }

    #[test]
    fn skip_index_matches_all_order() {
        for (i, k) in Skip::ALL.iter().enumerate() {
            assert_eq!(k.index(), i, "{k}");
        }
    }

    /// An IPv4 header (no options) with the given fragment fields, around `payload`.
    fn ipv4_frag(
        proto: u8,
        src: [u8; 4],
        id: u16,
        off: usize,
        more: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        let frag = (off / 8) as u16 | if more { 0x2000 } else { 0 };
        let mut h = vec![0x45, 0];
        h.extend(((20 + payload.len()) as u16).to_be_bytes());
        h.extend(id.to_be_bytes());
        h.extend(frag.to_be_bytes());
        h.extend([64, proto, 0, 0]);
        h.extend(src);
        h.extend([192, 0, 2, 99]);
        h.extend(payload);
        h
    }

    fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = ipv4_frag(proto, [10, 0, 0, 1], 1, 0, false, payload);
        h[6] = 0x40; // DF
        h
    }

    fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend((payload.len() as u16).to_be_bytes());
        h.extend([next, 64]);
        h.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        h.extend(payload);
        h
    }

    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = sport.to_be_bytes().to_vec();
        u.extend(dport.to_be_bytes());
        u.extend(((8 + payload.len()) as u16).to_be_bytes());
        u.extend([0, 0]);
        u.extend(payload);
        u
    }

    /// The TCP segment (header and "abcd") of the IPv4 fixture.
    fn tcp_segment() -> &'static [u8] {
        &IPV4_TCP_SYN_ACK_PAYLOAD[20..]
    }

    fn eth_with(ether_type: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = eth(ether_type);
        f.extend(payload);
        f
    }

    /// An inner Ethernet frame with one VLAN tag around the IPv4 fixture.
    fn inner_tagged_frame(vid: u16) -> Vec<u8> {
        let mut f = eth(ETH_VLAN);
        f.extend(vlan_tag(ETH_IPV4, vid));
        f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        f
    }

    fn vxlan(vni: u32, inner: &[u8]) -> Vec<u8> {
        let mut v = vec![0x08, 0, 0, 0];
        v.extend((vni << 8).to_be_bytes());
        v.extend(inner);
        v
    }

    fn gre(proto: u16, payload: &[u8]) -> Vec<u8> {
        let mut g = vec![0, 0];
        g.extend(proto.to_be_bytes());
        g.extend(payload);
        g
    }

    fn ok(f: &[u8]) -> PacketMeta {
        decode(LinkType::Ethernet, Timestamp(0), 0, f).unwrap()
    }

    #[test]
    fn length_fields_past_a_whole_frame_are_damage_not_snaplen() {
        let mut f = eth(ETH_IPV4);
        f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        f[14 + 2..14 + 4].copy_from_slice(&200u16.to_be_bytes());
        // The capture says the frame was longer (snaplen): lax, what was captured is used.
        let wire = (f.len() + 200) as u32;
        assert!(decode(LinkType::Ethernet, Timestamp(0), wire, &f).is_ok());
        // The whole frame was captured: the length lies.
        assert_eq!(err(&f), Skip::Malformed(DecodeLayer::Ip));
        // UDP likewise: its length field is 4 bytes into the UDP header.
        let mut u = eth_with(ETH_IPV4, &ipv4(17, &udp(5000, 53, b"abcd")));
        let at = 14 + 20 + 4;
        u[at..at + 2].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(err(&u), Skip::Malformed(DecodeLayer::Udp));
        let wire = (u.len() + 100) as u32;
        assert!(decode(LinkType::Ethernet, Timestamp(0), wire, &u).is_ok());
    }

    /// PPPoE session header (version/type, code, session id, length) and PPP protocol.
    fn pppoe(ppp: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x11, 0x00, 0x12, 0x34];
        p.extend(((payload.len() + 2) as u16).to_be_bytes());
        p.extend(ppp.to_be_bytes());
        p.extend(payload);
        p
    }

    #[test]
    fn decode_pppoe_session_behind_qinq() {
        // QinQ (outer 0x88a8 VLAN 10, inner VLAN 20), then PPPoE carrying the IPv4 fixture.
        let mut f = eth(ETH_QINQ);
        f.extend(vlan_tag(ETH_VLAN, 10));
        f.extend(vlan_tag(ETH_PPPOE_SESSION, 20));
        f.extend(pppoe(PPP_IPV4, IPV4_TCP_SYN_ACK_PAYLOAD));
        let m = ok(&f);
        assert_fixture_flow(&m, &f);
        assert_eq!(&m.vlans[..usize::from(m.nvlan)], &[10, 20]);
        // IPv6 over PPPoE.
        let v6 = eth_with(
            ETH_PPPOE_SESSION,
            &pppoe(PPP_IPV6, &ipv6(17, &udp(5353, 53, b"q"))),
        );
        assert_eq!(ok(&v6).dport, 53);
        // PPP control (LCP) is no flow; a wrong version or code is damage; a cut header too.
        assert_eq!(
            err(&eth_with(ETH_PPPOE_SESSION, &pppoe(0xc021, &[1, 2]))),
            Skip::NotIp
        );
        let mut bad = pppoe(PPP_IPV4, IPV4_TCP_SYN_ACK_PAYLOAD);
        bad[0] = 0x21;
        assert_eq!(
            err(&eth_with(ETH_PPPOE_SESSION, &bad)),
            Skip::Malformed(DecodeLayer::Link)
        );
        assert_eq!(
            err(&eth_with(ETH_PPPOE_SESSION, &[0x11, 0, 0])),
            Skip::Truncated(DecodeLayer::Link)
        );
    }

    fn err(f: &[u8]) -> Skip {
        decode(LinkType::Ethernet, Timestamp(0), 0, f).unwrap_err()
    }

    /// The inner flow of the IPv4 fixture: 10.1.0.1:50000 -> 192.0.2.7:443, payload "abcd".
    fn assert_fixture_flow(m: &PacketMeta, f: &[u8]) {
        assert_eq!(m.src.ip(), "10.1.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(m.dst.ip(), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(
            (m.transport, m.sport, m.dport),
            (Transport::Tcp, 50000, 443)
        );
        assert_eq!(m.payload(f), b"abcd");
    }

    #[test]
    fn decode_gre_inner_flow_and_counted_tunnel() {
        let mut g = vec![0x20, 0x00, 0x08, 0x00, 0, 0, 0, 9]; // keyed
        g.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        let f = eth_with(ETH_IPV4, &ipv4(47, &g));
        let m = ok(&f);
        assert_fixture_flow(&m, &f);
        assert_eq!(m.segment, Segment::NONE);
        assert_eq!(m.wire_len, f.len() as u32);
        let mut d = Decoder::new();
        assert!(matches!(
            d.decode(LinkType::Ethernet, Timestamp(0), 0, &f),
            Ok(Decoded::Frame(_))
        ));
        assert_eq!(d.stats().tunnels, [1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn decode_vxlan_inner_vlans_replace_outer_and_vni_is_segment() {
        for port in [VXLAN_PORT, VXLAN_LINUX_PORT] {
            let outer = ipv4(17, &udp(40000, port, &vxlan(5001, &inner_tagged_frame(7))));
            let mut f = eth(ETH_VLAN);
            f.extend(vlan_tag(ETH_IPV4, 42));
            f.extend(&outer);
            let m = ok(&f);
            assert_fixture_flow(&m, &f);
            assert_eq!((m.nvlan, m.vlans[0]), (1, 7), "the inner frame's tag");
            assert_eq!(m.segment, Segment::vxlan(5001));
            assert_eq!(m.segment.kind(), Some("vxlan"));
            assert_eq!(m.segment.id(), 5001);
        }
        // Not VXLAN (I flag clear) on the VXLAN port: the outer UDP flow.
        let mut v = vxlan(1, &inner_tagged_frame(7));
        v[0] = 0;
        let f = eth_with(ETH_IPV4, &ipv4(17, &udp(40000, VXLAN_PORT, &v)));
        assert_eq!(
            (ok(&f).transport, ok(&f).dport),
            (Transport::Udp, VXLAN_PORT)
        );
        // VXLAN whose inner frame is cut inside its Ethernet header.
        let f = eth_with(
            ETH_IPV4,
            &ipv4(17, &udp(1, VXLAN_PORT, &vxlan(1, &[2, 0, 0]))),
        );
        assert_eq!(err(&f), Skip::Truncated(DecodeLayer::Link));
    }

    #[test]
    fn decode_erspan_types_segment_and_inner_frame() {
        // Type II, session 100.
        let mut e = vec![
            0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0x0a, 0x00, 0x64, 0, 0, 0, 0,
        ];
        e.extend(inner_tagged_frame(10));
        let f = eth_with(ETH_IPV4, &ipv4(47, &e));
        let m = ok(&f);
        assert_fixture_flow(&m, &f);
        assert_eq!((m.segment, m.vlans[0]), (Segment::erspan(100), 10));
        // Type III carrying an IP packet (frame type 2), no VLANs then.
        let mut e3 = vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1, 0x20, 0x00, 0x00, 0x07];
        e3.extend([0, 0, 0, 0, 0, 0, 0x08, 0x00]);
        e3.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        let mut f = eth(ETH_VLAN);
        f.extend(vlan_tag(ETH_IPV4, 5));
        f.extend(ipv4(47, &e3));
        let m = ok(&f);
        assert_fixture_flow(&m, &f);
        assert_eq!(
            (m.segment, m.nvlan),
            (Segment::erspan(7), 1),
            "outer tag kept: no inner frame"
        );
        // Type I: Ethernet right after GRE.
        let f = eth_with(ETH_IPV4, &ipv4(47, &gre(0x88be, &inner_tagged_frame(3))));
        assert_eq!((ok(&f).segment, ok(&f).vlans[0]), (Segment::NONE, 3));
    }

    #[test]
    fn decode_ip_in_ip_four_combinations() {
        let v6_inner = IPV6_HOPBYHOP_UDP;
        let cases: [(Vec<u8>, u16); 4] = [
            (eth_with(ETH_IPV4, &ipv4(4, IPV4_TCP_SYN_ACK_PAYLOAD)), 443),
            (eth_with(ETH_IPV4, &ipv4(41, v6_inner)), 53),
            (eth_with(ETH_IPV6, &ipv6(4, IPV4_TCP_SYN_ACK_PAYLOAD)), 443),
            (eth_with(ETH_IPV6, &ipv6(41, v6_inner)), 53),
        ];
        for (f, dport) in &cases {
            assert_eq!(ok(f).dport, *dport);
        }
        // Protocol 4 with an IPv6 packet inside, and nothing inside.
        assert_eq!(
            err(&eth_with(ETH_IPV4, &ipv4(4, v6_inner))),
            Skip::Malformed(DecodeLayer::Tunnel)
        );
        assert_eq!(
            err(&eth_with(ETH_IPV4, &ipv4(41, &[]))),
            Skip::Truncated(DecodeLayer::Tunnel)
        );
    }

    #[test]
    fn decode_mpls_over_ethernet_and_gre() {
        let mut stack = vec![0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40];
        stack.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
        let mut f = eth(ETH_VLAN);
        f.extend(vlan_tag(0x8847, 9));
        f.extend(&stack);
        let m = ok(&f);
        assert_fixture_flow(&m, &f);
        assert_eq!((m.nvlan, m.vlans[0]), (1, 9));
        let f = eth_with(ETH_IPV6, &ipv6(47, &gre(0x8847, &stack)));
        let mut d = Decoder::new();
        assert!(d.decode(LinkType::Ethernet, Timestamp(0), 0, &f).is_ok());
        assert_eq!(d.stats().tunnels, [1, 0, 0, 0, 1, 0], "gre and mpls");
        // A stack cut short.
        assert_eq!(
            err(&eth_with(0x8848, &stack[..6])),
            Skip::Truncated(DecodeLayer::Tunnel)
        );
    }

    #[test]
    fn decode_nested_tunnels_up_to_the_depth_limit() {
        let mut p = IPV4_TCP_SYN_ACK_PAYLOAD.to_vec();
        for _ in 0..MAX_TUNNEL_DEPTH {
            p = ipv4(4, &p);
        }
        assert_eq!(ok(&eth_with(ETH_IPV4, &p)).dport, 443);
        let deeper = eth_with(ETH_IPV4, &ipv4(4, &p));
        assert_eq!(err(&deeper), Skip::TunnelDepth);
        assert!(Skip::TunnelDepth.is_error());
        // GRE around VXLAN around the fixture: both kinds counted once.
        let v = ipv4(17, &udp(1, VXLAN_PORT, &vxlan(77, &inner_tagged_frame(1))));
        let f = eth_with(ETH_IPV4, &ipv4(47, &gre(0x0800, &v)));
        let mut d = Decoder::new();
        let Ok(Decoded::Frame(m)) = d.decode(LinkType::Ethernet, Timestamp(0), 0, &f) else {
            panic!("nested tunnels decode")
        };
        assert_fixture_flow(&m, &f);
        assert_eq!(m.segment, Segment::vxlan(77));
        assert_eq!(d.stats().tunnels, [1, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn decode_every_truncation_of_tunnelled_frames_is_a_skip_not_a_panic() {
        let v = ipv4(17, &udp(1, VXLAN_PORT, &vxlan(77, &inner_tagged_frame(1))));
        let mut e3 = vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1, 0x20, 0x00, 0x00, 0x07];
        e3.extend([0, 0, 0, 0, 0, 0, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
        e3.extend(inner_tagged_frame(2));
        let frames = [
            eth_with(ETH_IPV4, &ipv4(47, &gre(0x0800, &v))),
            eth_with(ETH_IPV4, &ipv4(47, &e3)),
            eth_with(ETH_IPV6, &ipv6(41, &ipv6(4, IPV4_TCP_SYN_ACK_PAYLOAD))),
            eth_with(
                0x8847,
                &[&[0, 1, 1, 0x40, 0, 0, 0, 0][..], &inner_tagged_frame(4)].concat(),
            ),
        ];
        for f in &frames {
            assert!(decode(LinkType::Ethernet, Timestamp(0), 0, f).is_ok());
            let mut d = Decoder::new();
            for n in 0..f.len() {
                let cut = &f[..n];
                let _ = decode(LinkType::Ethernet, Timestamp(0), 0, cut);
                let _ = d.decode(LinkType::Ethernet, Timestamp(0), 0, cut);
                // And with each byte flipped.
                let mut bad = f.clone();
                bad[n] ^= 0xff;
                let _ = decode(LinkType::Ethernet, Timestamp(0), 0, &bad);
                let _ = d.decode(LinkType::Ethernet, Timestamp(0), 0, &bad);
            }
        }
    }

    /// Cuts the fixture's TCP segment into IPv4 fragments of `sizes` bytes (the rest last).
    fn v4_fragments(id: u16, sizes: &[usize], seg: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = 0usize;
        for (i, &n) in sizes.iter().chain([&usize::MAX]).enumerate() {
            let end = at.saturating_add(n).min(seg.len());
            let last = end == seg.len();
            out.push(eth_with(
                ETH_IPV4,
                &ipv4_frag(6, [10, 1, 0, 1], id, at, !last, &seg[at..end]),
            ));
            at = end;
            if last || i > 64 {
                break;
            }
        }
        out
    }

    /// Feeds frames in order; the reassembled datagram's summary, payload and wire length.
    fn feed(d: &mut Decoder, frames: &[Vec<u8>]) -> Option<(PacketMeta, Vec<u8>)> {
        let mut got = None;
        for (i, f) in frames.iter().enumerate() {
            match d.decode(LinkType::Ethernet, Timestamp(i as u64), 0, f) {
                Ok(Decoded::Reassembled { meta, frame }) => {
                    got = Some((meta, meta.payload(frame).to_vec()));
                }
                Ok(Decoded::Frame(_)) => panic!("a fragment decoded as a frame"),
                Err(s) => assert_eq!(s, Skip::Fragment),
            }
        }
        got
    }

    #[test]
    fn decoder_reassembles_ipv4_fragments_in_any_order() {
        let mut seg = tcp_segment()[..20].to_vec();
        seg.extend((0..100u8).collect::<Vec<_>>());
        let frames = v4_fragments(7, &[32, 40], &seg);
        assert_eq!(frames.len(), 3);
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let fs: Vec<Vec<u8>> = order.iter().map(|&i| frames[i].clone()).collect();
            let mut d = Decoder::new();
            let (m, payload) = feed(&mut d, &fs).expect("reassembled");
            assert_eq!(
                (m.sport, m.dport, m.transport),
                (50000, 443, Transport::Tcp)
            );
            assert_eq!(payload, (0..100u8).collect::<Vec<_>>());
            assert_eq!(
                m.wire_len,
                frames.iter().map(|f| f.len() as u32).sum::<u32>()
            );
            assert_eq!(m.ts, Timestamp(2), "the completing fragment's time");
            let s = d.stats().reassembly;
            assert_eq!((s.count(frag::ReasmEnd::Reassembled), s.pending), (1, 0));
        }
        // Stateless decode says "fragment" for each.
        assert!(frames
            .iter()
            .all(|f| decode(LinkType::Ethernet, Timestamp(0), 0, f) == Err(Skip::Fragment)));
    }

    #[test]
    fn decoder_reassembles_ipv6_fragment_headers_and_passes_atomic_fragments() {
        let seg = tcp_segment();
        // First fragment: 16 bytes of the segment; second: the rest. Fragment header: next TCP.
        let fh = |off: usize, more: bool| {
            let mut h = vec![6, 0];
            h.extend(((off as u16) | u16::from(more)).to_be_bytes());
            h.extend(0x0102_0304u32.to_be_bytes());
            h
        };
        let part = |off: usize, end: usize, more: bool| {
            let mut p = fh(off, more);
            p.extend(&seg[off..end]);
            eth_with(ETH_IPV6, &ipv6(44, &p))
        };
        let frames = [part(16, seg.len(), false), part(0, 16, true)];
        let mut d = Decoder::new();
        let (m, payload) = feed(&mut d, &frames).expect("reassembled");
        assert_eq!((m.dport, payload.as_slice()), (443, &b"abcd"[..]));
        assert_eq!(m.dst.ip(), "2001:db8::2".parse::<IpAddr>().unwrap());
        // An atomic fragment (offset 0, M clear) is an ordinary packet.
        let mut atomic = fh(0, false);
        atomic.extend(seg);
        let f = eth_with(ETH_IPV6, &ipv6(44, &atomic));
        assert_eq!(ok(&f).dport, 443);
        // A Fragment header cut short; hop-by-hop options after another header.
        assert_eq!(
            err(&eth_with(ETH_IPV6, &ipv6(44, &[6, 0, 0]))),
            Skip::Truncated(DecodeLayer::Ip)
        );
        let mut late_hbh = vec![0, 0, 0, 0, 0, 0, 0, 0]; // dest opts, next = hop-by-hop
        late_hbh.extend([6, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            err(&eth_with(ETH_IPV6, &ipv6(60, &late_hbh))),
            Skip::Malformed(DecodeLayer::Ip)
        );
    }

    /// A GRE packet carrying a TCP segment, its outer IPv4 packet in two fragments.
    fn fragmented_gre() -> [Vec<u8>; 2] {
        let g = gre(0x0800, IPV4_TCP_SYN_ACK_PAYLOAD);
        [
            eth_with(
                ETH_IPV4,
                &ipv4_frag(47, [10, 0, 0, 1], 9, 0, true, &g[..24]),
            ),
            eth_with(
                ETH_IPV4,
                &ipv4_frag(47, [10, 0, 0, 1], 9, 24, false, &g[24..]),
            ),
        ]
    }

    #[test]
    fn decoder_reassembles_a_fragmented_outer_gre_packet() {
        let frames = fragmented_gre();
        let mut d = Decoder::new();
        let (m, payload) = feed(&mut d, &frames).expect("reassembled");
        assert_eq!((m.dport, payload.as_slice()), (443, &b"abcd"[..]));
        assert_eq!(
            d.stats().tunnels[TunnelKind::Gre.index()],
            1,
            "counted once, after reassembly"
        );
    }

    #[test]
    fn decoder_keeps_fragments_of_different_segments_apart() {
        let seg = tcp_segment();
        // The same inner fragments (same addresses and id) in VNI 1 and VNI 2; VNI 2's bytes
        // differ. Interleaved, each datagram is reassembled from its own pieces.
        let mut other = seg.to_vec();
        other[20..].copy_from_slice(b"wxyz");
        let wrap = |vni: u32, ip: Vec<u8>| {
            let mut inner = eth(ETH_IPV4);
            inner.extend(ip);
            eth_with(
                ETH_IPV4,
                &ipv4(17, &udp(1, VXLAN_PORT, &vxlan(vni, &inner))),
            )
        };
        let frag = |vni: u32, s: &[u8], off: usize, end: usize| {
            wrap(
                vni,
                ipv4_frag(6, [10, 1, 0, 1], 5, off, end < s.len(), &s[off..end]),
            )
        };
        let frames = [
            frag(1, seg, 0, 16),
            frag(2, &other, 0, 16),
            frag(2, &other, 16, other.len()),
            frag(1, seg, 16, seg.len()),
        ];
        let mut d = Decoder::new();
        let mut seen = Vec::new();
        for f in &frames {
            if let Ok(Decoded::Reassembled { meta, frame, .. }) =
                d.decode(LinkType::Ethernet, Timestamp(0), 0, f)
            {
                seen.push((meta.segment, meta.payload(frame).to_vec()));
            }
        }
        assert_eq!(
            seen,
            [
                (Segment::vxlan(2), b"wxyz".to_vec()),
                (Segment::vxlan(1), b"abcd".to_vec())
            ]
        );
        assert_eq!(d.stats().tunnels[TunnelKind::Vxlan.index()], 4);
    }

    #[test]
    fn decoder_fragment_cut_by_snaplen_is_truncated() {
        let f = eth_with(ETH_IPV4, &ipv4_frag(6, [10, 1, 0, 1], 3, 0, true, &[0; 32]));
        let mut d = Decoder::new();
        assert_eq!(
            d.decode(
                LinkType::Ethernet,
                Timestamp(0),
                f.len() as u32,
                &f[..f.len() - 4]
            )
            .err(),
            Some(Skip::Truncated(DecodeLayer::Ip))
        );
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Tunnelled and fragmented frames to mutate.
        fn seeds() -> Vec<Vec<u8>> {
            let v = ipv4(17, &udp(1, VXLAN_PORT, &vxlan(77, &inner_tagged_frame(1))));
            let [frag0, frag1] = fragmented_gre();
            vec![
                eth_with(ETH_IPV4, &ipv4(47, &gre(0x0800, &v))),
                eth_with(ETH_IPV6, &ipv6(41, &ipv6(4, IPV4_TCP_SYN_ACK_PAYLOAD))),
                frag0,
                frag1,
                eth_with(
                    0x8847,
                    &[&[0, 1, 1, 0x40][..], IPV4_TCP_SYN_ACK_PAYLOAD].concat(),
                ),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]

            /// Any bytes changed in tunnelled frames and fragments, fed to one decoder in any
            /// order: a packet or a skip, never a panic; a payload always lies in its frame.
            #[test]
            fn mutated_tunnels_and_fragments_never_panic(
                edits in proptest::collection::vec((0usize..5, 0usize..200, any::<u8>()), 0..40),
                cut in proptest::collection::vec(0usize..200, 5),
            ) {
                let mut frames = seeds();
                for (f, at, v) in edits {
                    let fr = &mut frames[f];
                    let i = at % fr.len();
                    fr[i] = v;
                }
                let mut d = Decoder::new();
                for (f, c) in frames.iter().zip(cut) {
                    let f = &f[..f.len() - c.min(f.len()) / 4];
                    if let Ok(m) = decode(LinkType::Ethernet, Timestamp(0), 0, f) {
                        prop_assert!((m.payload_off + m.payload_len) as usize <= f.len());
                    }
                    match d.decode(LinkType::Ethernet, Timestamp(0), 0, f) {
                        Ok(Decoded::Frame(m)) => {
                            prop_assert!((m.payload_off + m.payload_len) as usize <= f.len());
                        }
                        Ok(Decoded::Reassembled { meta, frame, .. }) => {
                            prop_assert!((meta.payload_off + meta.payload_len) as usize <= frame.len());
                        }
                        Err(_) => {}
                    }
                }
            }
        }
    }
}

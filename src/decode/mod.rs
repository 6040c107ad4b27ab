//! Frame decoding: link layer (Ethernet with up to 3 VLAN tags, Linux SLL/SLL2, raw IP, BSD
//! loopback), IPv4/IPv6 with options and extension headers, TCP and UDP — through etherparse's
//! lax slicer, so snaplen-truncated frames are used as far as they go.
//!
//! Zero-copy: the result is a small `Copy` [`PacketMeta`] whose payload is a range into the frame.
//! Never allocates, never panics on any input; whatever is not TCP/UDP over IP is a [`Skip`] kind,
//! counted by the caller.

use crate::capture::{LinkType, Timestamp};
use etherparse::{
    IpNumber, Ipv4HeaderSlice, Ipv6ExtensionsSlice, Ipv6HeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
        Addr(ip.to_ipv6_mapped().octets())
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

/// What one frame says about its flow: a `Copy` summary with the payload as a range into the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// Capture timestamp.
    pub ts: Timestamp,
    /// Frame length on the wire.
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
    /// VLAN ids, outermost first; `nvlan` of them are valid.
    pub vlans: [u16; MAX_VLANS],
    /// Number of VLAN tags.
    pub nvlan: u8,
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

/// Why a frame gave no flow packet: skipped kinds and decode errors, each counted by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Skip {
    /// A link type this sensor does not decode.
    UnsupportedLink,
    /// An ether type other than IP (ARP, LLDP, ...).
    NotIp,
    /// An IP protocol other than TCP and UDP (ICMP, GRE, ESP, ...).
    OtherTransport,
    /// An IP fragment (reassembly is not done yet).
    Fragment,
    /// The frame ended inside a header of this layer.
    Truncated(DecodeLayer),
    /// A header of this layer had an invalid field.
    Malformed(DecodeLayer),
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
}

impl Skip {
    /// All kinds, in the order summaries list them.
    pub const ALL: [Skip; 12] = [
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
    ];

    /// Dense index into [`Skip::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        let layer = |l| match l {
            DecodeLayer::Link => 0,
            DecodeLayer::Ip => 1,
            DecodeLayer::Tcp => 2,
            DecodeLayer::Udp => 3,
        };
        match self {
            Skip::UnsupportedLink => 0,
            Skip::NotIp => 1,
            Skip::OtherTransport => 2,
            Skip::Fragment => 3,
            Skip::Truncated(l) => 4 + layer(l),
            Skip::Malformed(l) => 8 + layer(l),
        }
    }

    /// Whether this kind is damage (truncated or malformed) rather than traffic we do not track.
    pub fn is_error(self) -> bool {
        matches!(self, Skip::Truncated(_) | Skip::Malformed(_))
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
            Skip::Malformed(DecodeLayer::Link) => "malformed_link",
            Skip::Malformed(DecodeLayer::Ip) => "malformed_ip",
            Skip::Malformed(DecodeLayer::Tcp) => "malformed_tcp",
            Skip::Malformed(DecodeLayer::Udp) => "malformed_udp",
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
const ETH_LEN: usize = 14;
const SLL_LEN: usize = 16;
const SLL2_LEN: usize = 20;

/// Decodes one frame into its flow-relevant summary.
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
    let mut vlans = [0u16; MAX_VLANS];
    let mut nvlan = 0u8;
    let be16 = |b: &[u8], at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
    };
    let trunc = Skip::Truncated(DecodeLayer::Link);
    let (ether_type, mut at) = match link {
        LinkType::Ethernet => (be16(data, 12).ok_or(trunc)?, ETH_LEN),
        LinkType::LinuxSll => (
            be16(data, 14)
                .filter(|_| data.len() >= SLL_LEN)
                .ok_or(trunc)?,
            SLL_LEN,
        ),
        LinkType::LinuxSll2 => (
            be16(data, 0)
                .filter(|_| data.len() >= SLL2_LEN)
                .ok_or(trunc)?,
            SLL2_LEN,
        ),
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => match data.first().map(|b| b >> 4) {
            Some(4) => (ETH_IPV4, 0),
            Some(6) => (ETH_IPV6, 0),
            Some(_) => return Err(Skip::Malformed(DecodeLayer::Ip)),
            None => return Err(Skip::Truncated(DecodeLayer::Ip)),
        },
        LinkType::Null | LinkType::Loop => {
            let hdr = data.get(..4).ok_or(trunc)?;
            let le = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
            let be = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
            // AF_INET is 2 everywhere; AF_INET6 is 10 (Linux), 24 (NetBSD/OpenBSD), 28 (FreeBSD),
            // 30 (macOS). The writer's byte order is unknown for `Null`, so accept either.
            match if le < 0x100 { le } else { be } {
                2 => (ETH_IPV4, 4),
                10 | 24 | 28 | 30 => (ETH_IPV6, 4),
                _ => return Err(Skip::NotIp),
            }
        }
        LinkType::Other(_) => return Err(Skip::UnsupportedLink),
    };
    let mut ether_type = ether_type;
    while matches!(ether_type, ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD) {
        let tci = be16(data, at).ok_or(trunc)?;
        ether_type = be16(data, at + 2).ok_or(trunc)?;
        if usize::from(nvlan) == MAX_VLANS {
            return Err(Skip::Malformed(DecodeLayer::Link)); // more tags than any real network uses
        }
        vlans[usize::from(nvlan)] = tci & 0x0FFF;
        nvlan += 1;
        at += 4;
    }
    if ether_type != ETH_IPV4 && ether_type != ETH_IPV6 {
        return Err(Skip::NotIp);
    }
    let ip = data.get(at..).ok_or(trunc)?;
    let mut m = ip_packet(ip, ts, wire_len.max(data.len() as u32), data)?;
    m.vlans = vlans;
    m.nvlan = nvlan;
    // One level of GTP-U (mobile core span ports): the inner IP packet is the flow.
    if m.transport == Transport::Udp && (m.dport == GTP_U_PORT || m.sport == GTP_U_PORT) {
        if let Some(inner) = gtp_u_inner(m.payload(data)) {
            if let Ok(mut im) = ip_packet(inner, ts, m.wire_len, data) {
                im.vlans = vlans;
                im.nvlan = nvlan;
                return Ok(im);
            }
        }
    }
    Ok(m)
}

/// Decodes an IP packet (and its TCP or UDP header) that lies inside `frame`.
fn ip_packet(ip: &[u8], ts: Timestamp, wire_len: u32, frame: &[u8]) -> Result<PacketMeta, Skip> {
    use etherparse::err::{ipv4, ipv6, ipv6_exts};
    let (src, dst, proto, payload) = match ip.first().map(|b| b >> 4) {
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
            if h.is_fragmenting_payload() {
                return Err(Skip::Fragment);
            }
            // Lax: a total length beyond the captured bytes (snaplen) keeps what was captured;
            // Ethernet padding after the total length is not payload.
            let end = total.min(ip.len());
            (
                Addr::from(Ipv4Addr::from(h.source())),
                Addr::from(Ipv4Addr::from(h.destination())),
                h.protocol(),
                &ip[hlen..end],
            )
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
            let mut next = h.next_header();
            let mut rest = body;
            if is_ipv6_ext(next) {
                let (exts, n, r) =
                    Ipv6ExtensionsSlice::from_slice(next, body).map_err(|e| match e {
                        ipv6_exts::HeaderSliceError::Len(_) => Skip::Truncated(DecodeLayer::Ip),
                        ipv6_exts::HeaderSliceError::Content(_) => Skip::Malformed(DecodeLayer::Ip),
                    })?;
                if exts.is_fragmenting_payload() {
                    return Err(Skip::Fragment);
                }
                next = n;
                rest = r;
            }
            (Addr(h.source()), Addr(h.destination()), next, rest)
        }
        Some(_) => return Err(Skip::Malformed(DecodeLayer::Ip)),
        None => return Err(Skip::Truncated(DecodeLayer::Ip)),
    };
    let (sport, dport, transport, flags, seq, ack, body) = match proto {
        IpNumber::TCP => {
            let t = TcpHeaderSlice::from_slice(payload).map_err(|e| match e {
                etherparse::err::tcp::HeaderSliceError::Len(_) => Skip::Truncated(DecodeLayer::Tcp),
                etherparse::err::tcp::HeaderSliceError::Content(_) => {
                    Skip::Malformed(DecodeLayer::Tcp)
                }
            })?;
            (
                t.source_port(),
                t.destination_port(),
                Transport::Tcp,
                tcp_flag_byte(&t),
                t.sequence_number(),
                t.acknowledgment_number(),
                &payload[t.slice().len()..],
            )
        }
        IpNumber::UDP => {
            let u = UdpHeaderSlice::from_slice(payload)
                .map_err(|_| Skip::Truncated(DecodeLayer::Udp))?;
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
            (
                u.source_port(),
                u.destination_port(),
                Transport::Udp,
                0,
                0,
                0,
                &payload[8..end],
            )
        }
        _ => return Err(Skip::OtherTransport),
    };
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
    Ok(PacketMeta {
        ts,
        wire_len,
        src,
        dst,
        sport,
        dport,
        transport,
        vlans: [0; MAX_VLANS],
        nvlan: 0,
        flags,
        seq,
        ack,
        payload_off,
        payload_len,
    })
}

/// Whether an IPv6 next-header value is an extension header etherparse walks.
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

/// UDP port of GTP-U (3GPP TS 29.281).
pub const GTP_U_PORT: u16 = 2152;

/// The inner packet of a GTP-U G-PDU, or None when this is not one.
///
/// ```text
/// flags(1): version(3)=1 PT(1)=1 spare E S PN | type(1)=0xFF | length(2) | TEID(4)
/// [seq(2) npdu(1) next_ext(1)] when any of E,S,PN; then extension headers while next_ext != 0,
/// each length(1) in 4-byte units ... next_ext(1)
/// ```
fn gtp_u_inner(b: &[u8]) -> Option<&[u8]> {
    let flags = *b.first()?;
    if flags >> 5 != 1 || flags & 0x10 == 0 || *b.get(1)? != 0xFF {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]));
    let mut at = 8;
    if flags & 0x07 != 0 {
        let mut next = *b.get(11)?;
        at = 12;
        while next != 0 {
            let units = usize::from(*b.get(at)?);
            if units == 0 {
                return None;
            }
            at += units * 4;
            next = *b.get(at - 1)?;
        }
    }
    let end = (8 + len).min(b.len());
    let inner = b.get(at..end)?;
    matches!(inner.first().map(|v| v >> 4), Some(4 | 6)).then_some(inner)
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
        // TCP cut inside its header.
        let mut f = eth(ETH_IPV4);
        f.extend(&IPV4_TCP_SYN_ACK_PAYLOAD[..30]);
        assert_eq!(
            decode(LinkType::Ethernet, Timestamp(0), 0, &f),
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
}

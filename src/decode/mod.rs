//! Frame decoding: the bytes of one frame to a `Copy` [`PacketMeta`] or a counted [`Skip`],
//! zero-copy. Never allocates (the [`Decoder`]'s fragment reassembly aside), never panics on any
//! input, and keeps no state per flow.
//!
//! Link layer (Ethernet with up to 3 VLAN tags, PPPoE, Linux SLL/SLL2, raw IP, BSD loopback),
//! IPv4/IPv6 with options and extension headers, tunnels (GRE, ERSPAN I–III, VXLAN, IP-in-IP,
//! MPLS, GTP-U; nested up to [`MAX_TUNNEL_DEPTH`]), TCP and UDP — read through etherparse's header
//! slices and a few hand-checked fixed fields, so snaplen-truncated frames are used as far as
//! they go. IPv4 and IPv6 fragments are reassembled by the reader's [`Decoder`] ([`frag`]),
//! before the flow key is known.
//!
//! One layer per file; this one holds the walk that goes from layer to layer:
//!
//! | file | owns |
//! |---|---|
//! | `link.rs` | the first header of each link type; VLAN tags, PPPoE, MPLS stacks down to IP |
//! | `ip.rs` | IPv4 and IPv6 headers, IPv6 extension headers, fragments found |
//! | `l4.rs` | TCP and UDP headers, and the [`PacketMeta`] a packet ends as |
//! | `tunnel.rs` | tunnel headers (GRE, ERSPAN, VXLAN, GTP-U, MPLS) and [`TunnelKind`] |
//! | [`frag`] | IP fragment reassembly, within hard caps |
//! | `decoder.rs` | the reader's [`Decoder`]: the walk, reassembly and tunnel counters |
//! | `meta.rs` | [`PacketMeta`] and the flow key's small types ([`Addr`], [`Segment`], ...) |
//! | `skip.rs` | [`Skip`] and [`DecodeLayer`]: why a frame gave no packet |
//!
//! The payload of a [`PacketMeta`] is a range into the frame. Whatever is not TCP/UDP over IP is
//! a [`Skip`] kind, counted by the caller.
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

mod decoder;
pub mod frag;
mod ip;
mod l4;
mod link;
mod meta;
mod skip;
pub(crate) mod tunnel;

#[cfg(test)]
mod fixtures;

use crate::capture::{LinkType, Timestamp};
use etherparse::IpNumber;
use ip::{ip_header, ip_length_overruns, ipv6_exts, is_ipv6_ext, IpHeader, Upper};
use link::{first_layer, link};
use tunnel::Decap;

pub use decoder::{DecodeStats, Decoded, Decoder};
pub use meta::{
    ones_sum, tcp_flags, tcp_opts, Addr, PacketMeta, Segment, Transport, WireMarks, MAX_VLANS,
};
pub use skip::{DecodeLayer, Skip};
pub use tunnel::{TunnelKind, GTP_U_PORT, MAX_MPLS_LABELS, VXLAN_LINUX_PORT, VXLAN_PORT};

/// Most tunnels opened for one packet; one more nested inside is [`Skip::TunnelDepth`].
pub const MAX_TUNNEL_DEPTH: u8 = 4;

/// Decodes one frame into its flow-relevant summary. Stateless: a fragment is
/// [`Skip::Fragment`] (the reader's [`Decoder`] reassembles them).
///
/// The link layer is a few fixed fields, read by hand; IPv4, IPv6 (with its extension headers), TCP
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

#[cfg(any(test, feature = "_fuzz"))]
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

#[cfg(any(test, feature = "_fuzz"))]
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
            IpNumber::TCP => return l4::tcp(&u, frame, ts, wire_len, cx).map(Walked::Packet),
            IpNumber::UDP => {
                if whole && be16(u.body, 4).is_some_and(|l| usize::from(l) > u.body.len()) {
                    return Err(Skip::Malformed(DecodeLayer::Udp));
                }
                let (sport, dport, body) = l4::udp(u.body)?;
                let decap = match (sport, dport) {
                    (_, VXLAN_PORT | VXLAN_LINUX_PORT) => tunnel::vxlan(body),
                    (GTP_U_PORT, _) | (_, GTP_U_PORT) => tunnel::gtp_u(body),
                    _ => None,
                };
                match decap {
                    Some(d) => d,
                    None => {
                        let l4 = l4::L4 {
                            sport,
                            dport,
                            transport: Transport::Udp,
                            flags: 0,
                            seq: 0,
                            ack: 0,
                            wire: l4::udp_marks(&u, u.body),
                        };
                        return Ok(Walked::Packet(l4::meta(
                            &u, l4, body, frame, ts, wire_len, cx,
                        )));
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

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use std::net::IpAddr;

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

    /// Every snaplen cut of tunnelled frames (the wire had the whole frame) is the packet as far
    /// as it goes or a truncated layer, never damage; the payload lies in what was captured and
    /// is, for the inner flow, the start of the whole frame's payload.
    #[test]
    fn decode_every_snaplen_cut_of_tunnelled_frames_is_truncated_or_a_shorter_payload() {
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
            let whole = ok(f);
            let wire = f.len() as u32;
            let mut d = Decoder::new();
            for n in 0..f.len() {
                let cut = &f[..n];
                let got = decode(LinkType::Ethernet, Timestamp(0), wire, cut);
                match got {
                    Ok(m) if (m.src, m.sport, m.dport) == (whole.src, whole.sport, whole.dport) => {
                        assert!(whole.payload(f).starts_with(m.payload(cut)), "cut at {n}");
                        assert_eq!(m.wire_len, wire);
                    }
                    // An outer flow, when the cut leaves too little of a tunnel header that a
                    // port only suggests.
                    Ok(m) => assert!((m.payload_off + m.payload_len) as usize <= n, "cut at {n}"),
                    Err(e) => assert!(matches!(e, Skip::Truncated(_)), "cut at {n}: {e}"),
                }
                let Ok(Decoded::Frame(m)) = d.decode(LinkType::Ethernet, Timestamp(0), wire, cut)
                else {
                    assert!(got.is_err(), "cut at {n}: the decoder disagrees");
                    continue;
                };
                assert_eq!(Ok(m), got, "cut at {n}: the decoder disagrees");
            }
        }
    }
}

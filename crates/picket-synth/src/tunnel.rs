//! Tunnels and fragments for generated captures: wraps frames made by the conversation builders
//! in GRE, NVGRE, ERSPAN I–III, VXLAN, IP-in-IP, MPLS or GTP-U (nested as deep as asked), and cuts
//! IP packets into fragments in any order, with duplicates or overlaps. Three named captures use
//! them: [`tunnels`], [`fragments`] and [`fragment_flood`], with manifests of what a sensor must
//! find in them.

use super::conv::{segments, Path, TcpConv};
use super::packet::{checksum, ethernet, l4_checksum, Link, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use super::pcap::{to_linktype, LinkType};
use super::rng::{mix, Rng};
use super::tls::{app_data, client_hello, server_hello_and_more, ClientHelloSpec};
use super::Packet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

/// Start of the tunnel and fragment captures: 2024-05-02 12:00:00 UTC, in ns since the epoch.
const EPOCH_NS: u64 = 1_714_651_200_000_000_000;
/// Seed of the tunnel and fragment captures.
const SEED: u64 = 0x5455_4e4e_454c;
/// MAC addresses of the routers a tunnel runs between.
const TUNNEL_MACS: [[u8; 6]; 2] = [
    [0x02, 0x00, 0x5e, 0x20, 0x00, 0x01],
    [0x02, 0x00, 0x5e, 0x20, 0x00, 0x02],
];
/// IP protocol of GRE.
const PROTO_GRE: u8 = 47;
/// IP protocol of IPv4 in IP.
const PROTO_IPV4: u8 = 4;
/// IP protocol of IPv6 in IP.
const PROTO_IPV6: u8 = 41;
/// IP protocol of UDP.
const PROTO_UDP: u8 = 17;
/// IPv6 next header of a Fragment header.
const NEXT_FRAGMENT: u8 = 44;

/// One tunnel layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encap {
    /// IP in GRE (RFC 2784), with the optional checksum, key and sequence number (RFC 2890).
    Gre {
        /// Key field, if any.
        key: Option<u32>,
        /// Adds a sequence number.
        seq: bool,
        /// Adds the checksum field.
        checksum: bool,
    },
    /// Ethernet in GRE with a key: NVGRE (RFC 7637), virtual subnet `vsid`.
    Nvgre {
        /// Virtual subnet id (24 bits).
        vsid: u32,
    },
    /// ERSPAN type 1, 2 or 3 (GRE 0x88BE without a header, with a type II header, or 0x22EB).
    Erspan {
        /// Type: 1, 2 or 3.
        version: u8,
        /// Session id (10 bits; type I has none).
        session: u16,
        /// Type III: adds the 8-byte platform-specific subheader.
        platform: bool,
    },
    /// VXLAN (RFC 7348) to UDP `port`.
    Vxlan {
        /// Network identifier (24 bits).
        vni: u32,
        /// Destination port (4789, or Linux's old 8472).
        port: u16,
    },
    /// The IP packet straight inside another (IP protocol 4 or 41, by the inner version).
    IpIp,
    /// An MPLS label stack over Ethernet, no outer IP (the last label is the bottom).
    Mpls {
        /// Labels, top first.
        labels: &'static [u32],
    },
    /// GTP-U (3GPP TS 29.281) G-PDU with tunnel id `teid`.
    GtpU {
        /// Tunnel endpoint id.
        teid: u32,
    },
}

impl Encap {
    /// Whether the frame's Ethernet header travels inside (a bridged or mirrored frame).
    fn carries_ethernet(self) -> bool {
        matches!(
            self,
            Encap::Nvgre { .. } | Encap::Erspan { .. } | Encap::Vxlan { .. }
        )
    }

    /// Whether both directions go from the same end to the other (a mirror session).
    fn one_way(self) -> bool {
        matches!(self, Encap::Erspan { .. })
    }
}

/// A tunnel layer with the family of its outer IP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layer {
    /// The tunnel.
    pub encap: Encap,
    /// Outer IPv6 instead of IPv4 (ignored for MPLS, which has no outer IP).
    pub outer_v6: bool,
}

/// Tunnel `a` on IPv4 outer headers.
const fn v4(encap: Encap) -> Layer {
    Layer {
        encap,
        outer_v6: false,
    }
}

/// Tunnel `a` on IPv6 outer headers.
const fn v6(encap: Encap) -> Layer {
    Layer {
        encap,
        outer_v6: true,
    }
}

/// The IPv4 or IPv6 header and payload of a frame, without Ethernet padding.
fn ip_of(frame: &[u8]) -> Vec<u8> {
    to_linktype(frame, LinkType::Raw)
}

/// Source address of an IP packet.
fn ip_src(ip: &[u8]) -> Option<IpAddr> {
    match ip.first()? >> 4 {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(ip.get(12..16)?).ok()?)),
        6 => Some(IpAddr::from(<[u8; 16]>::try_from(ip.get(8..24)?).ok()?)),
        _ => None,
    }
}

/// An IP packet from `src` to `dst` around `payload` (IPv4 without DF, so it may be fragmented).
pub fn ip_packet(src: IpAddr, dst: IpAddr, proto: u8, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = vec![0x45, 0];
            h.extend(((20 + payload.len()) as u16).to_be_bytes());
            h.extend(id.to_be_bytes());
            h.extend([0, 0, 64, proto, 0, 0]);
            h.extend(s.octets());
            h.extend(d.octets());
            let c = checksum(&[&h]);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h
        }
        _ => {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend((payload.len() as u16).to_be_bytes());
            h.extend([proto, 64]);
            h.extend(super::packet::as_ipv6(src).octets());
            h.extend(super::packet::as_ipv6(dst).octets());
            h
        }
    };
    h.extend_from_slice(payload);
    h
}

/// An Ethernet frame between the tunnel routers around an IP packet.
fn outer_frame(ip: &[u8], forward: bool) -> Vec<u8> {
    let ethertype = if ip.first().map(|b| b >> 4) == Some(6) {
        ETHERTYPE_IPV6
    } else {
        ETHERTYPE_IPV4
    };
    let (s, d) = if forward { (0, 1) } else { (1, 0) };
    let link = Link {
        src_mac: TUNNEL_MACS[s],
        dst_mac: TUNNEL_MACS[d],
        vlans: Vec::new(),
    };
    ethernet(&link, ethertype, &[ip])
}

/// A UDP datagram with its checksum (over IPv6 required, over IPv4 left 0 as tunnels do).
fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend(dport.to_be_bytes());
    u.extend(((8 + payload.len()) as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend_from_slice(payload);
    if src.is_ipv6() || dst.is_ipv6() {
        let c = match l4_checksum(src, dst, PROTO_UDP, &u) {
            0 => 0xffff,
            c => c,
        };
        u[6..8].copy_from_slice(&c.to_be_bytes());
    }
    u
}

/// A GRE header (version 0) with the given protocol type and optional fields, around `payload`.
fn gre(
    proto: u16,
    key: Option<u32>,
    seq: Option<u32>,
    with_checksum: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut flags = 0u16;
    if with_checksum {
        flags |= 0x8000;
    }
    if key.is_some() {
        flags |= 0x2000;
    }
    if seq.is_some() {
        flags |= 0x1000;
    }
    let mut g = flags.to_be_bytes().to_vec();
    g.extend(proto.to_be_bytes());
    if with_checksum {
        g.extend([0; 4]);
    }
    if let Some(k) = key {
        g.extend(k.to_be_bytes());
    }
    if let Some(s) = seq {
        g.extend(s.to_be_bytes());
    }
    g.extend_from_slice(payload);
    if with_checksum {
        let c = checksum(&[&g]);
        g[4..6].copy_from_slice(&c.to_be_bytes());
    }
    g
}

/// Wraps an Ethernet frame in one tunnel layer between `ends` (client side first); `forward` is
/// the client-to-server direction, `n` numbers the packet (sequence numbers, IP ids).
pub fn encapsulate(
    frame: &[u8],
    layer: Layer,
    ends: (IpAddr, IpAddr),
    forward: bool,
    n: u32,
) -> Vec<u8> {
    let inner: Vec<u8> = if layer.encap.carries_ethernet() {
        frame.to_vec()
    } else {
        ip_of(frame)
    };
    let inner_v6 = inner.first().map(|b| b >> 4) == Some(6);
    let (src, dst) = if forward || layer.encap.one_way() {
        ends
    } else {
        (ends.1, ends.0)
    };
    let (proto, payload) = match layer.encap {
        Encap::Gre { key, seq, checksum } => {
            let ethertype = if inner_v6 {
                ETHERTYPE_IPV6
            } else {
                ETHERTYPE_IPV4
            };
            let seq = seq.then_some(n);
            (PROTO_GRE, gre(ethertype, key, seq, checksum, &inner))
        }
        Encap::Nvgre { vsid } => (
            PROTO_GRE,
            gre(0x6558, Some(vsid << 8 | 1), None, false, &inner),
        ),
        Encap::Erspan { version: 1, .. } => (PROTO_GRE, gre(0x88be, None, None, false, &inner)),
        Encap::Erspan {
            version: 2,
            session,
            ..
        } => {
            // Ver 1, VLAN 0 | COS 0, En 0, T 0, session | reserved, index.
            let mut h = vec![0x10, 0x00];
            h.extend((session & 0x3ff).to_be_bytes());
            h.extend((n & 0x000f_ffff).to_be_bytes());
            h.extend_from_slice(&inner);
            (PROTO_GRE, gre(0x88be, None, Some(n), false, &h))
        }
        Encap::Erspan {
            session, platform, ..
        } => {
            // Ver 2, VLAN 0 | COS 0, BSO 0, T 0, session | timestamp | SGT 0 | P 0, FT 0 (Ethernet),
            // hardware id 1, D 0, granularity 3 (IEEE 1588), O.
            let mut h = vec![0x20, 0x00];
            h.extend((session & 0x3ff).to_be_bytes());
            h.extend(n.wrapping_mul(1_000).to_be_bytes());
            h.extend([0, 0]);
            h.extend((0x0010u16 | 0x0006 | u16::from(platform)).to_be_bytes());
            if platform {
                // Platform id 3 and a port index, as switches fill it.
                h.extend([0x0c, 0, 0, 0x2a, 0, 0, 0, 0]);
            }
            h.extend_from_slice(&inner);
            (PROTO_GRE, gre(0x22eb, None, Some(n), false, &h))
        }
        Encap::Vxlan { vni, port } => {
            let mut v = vec![0x08, 0, 0, 0];
            v.extend((vni << 8).to_be_bytes());
            v.extend_from_slice(&inner);
            // The source port is a hash of the inner flow, as VTEPs pick it.
            (
                PROTO_UDP,
                udp(src, dst, 49_152 | (vni as u16 & 0x3fff), port, &v),
            )
        }
        Encap::IpIp => (if inner_v6 { PROTO_IPV6 } else { PROTO_IPV4 }, inner),
        Encap::Mpls { labels } => {
            let mut m = Vec::with_capacity(4 * labels.len() + inner.len());
            for (i, l) in labels.iter().enumerate() {
                let bottom = u32::from(i + 1 == labels.len());
                m.extend((l << 12 | bottom << 8 | 64).to_be_bytes());
            }
            m.extend_from_slice(&inner);
            let link = Link {
                src_mac: TUNNEL_MACS[usize::from(!forward)],
                dst_mac: TUNNEL_MACS[usize::from(forward)],
                vlans: Vec::new(),
            };
            return ethernet(&link, 0x8847, &[&m]);
        }
        Encap::GtpU { teid } => {
            // Version 1, PT 1, S: a sequence number follows the TEID.
            let mut g = vec![0x32, 0xff];
            g.extend(((inner.len() + 4) as u16).to_be_bytes());
            g.extend(teid.to_be_bytes());
            g.extend((n as u16).to_be_bytes());
            g.extend([0, 0]);
            g.extend_from_slice(&inner);
            (PROTO_UDP, udp(src, dst, 2152, 2152, &g))
        }
    };
    outer_frame(&ip_packet(src, dst, proto, n as u16, &payload), forward)
}

/// Cuts an IP packet into fragments carrying the given ranges of its payload (in that order:
/// ranges may be reordered, repeated or overlap). IPv4 keeps its identification; IPv6 gets a
/// Fragment header with `id` after its hop-by-hop header, if any.
pub fn fragment(ip: &[u8], ranges: &[Range<usize>], id: u32) -> Vec<Vec<u8>> {
    let v6 = ip.first().map(|b| b >> 4) == Some(6);
    let (head, next) = if v6 {
        let hbh = ip.get(6) == Some(&0);
        let at = if hbh {
            40 + (usize::from(ip[41]) + 1) * 8
        } else {
            40
        };
        (at, if hbh { ip[40] } else { ip[6] })
    } else {
        (usize::from(ip[0] & 0x0f) * 4, 0)
    };
    let payload = &ip[head..];
    let total = payload.len();
    ranges
        .iter()
        .map(|r| {
            let part = &payload[r.start.min(total)..r.end.min(total)];
            let more = r.end < total;
            let mut p = ip[..head].to_vec();
            if v6 {
                let offset = (r.start as u16 & !7) | u16::from(more);
                if head > 40 {
                    p[40] = NEXT_FRAGMENT;
                } else {
                    p[6] = NEXT_FRAGMENT;
                }
                p.extend([next, 0]);
                p.extend(offset.to_be_bytes());
                p.extend(id.to_be_bytes());
                p.extend_from_slice(part);
                let plen = (p.len() - 40) as u16;
                p[4..6].copy_from_slice(&plen.to_be_bytes());
            } else {
                let flags = (r.start / 8) as u16 | if more { 0x2000 } else { 0 };
                p[2..4].copy_from_slice(&((head + part.len()) as u16).to_be_bytes());
                p[6..8].copy_from_slice(&flags.to_be_bytes());
                p[10..12].copy_from_slice(&[0, 0]);
                let c = checksum(&[&p]);
                p[10..12].copy_from_slice(&c.to_be_bytes());
                p.extend_from_slice(part);
            }
            p
        })
        .collect()
}

/// The same Ethernet header (MACs and VLAN tags) as `frame`, around another IP packet.
fn reframe(frame: &[u8], ip: &[u8]) -> Vec<u8> {
    let (at, _) = super::pcap::l3_start(frame);
    let mut f = frame[..at].to_vec();
    f.extend_from_slice(ip);
    f.resize(f.len().max(60), 0);
    f
}

/// How the fragments of a packet are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragOrder {
    /// In order.
    InOrder,
    /// Last first.
    Reversed,
    /// In order, the first one twice (an exact duplicate).
    Duplicate,
    /// In order, plus a piece overlapping the end of the first and the start of the second.
    Overlap,
}

/// Which IP packets are fragmented, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragmenting {
    /// Fragment the outermost IP packet (after the tunnels) rather than the conversation's own.
    pub outer: bool,
    /// Packets whose IP payload is longer than this are cut into pieces of this size (a
    /// multiple of 8).
    pub size: usize,
    /// Order of the pieces.
    pub order: FragOrder,
}

/// Cuts `frame`'s IP packet per `how`, if it is long enough; otherwise returns the frame.
fn fragment_frame(frame: Vec<u8>, how: &Fragmenting, id: u32) -> Vec<Vec<u8>> {
    let ip = ip_of(&frame);
    let head = if ip.first().map(|b| b >> 4) == Some(6) {
        40
    } else {
        usize::from(ip.first().map_or(5, |b| b & 0x0f)) * 4
    };
    let len = ip.len().saturating_sub(head);
    if len <= how.size || how.size == 0 {
        return vec![frame];
    }
    let mut ranges = segments(len, &vec![how.size; len / how.size]);
    match how.order {
        FragOrder::InOrder => {}
        FragOrder::Reversed => ranges.reverse(),
        FragOrder::Duplicate => ranges.insert(1, ranges[0].clone()),
        FragOrder::Overlap => {
            let r = (how.size - 8)..(how.size + 8).min(len);
            ranges.insert(1, r);
        }
    }
    fragment(&ip, &ranges, id)
        .iter()
        .map(|p| reframe(&frame, p))
        .collect()
}

/// A flow of the tunnel and fragment captures, and what a sensor must find in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelFlow {
    /// Client (inner) address and port.
    pub client: SocketAddr,
    /// Server (inner) address and port.
    pub server: SocketAddr,
    /// The server name in the ClientHello.
    pub sni: &'static str,
    /// The app the default rules give it, or None when the hello is lost on purpose.
    pub app: Option<&'static str>,
    /// Tunnel kinds its packets go through, as the sensor names them.
    pub kinds: Vec<&'static str>,
    /// The segment the flow is keyed with: kind and number.
    pub segment: Option<(&'static str, u32)>,
    /// VLAN ids the flow's events carry.
    pub vlan: Vec<u16>,
    /// One-line description.
    pub description: &'static str,
}

/// One flow of a tunnel or fragment capture.
struct Case<'a> {
    client: SocketAddr,
    server: SocketAddr,
    sni: &'static str,
    app: Option<&'static str>,
    /// Tunnels, innermost first.
    layers: &'a [Layer],
    /// VLAN ids on the conversation's own frames.
    vlans: &'a [u16],
    frag: Option<Fragmenting>,
    desc: &'static str,
}

impl Case<'_> {
    /// What a sensor must find.
    fn expect(&self) -> TunnelFlow {
        let mut kinds: Vec<&'static str> = Vec::new();
        let mut segment = None;
        // The innermost Ethernet header's tags: the conversation's own frame when it travels
        // whole (or without tunnels), else an outer frame, and those carry no tags.
        let vlan = match self.layers.first() {
            Some(l) if !l.encap.carries_ethernet() => Vec::new(),
            _ => self.vlans.to_vec(),
        };
        for l in self.layers {
            let (kind, seg) = match l.encap {
                Encap::Gre { .. } => ("gre", None),
                Encap::Nvgre { vsid } => ("gre", Some(("nvgre", vsid))),
                Encap::Erspan { version: 1, .. } => ("erspan", None),
                Encap::Erspan { session, .. } => ("erspan", Some(("erspan", u32::from(session)))),
                Encap::Vxlan { vni, .. } => ("vxlan", Some(("vxlan", vni))),
                Encap::IpIp => ("ipip", None),
                Encap::Mpls { .. } => ("mpls", None),
                Encap::GtpU { .. } => ("gtpu", None),
            };
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
            // The innermost segment wins.
            segment = segment.or(seg);
        }
        kinds.sort_unstable();
        TunnelFlow {
            client: self.client,
            server: self.server,
            sni: self.sni,
            app: self.app,
            kinds,
            segment,
            vlan,
            description: self.desc,
        }
    }

    /// The case's packets: a TLS session with its hello, wrapped and cut as the case says.
    fn packets(&self, start_ns: u64, seed: u64) -> Vec<Packet> {
        let mut path = Path::new(self.client, self.server);
        path.vlans = self.vlans.to_vec();
        let mut c = TcpConv::new(path, start_ns, seed);
        c.rtt_ns = Rng::new(seed).range(10, 60) * 1_000_000;
        c.handshake();
        c.client_send(&client_hello(&ClientHelloSpec::new(self.sni, seed)));
        c.server_send(&server_hello_and_more(mix(seed, 1), 4_200));
        c.client_send(&app_data(mix(seed, 2), 480));
        c.server_send(&app_data(mix(seed, 3), 9_000));
        c.close();
        let ends = |i: usize, v6: bool| -> (IpAddr, IpAddr) {
            let i = (seed as usize % 200) * 4 + i;
            if v6 {
                let n = i as u16;
                (
                    IpAddr::from([0x2001, 0xdb8, 0xffff, 0, 0, 0, n, 1]),
                    IpAddr::from([0x2001, 0xdb8, 0xffff, 0, 0, 0, n, 2]),
                )
            } else {
                let (hi, lo) = ((i >> 8) as u8, i as u8);
                (
                    IpAddr::from([198, 18, hi, lo]),
                    IpAddr::from([198, 19, hi, lo]),
                )
            }
        };
        let mut out = Vec::new();
        for (n, p) in c.take_packets().into_iter().enumerate() {
            let n = n as u32 + 1;
            let forward = ip_src(&ip_of(&p.frame)) == Some(self.client.ip());
            let mut frames = vec![p.frame];
            let id = mix(seed, u64::from(n)) as u32;
            if let Some(f) = self.frag.filter(|f| !f.outer) {
                frames = frames
                    .into_iter()
                    .flat_map(|fr| fragment_frame(fr, &f, id))
                    .collect();
            }
            for (i, l) in self.layers.iter().enumerate() {
                let e = ends(i, l.outer_v6);
                frames = frames
                    .iter()
                    .map(|fr| encapsulate(fr, *l, e, forward, n))
                    .collect();
            }
            if let Some(f) = self.frag.filter(|f| f.outer) {
                frames = frames
                    .into_iter()
                    .flat_map(|fr| fragment_frame(fr, &f, id))
                    .collect();
            }
            for (i, frame) in frames.into_iter().enumerate() {
                out.push(Packet {
                    ts_ns: p.ts_ns + i as u64 * 1_000,
                    frame,
                });
            }
        }
        out
    }
}

/// Builds the capture of `cases`, one starting every 1.5 s (a case with the same endpoints as
/// the one before starts 1 ms after it, so the two overlap in time), in time order, and its
/// manifest.
fn build(cases: &[Case<'_>], salt: u64) -> (Vec<Packet>, Vec<TunnelFlow>) {
    let mut packets = Vec::new();
    let mut start = EPOCH_NS;
    for (i, c) in cases.iter().enumerate() {
        let with_previous =
            i > 0 && (cases[i - 1].client, cases[i - 1].server) == (c.client, c.server);
        start += if with_previous {
            1_000_000
        } else {
            1_500_000_000
        };
        packets.extend(c.packets(start, mix(SEED ^ salt, i as u64)));
    }
    packets.sort_by_key(|p| p.ts_ns);
    (packets, cases.iter().map(Case::expect).collect())
}

fn sock(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

fn client4(n: u8) -> SocketAddr {
    sock([10, 8, 0, n], 40_000 + u16::from(n))
}

fn client6(n: u16) -> SocketAddr {
    sock([0xfd00, 8, 0, 0, 0, 0, 0, n], 40_000 + n)
}

fn doc6(n: u16) -> IpAddr {
    IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, n])
}

/// GRE with every optional field.
const GRE_FULL: Encap = Encap::Gre {
    key: Some(0x0102_0304),
    seq: true,
    checksum: true,
};
/// Plain GRE.
const GRE: Encap = Encap::Gre {
    key: None,
    seq: false,
    checksum: false,
};

/// The tunnel capture: a TLS session in each tunnel kind, over IPv4 and IPv6 outer headers,
/// nested, and two VXLAN segments carrying the same inner 5-tuple at the same time. Returns the
/// packets in time order and the manifest.
pub fn tunnels() -> (Vec<Packet>, Vec<TunnelFlow>) {
    let same_client = client4(30);
    let same_server = sock([192, 0, 2, 30], 443);
    #[rustfmt::skip]
    let cases = [
        Case { client: client4(1), server: sock([192, 0, 2, 1], 443), sni: "g.whatsapp.net", app: Some("whatsapp"), layers: &[v4(GRE_FULL)], vlans: &[], frag: None, desc: "IPv4 in GRE with checksum, key and sequence number" },
        Case { client: client6(2), server: sock(doc6(2), 443), sni: "chat.signal.org", app: Some("signal"), layers: &[v6(GRE)], vlans: &[], frag: None, desc: "IPv6 in GRE over IPv6" },
        Case { client: client4(3), server: sock([192, 0, 2, 3], 443), sni: "zoom.us", app: Some("zoom"), layers: &[v4(Encap::Nvgre { vsid: 0x1234 })], vlans: &[], frag: None, desc: "Ethernet in GRE: NVGRE, virtual subnet 0x1234" },
        Case { client: client4(4), server: sock([198, 51, 100, 4], 443), sni: "mmg.whatsapp.net", app: Some("whatsapp"), layers: &[v4(Encap::Erspan { version: 1, session: 0, platform: false })], vlans: &[10], frag: None, desc: "ERSPAN type I mirror of VLAN 10" },
        Case { client: client4(5), server: sock([198, 51, 100, 5], 443), sni: "cdn.signal.org", app: Some("signal"), layers: &[v4(Encap::Erspan { version: 2, session: 100, platform: false })], vlans: &[20], frag: None, desc: "ERSPAN type II, session 100" },
        Case { client: client4(6), server: sock([198, 51, 100, 6], 443), sni: "us05web.zoom.us", app: Some("zoom"), layers: &[v4(Encap::Erspan { version: 3, session: 200, platform: true })], vlans: &[], frag: None, desc: "ERSPAN type III with the platform-specific subheader, session 200" },
        Case { client: client4(7), server: sock([198, 51, 100, 7], 443), sni: "web.telegram.org", app: Some("telegram"), layers: &[v6(Encap::Erspan { version: 3, session: 201, platform: false })], vlans: &[], frag: None, desc: "ERSPAN type III over IPv6, session 201" },
        Case { client: same_client, server: same_server, sni: "g.whatsapp.net", app: Some("whatsapp"), layers: &[v4(Encap::Vxlan { vni: 5001, port: 4789 })], vlans: &[], frag: None, desc: "VXLAN 5001: one site's 10.8.0.30 talking to 192.0.2.30" },
        Case { client: same_client, server: same_server, sni: "chat.signal.org", app: Some("signal"), layers: &[v4(Encap::Vxlan { vni: 5002, port: 4789 })], vlans: &[], frag: None, desc: "VXLAN 5002: another site, the same inner 5-tuple at the same time" },
        Case { client: client4(9), server: sock([203, 0, 113, 9], 443), sni: "web.telegram.org", app: Some("telegram"), layers: &[v4(Encap::Vxlan { vni: 42, port: 8472 })], vlans: &[], frag: None, desc: "VXLAN on Linux's old port 8472" },
        Case { client: client4(10), server: sock([203, 0, 113, 10], 443), sni: "chat.signal.org", app: Some("signal"), layers: &[v4(Encap::IpIp)], vlans: &[], frag: None, desc: "IPv4 in IPv4 (protocol 4)" },
        Case { client: client6(11), server: sock(doc6(11), 443), sni: "web.whatsapp.com", app: Some("whatsapp"), layers: &[v4(Encap::IpIp)], vlans: &[], frag: None, desc: "IPv6 in IPv4 (protocol 41, 6in4)" },
        Case { client: client4(12), server: sock([203, 0, 113, 12], 443), sni: "zoom.us", app: Some("zoom"), layers: &[v6(Encap::IpIp)], vlans: &[], frag: None, desc: "IPv4 in IPv6 (4in6)" },
        Case { client: client6(13), server: sock(doc6(13), 443), sni: "discord.com", app: Some("discord"), layers: &[v6(Encap::IpIp)], vlans: &[], frag: None, desc: "IPv6 in IPv6" },
        Case { client: client4(14), server: sock([192, 0, 2, 14], 443), sni: "teams.microsoft.com", app: Some("teams"), layers: &[v4(Encap::Mpls { labels: &[16, 1001] })], vlans: &[], frag: None, desc: "MPLS, two labels, IPv4" },
        Case { client: client6(15), server: sock(doc6(15), 443), sni: "g.whatsapp.net", app: Some("whatsapp"), layers: &[v4(Encap::Mpls { labels: &[2] })], vlans: &[], frag: None, desc: "MPLS, IPv6 explicit-null label, IPv6" },
        Case { client: client4(16), server: sock([192, 0, 2, 16], 443), sni: "chat.signal.org", app: Some("signal"), layers: &[v4(Encap::GtpU { teid: 0xabcd })], vlans: &[], frag: None, desc: "GTP-U (mobile core)" },
        Case { client: client4(17), server: sock([192, 0, 2, 17], 443), sni: "g.whatsapp.net", app: Some("whatsapp"), layers: &[v4(Encap::Vxlan { vni: 77, port: 4789 }), v4(GRE)], vlans: &[], frag: None, desc: "VXLAN inside GRE" },
        Case { client: client4(18), server: sock([192, 0, 2, 18], 443), sni: "zoom.us", app: Some("zoom"), layers: &[v4(Encap::IpIp), v4(Encap::GtpU { teid: 7 }), v4(Encap::Mpls { labels: &[300] })], vlans: &[], frag: None, desc: "IP-in-IP inside GTP-U inside MPLS: three deep" },
        Case { client: client4(19), server: sock([192, 0, 2, 19], 443), sni: "mmg.whatsapp.net", app: Some("whatsapp"), layers: &[v4(GRE_FULL)], vlans: &[], frag: Some(Fragmenting { outer: true, size: 512, order: FragOrder::InOrder }), desc: "GRE whose outer IPv4 packets are fragmented (512-byte pieces)" },
        Case { client: client4(20), server: sock([192, 0, 2, 20], 443), sni: "cdn.signal.org", app: Some("signal"), layers: &[v6(GRE)], vlans: &[], frag: Some(Fragmenting { outer: true, size: 600, order: FragOrder::Reversed }), desc: "GRE over IPv6, outer packets fragmented, pieces reversed" },
    ];
    build(&cases, 1)
}

/// The fragment capture: ClientHellos cut into IPv4 and IPv6 fragments, in order, reversed, with
/// a duplicate, with an overlap (the hello is lost: no app), and inside a VXLAN tunnel.
pub fn fragments() -> (Vec<Packet>, Vec<TunnelFlow>) {
    let frag = |size, order| {
        Some(Fragmenting {
            outer: false,
            size,
            order,
        })
    };
    #[rustfmt::skip]
    let cases = [
        Case { client: client4(40), server: sock([192, 0, 2, 40], 443), sni: "g.whatsapp.net", app: Some("whatsapp"), layers: &[], vlans: &[], frag: frag(256, FragOrder::InOrder), desc: "IPv4 fragments of 256 bytes, in order" },
        Case { client: client6(41), server: sock(doc6(41), 443), sni: "chat.signal.org", app: Some("signal"), layers: &[], vlans: &[], frag: frag(256, FragOrder::InOrder), desc: "IPv6 Fragment headers, 256-byte pieces, in order" },
        Case { client: client4(42), server: sock([192, 0, 2, 42], 443), sni: "zoom.us", app: Some("zoom"), layers: &[], vlans: &[100], frag: frag(128, FragOrder::Reversed), desc: "IPv4 fragments reversed, on VLAN 100" },
        Case { client: client6(43), server: sock(doc6(43), 443), sni: "web.telegram.org", app: Some("telegram"), layers: &[], vlans: &[], frag: frag(200, FragOrder::Reversed), desc: "IPv6 fragments reversed" },
        Case { client: client4(44), server: sock([192, 0, 2, 44], 443), sni: "discord.com", app: Some("discord"), layers: &[], vlans: &[], frag: frag(256, FragOrder::Duplicate), desc: "the first fragment sent twice (an exact duplicate)" },
        Case { client: client4(45), server: sock([192, 0, 2, 45], 443), sni: "teams.microsoft.com", app: None, layers: &[], vlans: &[], frag: frag(256, FragOrder::Overlap), desc: "an overlapping fragment: the datagram is dropped, the hello lost" },
        Case { client: client6(46), server: sock(doc6(46), 443), sni: "mmg.whatsapp.net", app: None, layers: &[], vlans: &[], frag: frag(256, FragOrder::Overlap), desc: "an overlapping IPv6 fragment: dropped likewise" },
        Case { client: client4(47), server: sock([192, 0, 2, 47], 443), sni: "cdn.signal.org", app: Some("signal"), layers: &[v4(Encap::Vxlan { vni: 9, port: 4789 })], vlans: &[], frag: frag(304, FragOrder::Reversed), desc: "fragments of the inner packet inside VXLAN, reversed" },
    ];
    build(&cases, 2)
}

/// The fragment flood: `datagrams` first fragments of `size` bytes that never complete (far past
/// every cap), a TLS session to WhatsApp in the middle of the flood, and a ClientHello to Signal
/// in IPv4 fragments right after it. Returns the packets in time order and the two flows.
pub fn fragment_flood(datagrams: usize, size: usize) -> (Vec<Packet>, Vec<TunnelFlow>) {
    let size = size.max(8) & !7;
    let mut rng = Rng::new(mix(SEED, 3));
    let mut packets: Vec<Packet> = (0..datagrams)
        .map(|i| {
            let src = Ipv4Addr::from(0x0a63_0000 + (i as u32 % 60_000));
            let dst = Ipv4Addr::new(192, 0, 2, 200);
            let id = rng.next_u64() as u16;
            let body = rng.bytes(size + 8);
            let dgram = udp(src.into(), dst.into(), 5_000, 5_001, &body);
            let ip = ip_packet(src.into(), dst.into(), PROTO_UDP, id, &dgram);
            let first_piece = 0..size;
            let first = fragment(&ip, std::slice::from_ref(&first_piece), 0);
            Packet {
                ts_ns: EPOCH_NS + i as u64 * 10_000,
                frame: outer_frame(&first[0], true),
            }
        })
        .collect();
    let span = datagrams as u64 * 10_000;
    #[rustfmt::skip]
    let cases = [
        Case { client: client4(60), server: sock([192, 0, 2, 60], 443), sni: "g.whatsapp.net", app: Some("whatsapp"), layers: &[], vlans: &[], frag: None, desc: "a TLS session amid the flood" },
        Case { client: client4(61), server: sock([192, 0, 2, 61], 443), sni: "chat.signal.org", app: Some("signal"), layers: &[], vlans: &[], frag: Some(Fragmenting { outer: false, size: 256, order: FragOrder::InOrder }), desc: "a fragmented hello right after the flood" },
    ];
    packets.extend(cases[0].packets(EPOCH_NS + span / 2, mix(SEED, 60)));
    packets.extend(cases[1].packets(EPOCH_NS + span + 1_000, mix(SEED, 61)));
    packets.sort_by_key(|p| p.ts_ns);
    (packets, cases.iter().map(Case::expect).collect())
}

/// Wraps `frame` in `depth` IP-in-IP layers: more than a sensor opens is a decode error.
pub fn nested_ip_in_ip(frame: &[u8], depth: usize) -> Vec<u8> {
    let ends = (
        IpAddr::from(Ipv6Addr::from([0x2001, 0xdb8, 0xfffe, 0, 0, 0, 0, 1])),
        IpAddr::from(Ipv6Addr::from([0x2001, 0xdb8, 0xfffe, 0, 0, 0, 0, 2])),
    );
    (0..depth).fold(frame.to_vec(), |f, i| {
        encapsulate(&f, v6(Encap::IpIp), ends, true, i as u32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::parse;

    #[test]
    fn fragment_ranges_reassemble_to_the_packet() {
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        let dst: IpAddr = "10.0.0.2".parse().unwrap();
        let ip = ip_packet(src, dst, PROTO_UDP, 9, &udp(src, dst, 1, 2, &[7; 100]));
        let parts = fragment(&ip, &[0..48, 48..96, 96..108], 0);
        assert_eq!(parts.len(), 3);
        assert_eq!(checksum(&[&parts[1][..20]]), 0, "header checksum");
        assert_eq!((parts[1][6] & 0x20, parts[2][6] & 0x20), (0x20, 0));
        let body: Vec<u8> = parts.iter().flat_map(|p| p[20..].to_vec()).collect();
        assert_eq!(body, ip[20..]);
        let s6: IpAddr = "fd00::1".parse().unwrap();
        let d6: IpAddr = "2001:db8::1".parse().unwrap();
        let ip6 = ip_packet(s6, d6, PROTO_UDP, 0, &udp(s6, d6, 1, 2, &[7; 100]));
        let parts = fragment(&ip6, &[0..64, 64..108], 0x55);
        assert_eq!((parts[0][6], parts[0][40], parts[0][43]), (44, 17, 1));
        assert_eq!(u16::from_be_bytes([parts[1][42], parts[1][43]]), 64);
    }

    #[test]
    fn tunnels_and_fragments_are_deterministic_and_in_time_order() {
        // Picket's tests/tunnels.rs decodes them: inner flows, segments, reassembly counts.
        let (packets, manifest) = tunnels();
        assert_eq!(packets, tunnels().0);
        assert!(packets.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
        assert!(!manifest.is_empty());
        let (packets, _) = fragments();
        assert_eq!(packets, fragments().0);
        assert!(packets.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    }

    #[test]
    fn conversation_frames_stay_valid_under_the_tunnels() {
        // The inner frames are the conversation's, checksums and all.
        let (packets, _) = tunnels();
        let erspan: Vec<&Packet> = packets
            .iter()
            .filter(|p| {
                let f = &p.frame;
                // Unfragmented IPv4, GRE without flags, ERSPAN type I.
                f.len() > 60
                    && f[23] == PROTO_GRE
                    && f[20..22] == [0, 0]
                    && f[34..38] == [0, 0, 0x88, 0xbe]
            })
            .collect();
        assert!(!erspan.is_empty());
        for p in erspan {
            let inner = &p.frame[14 + 20 + 4..];
            parse(inner);
        }
    }

    #[test]
    fn nested_ip_in_ip_adds_one_ipv6_header_per_layer() {
        // Picket refuses it past its depth limit (tests/tunnels.rs).
        let frame = &tunnels().0[0].frame;
        let inner = to_linktype(frame, LinkType::Raw);
        let deep = nested_ip_in_ip(frame, 5);
        assert_eq!(deep[12..14], ETHERTYPE_IPV6.to_be_bytes());
        assert_eq!(deep[14 + 5 * 40..], inner[..]);
        for layer in 0..5 {
            let ip = &deep[14 + layer * 40..];
            let next = match (layer, inner[0] >> 4) {
                (4, 4) => PROTO_IPV4,
                _ => PROTO_IPV6,
            };
            assert_eq!((ip[0] >> 4, ip[6]), (6, next), "layer {layer}");
        }
    }
}

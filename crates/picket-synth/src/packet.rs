//! Frame builders: Ethernet II with 0..=3 VLAN tags, IPv4 (optional options) or IPv6
//! (optional hop-by-hop header), TCP and UDP, all with correct lengths and checksums.

use std::net::{IpAddr, Ipv6Addr};

/// TCP FIN flag.
pub const FIN: u8 = 0x01;
/// TCP SYN flag.
pub const SYN: u8 = 0x02;
/// TCP RST flag.
pub const RST: u8 = 0x04;
/// TCP PSH flag.
pub const PSH: u8 = 0x08;
/// TCP ACK flag.
pub const ACK: u8 = 0x10;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Tag protocol identifier of a single or inner 802.1Q VLAN tag.
pub const TPID_8021Q: u16 = 0x8100;
/// Tag protocol identifier of the outer 802.1ad (QinQ) VLAN tag.
pub const TPID_8021AD: u16 = 0x88a8;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// Smallest Ethernet frame without FCS; shorter frames are zero-padded like on the wire.
const MIN_FRAME: usize = 60;

/// Layer-2 framing of a frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// Source MAC address.
    pub src_mac: [u8; 6],
    /// Destination MAC address.
    pub dst_mac: [u8; 6],
    /// VLAN IDs, outermost first; with two or more tags the outer one is 802.1ad (0x88a8).
    pub vlans: Vec<u16>,
}

/// Layer-3 header fields of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpHdr {
    /// Source address; a family mismatch with `dst` maps the IPv4 side into IPv6.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 identification (unused for IPv6).
    pub id: u16,
    /// Adds an IPv4 Router Alert option, or an IPv6 hop-by-hop extension header.
    pub options: bool,
}

/// TCP header fields of a segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpHdr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flag bits (`SYN`, `ACK`, ...).
    pub flags: u8,
    /// Receive window.
    pub window: u16,
    /// MSS option value; when set, window-scale and SACK-permitted options are added too.
    pub mss: Option<u16>,
}

/// Builds an Ethernet frame carrying one TCP segment.
pub fn tcp_frame(link: &Link, ip: &IpHdr, tcp: &TcpHdr, payload: &[u8]) -> Vec<u8> {
    let mut opts = Vec::new();
    if let Some(mss) = tcp.mss {
        opts.extend([2, 4]);
        opts.extend(mss.to_be_bytes());
        opts.extend([1, 3, 3, 7, 1, 1, 4, 2]);
    }
    let mut seg = Vec::with_capacity(20 + opts.len() + payload.len());
    seg.extend(tcp.src_port.to_be_bytes());
    seg.extend(tcp.dst_port.to_be_bytes());
    seg.extend(tcp.seq.to_be_bytes());
    seg.extend(tcp.ack.to_be_bytes());
    seg.extend([((20 + opts.len()) / 4 * 16) as u8, tcp.flags]);
    seg.extend(tcp.window.to_be_bytes());
    seg.extend([0; 4]);
    seg.extend(opts);
    seg.extend_from_slice(payload);
    ip_frame(link, ip, PROTO_TCP, seg, 16)
}

/// Builds an Ethernet frame carrying one UDP datagram.
pub fn udp_frame(link: &Link, ip: &IpHdr, src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut dgram = Vec::with_capacity(8 + payload.len());
    dgram.extend(src_port.to_be_bytes());
    dgram.extend(dst_port.to_be_bytes());
    dgram.extend(((8 + payload.len()) as u16).to_be_bytes());
    dgram.extend([0; 2]);
    dgram.extend_from_slice(payload);
    ip_frame(link, ip, PROTO_UDP, dgram, 6)
}

/// Builds an Ethernet II frame with VLAN tags around `parts`, zero-padded to 60 bytes.
pub fn ethernet(link: &Link, ethertype: u16, parts: &[&[u8]]) -> Vec<u8> {
    let len = 14 + 4 * link.vlans.len() + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut f = Vec::with_capacity(len.max(MIN_FRAME));
    f.extend(link.dst_mac);
    f.extend(link.src_mac);
    for (i, vid) in link.vlans.iter().enumerate() {
        let tpid = if i == 0 && link.vlans.len() > 1 {
            TPID_8021AD
        } else {
            TPID_8021Q
        };
        f.extend(tpid.to_be_bytes());
        f.extend((vid & 0x0fff).to_be_bytes());
    }
    f.extend(ethertype.to_be_bytes());
    for p in parts {
        f.extend_from_slice(p);
    }
    f.resize(f.len().max(MIN_FRAME), 0);
    f
}

/// Internet checksum (RFC 1071) over the concatenation of `parts`.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let (mut sum, mut odd) = (0u64, false);
    for &b in parts.iter().flat_map(|p| p.iter()) {
        sum += if odd { u64::from(b) } else { u64::from(b) << 8 };
        odd = !odd;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// TCP/UDP checksum of `l4` with the IPv4 or IPv6 pseudo-header (0 when `l4` already holds a valid one).
pub fn l4_checksum(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) -> u16 {
    checksum(&[&Pair::new(src, dst).pseudo_header(proto, l4.len()), l4])
}

/// Source and destination addresses of one family.
enum Pair {
    /// IPv4 source and destination.
    V4([u8; 4], [u8; 4]),
    /// IPv6 source and destination.
    V6([u8; 16], [u8; 16]),
}

impl Pair {
    /// Pairs two addresses, mapping IPv4 into IPv6 when the families differ.
    fn new(src: IpAddr, dst: IpAddr) -> Self {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Pair::V4(s.octets(), d.octets()),
            _ => Pair::V6(as_ipv6(src).octets(), as_ipv6(dst).octets()),
        }
    }

    /// Pseudo-header for the transport checksum.
    fn pseudo_header(&self, proto: u8, len: usize) -> Vec<u8> {
        match self {
            Pair::V4(s, d) => [&s[..], d, &[0, proto], &(len as u16).to_be_bytes()].concat(),
            Pair::V6(s, d) => [&s[..], d, &(len as u32).to_be_bytes(), &[0, 0, 0, proto]].concat(),
        }
    }
}

/// Fills in the transport checksum at `csum_at` and wraps `l4` in IP and Ethernet headers.
fn ip_frame(link: &Link, ip: &IpHdr, proto: u8, mut l4: Vec<u8>, csum_at: usize) -> Vec<u8> {
    let mut sum = l4_checksum(ip.src, ip.dst, proto, &l4);
    if sum == 0 && proto == PROTO_UDP {
        sum = 0xffff;
    }
    l4[csum_at..csum_at + 2].copy_from_slice(&sum.to_be_bytes());
    let (ethertype, l3) = match Pair::new(ip.src, ip.dst) {
        Pair::V4(s, d) => {
            let opts: &[u8] = if ip.options { &[0x94, 4, 0, 0] } else { &[] };
            let hlen = 20 + opts.len();
            let mut h = Vec::with_capacity(hlen);
            h.extend([0x40 | (hlen / 4) as u8, 0]);
            h.extend(((hlen + l4.len()) as u16).to_be_bytes());
            h.extend(ip.id.to_be_bytes());
            h.extend([0x40, 0, ip.ttl, proto, 0, 0]);
            h.extend(s);
            h.extend(d);
            h.extend_from_slice(opts);
            let c = checksum(&[&h]);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            (ETHERTYPE_IPV4, h)
        }
        Pair::V6(s, d) => {
            // Hop-by-hop header: next header, length 0 (8 bytes), PadN option of 4 bytes.
            let hbh: &[u8] = if ip.options {
                &[proto, 0, 1, 4, 0, 0, 0, 0]
            } else {
                &[]
            };
            let mut h = Vec::with_capacity(40 + hbh.len());
            h.extend([0x60, 0, 0, 0]);
            h.extend(((hbh.len() + l4.len()) as u16).to_be_bytes());
            h.extend([if ip.options { 0 } else { proto }, ip.ttl]);
            h.extend(s);
            h.extend(d);
            h.extend_from_slice(hbh);
            (ETHERTYPE_IPV6, h)
        }
    };
    ethernet(link, ethertype, &[&l3, &l4])
}

/// Returns the IPv6 form of an address (IPv4-mapped for IPv4).
pub fn as_ipv6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::parse;

    fn ip(src: &str, dst: &str, options: bool) -> IpHdr {
        IpHdr {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ttl: 64,
            id: 7,
            options,
        }
    }

    #[test]
    fn checksum_rfc_example() {
        let h = [
            0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0,
            0xc7,
        ];
        assert_eq!(checksum(&[&h]), 0xb861);
        assert_eq!(checksum(&[&h[..3], &h[3..]]), 0xb861);
    }

    #[test]
    fn tcp_frame_checksums_v4() {
        let tcp = TcpHdr {
            src_port: 1,
            dst_port: 443,
            seq: 9,
            flags: SYN,
            mss: Some(1460),
            ..TcpHdr::default()
        };
        let f = tcp_frame(
            &Link::default(),
            &ip("10.1.0.1", "192.0.2.1", true),
            &tcp,
            &[],
        );
        assert_eq!(f.len(), 14 + 24 + 32);
        let p = parse(&f);
        assert_eq!(
            (p.proto, p.flags, p.seq, p.dst.port()),
            (PROTO_TCP, SYN, 9, 443)
        );
    }

    #[test]
    fn tcp_frame_checksums_v6_hop_by_hop() {
        let tcp = TcpHdr {
            src_port: 5,
            dst_port: 443,
            flags: ACK | PSH,
            ..TcpHdr::default()
        };
        let f = tcp_frame(
            &Link::default(),
            &ip("fd00::1", "2001:db8::1", true),
            &tcp,
            b"hello, odd",
        );
        assert_eq!(parse(&f).payload, b"hello, odd");
    }

    #[test]
    fn udp_frame_checksums_and_padding() {
        let f = udp_frame(
            &Link::default(),
            &ip("10.1.0.1", "192.0.2.53", false),
            5353,
            53,
            b"abc",
        );
        assert_eq!(f.len(), MIN_FRAME);
        let p = parse(&f);
        assert_eq!((p.proto, p.payload.as_slice()), (PROTO_UDP, &b"abc"[..]));
        let f6 = udp_frame(
            &Link::default(),
            &ip("fd00::1", "2001:db8::53", false),
            1,
            53,
            b"xyz",
        );
        assert_eq!(parse(&f6).payload, b"xyz");
    }

    #[test]
    fn ethernet_vlan_tags() {
        let link = Link {
            vlans: vec![200, 20],
            ..Link::default()
        };
        let f = udp_frame(&link, &ip("10.1.0.1", "192.0.2.53", false), 1, 2, &[]);
        assert_eq!(parse(&f).vlans, [(TPID_8021AD, 200), (TPID_8021Q, 20)]);
        let one = Link {
            vlans: vec![100],
            ..Link::default()
        };
        assert_eq!(
            parse(&udp_frame(
                &one,
                &ip("10.0.0.1", "10.0.0.2", false),
                1,
                2,
                &[]
            ))
            .vlans,
            [(TPID_8021Q, 100)]
        );
    }

    #[test]
    fn ip_frame_mixed_family_maps_v4() {
        let f = udp_frame(
            &Link::default(),
            &ip("10.1.0.1", "2001:db8::1", false),
            1,
            2,
            b"q",
        );
        assert_eq!(
            parse(&f).src.ip(),
            IpAddr::V6(as_ipv6("10.1.0.1".parse().unwrap()))
        );
    }
}

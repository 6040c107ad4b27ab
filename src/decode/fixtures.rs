//! Frames and headers built for the decode tests, shared by every layer's tests.

pub(super) use super::link::{ETH_IPV4, ETH_IPV6, ETH_VLAN};
use super::{decode, PacketMeta, Skip, Transport};
use crate::capture::{LinkType, Timestamp};
use std::net::IpAddr;

/// Ethernet header (dst, src MACs) followed by the given ether type.
pub(super) fn eth(ether_type: u16) -> Vec<u8> {
    let mut v = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    v.extend(ether_type.to_be_bytes());
    v
}

pub(super) fn vlan_tag(tpid_next: u16, id: u16) -> [u8; 4] {
    let t = id.to_be_bytes();
    let n = tpid_next.to_be_bytes();
    [t[0], t[1], n[0], n[1]]
}

#[rustfmt::skip]
pub(super) const IPV4_TCP_SYN_ACK_PAYLOAD: &[u8] = &[
    0x45, 0x00, 0x00, 0x2c, 0x00, 0x01, 0x40, 0x00, // v4 ihl=5 len=44 DF
    0x40, 0x06, 0x00, 0x00, 10, 1, 0, 1,             // ttl proto=tcp csum src
    192, 0, 2, 7,                                    // dst
    0xc3, 0x50, 0x01, 0xbb, 0x00, 0x00, 0x03, 0xe8, // sport 50000 dport 443 seq 1000
    0x00, 0x00, 0x07, 0xd0, 0x50, 0x18, 0xff, 0xff, // ack 2000 off=5 PSH|ACK win
    0x00, 0x00, 0x00, 0x00, b'a', b'b', b'c', b'd', // csum urg payload "abcd"
];

#[rustfmt::skip]
pub(super) const IPV6_HOPBYHOP_UDP: &[u8] = &[
    0x60, 0x00, 0x00, 0x00, 0x00, 0x12, 0x00, 0x40, // v6 plen=18 next=hop-by-hop
    0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // src fd00::1
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // dst 2001:db8::2
    0x11, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, // hop-by-hop next=udp, PadN
    0x13, 0x88, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, // udp 5000 -> 53 len 10
    0x01, 0x02,                                     // payload
];

/// An IPv4 header (no options) with the given fragment fields, around `payload`.
pub(super) fn ipv4_frag(
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

pub(super) fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = ipv4_frag(proto, [10, 0, 0, 1], 1, 0, false, payload);
    h[6] = 0x40; // DF
    h
}

pub(super) fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend((payload.len() as u16).to_be_bytes());
    h.extend([next, 64]);
    h.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    h.extend(payload);
    h
}

pub(super) fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend(dport.to_be_bytes());
    u.extend(((8 + payload.len()) as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend(payload);
    u
}

/// The TCP segment (header and "abcd") of the IPv4 fixture.
pub(super) fn tcp_segment() -> &'static [u8] {
    &IPV4_TCP_SYN_ACK_PAYLOAD[20..]
}

pub(super) fn eth_with(ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = eth(ether_type);
    f.extend(payload);
    f
}

/// An inner Ethernet frame with one VLAN tag around the IPv4 fixture.
pub(super) fn inner_tagged_frame(vid: u16) -> Vec<u8> {
    let mut f = eth(ETH_VLAN);
    f.extend(vlan_tag(ETH_IPV4, vid));
    f.extend(IPV4_TCP_SYN_ACK_PAYLOAD);
    f
}

pub(super) fn vxlan(vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0];
    v.extend((vni << 8).to_be_bytes());
    v.extend(inner);
    v
}

pub(super) fn gre(proto: u16, payload: &[u8]) -> Vec<u8> {
    let mut g = vec![0, 0];
    g.extend(proto.to_be_bytes());
    g.extend(payload);
    g
}

pub(super) fn ok(f: &[u8]) -> PacketMeta {
    decode(LinkType::Ethernet, Timestamp(0), 0, f).unwrap()
}

pub(super) fn err(f: &[u8]) -> Skip {
    decode(LinkType::Ethernet, Timestamp(0), 0, f).unwrap_err()
}

/// The inner flow of the IPv4 fixture: 10.1.0.1:50000 -> 192.0.2.7:443, payload "abcd".
pub(super) fn assert_fixture_flow(m: &PacketMeta, f: &[u8]) {
    assert_eq!(m.src.ip(), "10.1.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(m.dst.ip(), "192.0.2.7".parse::<IpAddr>().unwrap());
    assert_eq!(
        (m.transport, m.sport, m.dport),
        (Transport::Tcp, 50000, 443)
    );
    assert_eq!(m.payload(f), b"abcd");
}

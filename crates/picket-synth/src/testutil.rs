//! Test-only frame parser that asserts every length and checksum it meets.

use super::packet::{checksum, l4_checksum, PROTO_TCP, PROTO_UDP};
use std::net::{IpAddr, SocketAddr};

/// The fields of one parsed Ethernet/IP/TCP-or-UDP frame.
#[derive(Debug)]
pub struct Parsed {
    /// VLAN tags as (TPID, VID), outermost first.
    pub vlans: Vec<(u16, u16)>,
    /// Source endpoint.
    pub src: SocketAddr,
    /// Destination endpoint.
    pub dst: SocketAddr,
    /// IP protocol number.
    pub proto: u8,
    /// TCP flags (0 for UDP).
    pub flags: u8,
    /// TCP sequence number.
    pub seq: u32,
    /// TCP acknowledgement number.
    pub ack: u32,
    /// Transport payload.
    pub payload: Vec<u8>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn addr(b: &[u8]) -> IpAddr {
    match <[u8; 4]>::try_from(b) {
        Ok(a) => IpAddr::from(a),
        Err(_) => IpAddr::from(<[u8; 16]>::try_from(b).unwrap()),
    }
}

/// Parses `frame`, asserting IP header, TCP and UDP checksums and lengths.
pub fn parse(frame: &[u8]) -> Parsed {
    assert!(frame.len() >= 60, "short frame");
    let (mut off, mut vlans) = (12, Vec::new());
    while matches!(be16(frame, off), 0x8100 | 0x88a8) {
        vlans.push((be16(frame, off), be16(frame, off + 2)));
        off += 4;
    }
    let l3 = &frame[off + 2..];
    let (src, dst, proto, l4) = match be16(frame, off) {
        0x0800 => {
            let hl = usize::from(l3[0] & 0x0f) * 4;
            assert_eq!(checksum(&[&l3[..hl]]), 0, "IPv4 header checksum");
            (
                addr(&l3[12..16]),
                addr(&l3[16..20]),
                l3[9],
                &l3[hl..usize::from(be16(l3, 2))],
            )
        }
        0x86dd => {
            let (mut nh, mut at) = (l3[6], 40);
            if nh == 0 {
                nh = l3[40];
                at += (usize::from(l3[41]) + 1) * 8;
            }
            (
                addr(&l3[8..24]),
                addr(&l3[24..40]),
                nh,
                &l3[at..40 + usize::from(be16(l3, 4))],
            )
        }
        other => panic!("ethertype {other:#x}"),
    };
    assert_eq!(l4_checksum(src, dst, proto, l4), 0, "transport checksum");
    let ports = (be16(l4, 0), be16(l4, 2));
    let (flags, seq, ack, data) = match proto {
        PROTO_TCP => (
            l4[13],
            be32(l4, 4),
            be32(l4, 8),
            &l4[usize::from(l4[12] >> 4) * 4..],
        ),
        PROTO_UDP => {
            assert_eq!(usize::from(be16(l4, 4)), l4.len(), "UDP length");
            (0, 0, 0, &l4[8..])
        }
        other => panic!("protocol {other}"),
    };
    Parsed {
        vlans,
        src: SocketAddr::new(src, ports.0),
        dst: SocketAddr::new(dst, ports.1),
        proto,
        flags,
        seq,
        ack,
        payload: data.to_vec(),
    }
}

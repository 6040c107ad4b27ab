//! Tunnel headers: GRE (with ERSPAN types I–III), VXLAN, GTP-U and MPLS label stacks, and the
//! kinds counted ([`TunnelKind`]). Pure functions from the bytes after the outer header to the
//! layer inside; the walk in the parent module decides what to do with it. Never allocates, never
//! panics: every read is checked.
//!
//! A header that a UDP port only suggests (VXLAN, GTP-U) and that does not validate is not a
//! tunnel (`None`: the outer UDP flow stays); a header whose protocol says it is a tunnel (GRE,
//! MPLS) and that does not validate is a [`Skip::Malformed`] or [`Skip::Truncated`] tunnel.

use super::link::{ETH_IPV4, ETH_IPV6};
use super::{DecodeLayer, Next, Segment, Skip};
use crate::macros::counter_enum;

/// GRE protocol type of transparent Ethernet bridging (Ethernet over GRE, NVGRE).
const GRE_TEB: u16 = 0x6558;
/// GRE protocol type of ERSPAN type I and II.
const GRE_ERSPAN_2: u16 = 0x88BE;
/// GRE protocol type of ERSPAN type III.
const GRE_ERSPAN_3: u16 = 0x22EB;
/// Ether type of MPLS unicast.
pub(crate) const ETH_MPLS: u16 = 0x8847;
/// Ether type of MPLS multicast.
pub(crate) const ETH_MPLS_MC: u16 = 0x8848;
/// UDP port of VXLAN assigned by IANA (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// UDP port Linux used for VXLAN before the IANA assignment, still its default in places
/// (`ip link add type vxlan` without `dstport`, flannel).
pub const VXLAN_LINUX_PORT: u16 = 8472;
/// UDP port of GTP-U (3GPP TS 29.281).
pub const GTP_U_PORT: u16 = 2152;
/// Most MPLS labels walked before the stack is called malformed.
pub const MAX_MPLS_LABELS: usize = 8;

const TRUNC: Skip = Skip::Truncated(DecodeLayer::Tunnel);
const BAD: Skip = Skip::Malformed(DecodeLayer::Tunnel);

counter_enum! {
    /// A kind of tunnel, as counted in `picket_tunnel_packets_total{kind}`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum TunnelKind {
        /// GRE carrying IP, Ethernet (including NVGRE) or MPLS.
        Gre => "gre",
        /// ERSPAN type I, II or III (over GRE).
        Erspan => "erspan",
        /// VXLAN (UDP port 4789 or 8472).
        Vxlan => "vxlan",
        /// IPv4 or IPv6 directly inside IPv4 or IPv6 (IP protocols 4 and 41).
        IpIp => "ipip",
        /// An MPLS label stack.
        Mpls => "mpls",
        /// GTP-U (UDP port 2152).
        GtpU => "gtpu",
    }
}

/// What a tunnel header held: its kind, the layer inside, and the virtual network it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decap<'a> {
    /// The tunnel's kind, as counted.
    pub kind: TunnelKind,
    /// The layer inside.
    pub next: Next<'a>,
    /// The VXLAN VNI, NVGRE VSID or ERSPAN session, if the header names one.
    pub segment: Option<Segment>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// The payload of a GRE packet (IP protocol 47).
///
/// ```text
/// RFC 2784 with the key and sequence number of RFC 2890:
/// C(1) R(1) K(1) S(1) s(1) Recur(3) A(1) Flags(4) Ver(3) | Protocol Type(16)
/// [Checksum(16) Reserved1(16)]  if C
/// [Key(32)]                     if K
/// [Sequence Number(32)]         if S
/// ```
///
/// R, s and the top Recur bit (RFC 1701 source routing) make the packet malformed, as RFC 2784
/// says a receiver without RFC 1701 must discard it. Version 1 (PPTP's enhanced GRE) carries PPP,
/// not IP. The protocol type is an ether type: IPv4, IPv6, Ethernet (0x6558, NVGRE when keyed),
/// MPLS, ERSPAN type I/II (0x88BE) and III (0x22EB).
pub(crate) fn gre(b: &[u8]) -> Result<Decap<'_>, Skip> {
    let flags = be16(b, 0).ok_or(TRUNC)?;
    let proto = be16(b, 2).ok_or(TRUNC)?;
    if flags & 0x4C00 != 0 {
        return Err(BAD);
    }
    match flags & 0x0007 {
        0 => {}
        1 => return Err(Skip::NotIp),
        _ => return Err(BAD),
    }
    let (has_csum, has_key, has_seq) = (
        flags & 0x8000 != 0,
        flags & 0x2000 != 0,
        flags & 0x1000 != 0,
    );
    let mut at = 4;
    if has_csum {
        at += 4;
    }
    let key = if has_key {
        at += 4;
        Some(be32(b, at - 4).ok_or(TRUNC)?)
    } else {
        None
    };
    if has_seq {
        at += 4;
    }
    let payload = b.get(at..).ok_or(TRUNC)?;
    let gre = |next| Decap {
        kind: TunnelKind::Gre,
        next,
        segment: None,
    };
    Ok(match proto {
        ETH_IPV4 | ETH_IPV6 => gre(Next::Ip(payload)),
        ETH_MPLS | ETH_MPLS_MC => gre(Next::Mpls(payload)),
        GRE_TEB => Decap {
            segment: key.map(|k| Segment::nvgre(k >> 8)),
            ..gre(Next::Ether(payload))
        },
        // Type I has no sequence number and no header of its own; type II has both.
        GRE_ERSPAN_2 if !has_seq => Decap {
            kind: TunnelKind::Erspan,
            next: Next::Ether(payload),
            segment: None,
        },
        GRE_ERSPAN_2 => erspan_2(payload)?,
        GRE_ERSPAN_3 => erspan_3(payload)?,
        _ => return Err(Skip::NotIp),
    })
}

/// ERSPAN type II: the mirrored Ethernet frame after an 8-byte header.
///
/// ```text
/// Ver(4)=1 VLAN(12) | COS(3) En(2) T(1) Session ID(10) | Reserved(12) Index(20)
/// ```
fn erspan_2(b: &[u8]) -> Result<Decap<'_>, Skip> {
    let w0 = be16(b, 0).ok_or(TRUNC)?;
    let w1 = be16(b, 2).ok_or(TRUNC)?;
    if w0 >> 12 != 1 {
        return Err(BAD);
    }
    Ok(Decap {
        kind: TunnelKind::Erspan,
        next: Next::Ether(b.get(8..).ok_or(TRUNC)?),
        segment: Some(Segment::erspan(w1 & 0x03FF)),
    })
}

/// ERSPAN type III: a 12-byte header, an optional 8-byte platform-specific subheader (O bit),
/// then the mirrored frame: Ethernet (frame type 0) or an IP packet (frame type 2).
///
/// ```text
/// Ver(4)=2 VLAN(12) | COS(3) BSO(2) T(1) Session ID(10)
/// Timestamp(32)
/// SGT(16) | P(1) FT(5) Hw ID(6) D(1) Gra(2) O(1)
/// [Platform Specific SubHeader(64)] if O
/// ```
fn erspan_3(b: &[u8]) -> Result<Decap<'_>, Skip> {
    let w0 = be16(b, 0).ok_or(TRUNC)?;
    let w1 = be16(b, 2).ok_or(TRUNC)?;
    let w5 = be16(b, 10).ok_or(TRUNC)?;
    if w0 >> 12 != 2 {
        return Err(BAD);
    }
    let at = if w5 & 1 != 0 { 20 } else { 12 };
    let frame = b.get(at..).ok_or(TRUNC)?;
    let next = match (w5 >> 10) & 0x1F {
        0 => Next::Ether(frame),
        2 => Next::Ip(frame),
        _ => return Err(Skip::NotIp),
    };
    Ok(Decap {
        kind: TunnelKind::Erspan,
        next,
        segment: Some(Segment::erspan(w1 & 0x03FF)),
    })
}

/// The Ethernet frame inside a VXLAN packet (RFC 7348), or None when the I flag is clear (then
/// the UDP datagram is not VXLAN).
///
/// ```text
/// Flags(8): R R R R I R R R | Reserved(24) | VNI(24) | Reserved(8)
/// ```
///
/// Reserved bits are ignored (VXLAN-GBP uses some of them).
pub(crate) fn vxlan(b: &[u8]) -> Option<Decap<'_>> {
    if b.first()? & 0x08 == 0 {
        return None;
    }
    let vni = be32(b, 4)? >> 8;
    Some(Decap {
        kind: TunnelKind::Vxlan,
        next: Next::Ether(b.get(8..)?),
        segment: Some(Segment::vxlan(vni)),
    })
}

/// The inner packet of a GTP-U G-PDU, or None when this is not one (an echo, an error
/// indication, or not GTP-U at all).
///
/// ```text
/// flags(1): version(3)=1 PT(1)=1 spare E S PN | type(1)=0xFF | length(2) | TEID(4)
/// [seq(2) npdu(1) next_ext(1)] when any of E,S,PN; then extension headers while next_ext != 0,
/// each length(1) in 4-byte units ... next_ext(1)
/// ```
pub(crate) fn gtp_u(b: &[u8]) -> Option<Decap<'_>> {
    let flags = *b.first()?;
    if flags >> 5 != 1 || flags & 0x10 == 0 || *b.get(1)? != 0xFF {
        return None;
    }
    let len = usize::from(be16(b, 2)?);
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
    matches!(inner.first().map(|v| v >> 4), Some(4 | 6)).then_some(Decap {
        kind: TunnelKind::GtpU,
        next: Next::Ip(inner),
        segment: None,
    })
}

/// The payload under an MPLS label stack (RFC 3032), told apart by its first nibble: 4 and 6
/// are IP; 0 is a pseudowire control word (RFC 4385) before an Ethernet frame; anything else
/// (an associated channel, an unknown payload) is not IP.
///
/// ```text
/// each entry: Label(20) TC(3) S(1) TTL(8); S marks the bottom of the stack
/// ```
pub(crate) fn mpls(b: &[u8]) -> Result<Next<'_>, Skip> {
    let mut at = 0;
    loop {
        let entry = be32(b, at).ok_or(TRUNC)?;
        at += 4;
        if entry & 0x100 != 0 {
            break;
        }
        if at / 4 == MAX_MPLS_LABELS {
            return Err(BAD);
        }
    }
    let payload = &b[at..];
    match payload.first().map(|v| v >> 4) {
        Some(4 | 6) => Ok(Next::Ip(payload)),
        Some(0) => Ok(Next::Ether(payload.get(4..).ok_or(TRUNC)?)),
        Some(_) => Err(Skip::NotIp),
        None => Err(TRUNC),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An inner IPv4 header's first bytes, enough to be told apart as IP.
    const IP4: [u8; 4] = [0x45, 0x00, 0x00, 0x14];

    #[rustfmt::skip]
    const GRE_KEY_SEQ_IPV4: &[u8] = &[
        0xb0, 0x00, 0x08, 0x00, 0x12, 0x34, 0x00, 0x00, // C K S, proto IPv4 | checksum, reserved
        0x00, 0x00, 0x30, 0x39, 0x00, 0x00, 0x00, 0x07, // key 12345 | sequence 7
        0x45, 0x00, 0x00, 0x14,                         // inner IPv4 ...
    ];

    #[rustfmt::skip]
    const GRE_ERSPAN_2_SESSION_100: &[u8] = &[
        0x10, 0x00, 0x88, 0xbe, 0x00, 0x00, 0x00, 0x01, // S, proto ERSPAN | sequence 1
        0x10, 0x0a, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, // ver 1 vlan 10 | session 100 | index
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01,             // mirrored frame: dst MAC ...
    ];

    #[rustfmt::skip]
    const GRE_ERSPAN_3_PLATFORM_SUBHEADER: &[u8] = &[
        0x10, 0x00, 0x22, 0xeb, 0x00, 0x00, 0x00, 0x02, // S, proto ERSPAN III | sequence 2
        0x20, 0x00, 0x00, 0xc8, 0x00, 0x00, 0x10, 0x00, // ver 2 | session 200 | timestamp
        0x00, 0x00, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x00, // sgt | FT 0, O=1 | platform subheader
        0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, // ... subheader | mirrored frame ...
    ];

    #[rustfmt::skip]
    const VXLAN_VNI_5001: &[u8] = &[
        0x08, 0x00, 0x00, 0x00, 0x00, 0x13, 0x89, 0x00, // I flag | VNI 5001
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01,             // inner Ethernet dst MAC ...
    ];

    #[rustfmt::skip]
    const MPLS_TWO_LABELS_IPV6: &[u8] = &[
        0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40, // label 16 | label 32, bottom
        0x60, 0x00, 0x00, 0x00,                         // inner IPv6 ...
    ];

    #[test]
    fn gre_key_sequence_checksum_ipv4() {
        let d = gre(GRE_KEY_SEQ_IPV4).unwrap();
        assert_eq!(d.kind, TunnelKind::Gre);
        assert_eq!(d.next, Next::Ip(&IP4));
        assert_eq!(
            d.segment, None,
            "a key on IP over GRE is no virtual network"
        );
    }

    #[test]
    fn gre_plain_ipv6_and_mpls() {
        let d = gre(&[0x00, 0x00, 0x86, 0xdd, 0x60]).unwrap();
        assert_eq!(d.next, Next::Ip(&[0x60]));
        let d = gre(&[0x00, 0x00, 0x88, 0x47, 1, 2, 3]).unwrap();
        assert_eq!(d.next, Next::Mpls(&[1, 2, 3]));
    }

    #[test]
    fn gre_nvgre_key_is_the_segment() {
        let b = [0x20, 0x00, 0x65, 0x58, 0x00, 0x01, 0x02, 0x03, 0xaa];
        let d = gre(&b).unwrap();
        assert_eq!(d.next, Next::Ether(&[0xaa]));
        assert_eq!(d.segment, Some(Segment::nvgre(0x000102)));
    }

    #[test]
    fn gre_erspan_type_1_has_no_header() {
        let d = gre(&[0x00, 0x00, 0x88, 0xbe, 0x02, 0x00]).unwrap();
        assert_eq!(d.kind, TunnelKind::Erspan);
        assert_eq!(d.next, Next::Ether(&[0x02, 0x00]));
        assert_eq!(d.segment, None);
    }

    #[test]
    fn gre_erspan_type_2_session() {
        let d = gre(GRE_ERSPAN_2_SESSION_100).unwrap();
        assert_eq!(d.kind, TunnelKind::Erspan);
        assert_eq!(d.next, Next::Ether(&[0x02, 0, 0, 0, 0, 1]));
        assert_eq!(d.segment, Some(Segment::erspan(100)));
    }

    #[test]
    fn gre_erspan_type_3_with_and_without_subheader() {
        let d = gre(GRE_ERSPAN_3_PLATFORM_SUBHEADER).unwrap();
        assert_eq!(d.next, Next::Ether(&[0x02, 0, 0, 0]));
        assert_eq!(d.segment, Some(Segment::erspan(200)));
        let mut b = GRE_ERSPAN_3_PLATFORM_SUBHEADER.to_vec();
        b[8 + 11] = 0x00; // O clear: the frame starts after 12 bytes
        assert_eq!(gre(&b).unwrap().next, Next::Ether(&b[20..]));
        b[8 + 10] = 0x08; // frame type 2: an IP packet
        assert_eq!(gre(&b).unwrap().next, Next::Ip(&b[20..]));
        b[8 + 10] = 0x04; // frame type 1: not decoded
        assert_eq!(gre(&b), Err(Skip::NotIp));
    }

    #[test]
    fn gre_malformed_and_truncated() {
        // Routing present (RFC 1701), strict source route, recursion: discarded.
        for flags in [0x40u8, 0x08, 0x04] {
            assert_eq!(
                gre(&[flags, 0x00, 0x08, 0x00, 0x45]),
                Err(BAD),
                "{flags:#x}"
            );
        }
        // Version 2 does not exist; version 1 is PPTP (PPP inside).
        assert_eq!(gre(&[0x00, 0x02, 0x08, 0x00]), Err(BAD));
        assert_eq!(gre(&[0x30, 0x81, 0x88, 0x0b, 0, 0, 0, 0]), Err(Skip::NotIp));
        // Cut inside the fixed header, the key, the sequence number.
        assert_eq!(gre(&[0x00, 0x00, 0x08]), Err(TRUNC));
        assert_eq!(gre(&GRE_KEY_SEQ_IPV4[..10]), Err(TRUNC));
        assert_eq!(gre(&GRE_KEY_SEQ_IPV4[..15]), Err(TRUNC));
        // ERSPAN II header cut short, or carrying the wrong version.
        assert_eq!(gre(&GRE_ERSPAN_2_SESSION_100[..13]), Err(TRUNC));
        let mut b = GRE_ERSPAN_2_SESSION_100.to_vec();
        b[8] = 0x20;
        assert_eq!(gre(&b), Err(BAD));
        // ERSPAN III: subheader announced, not there; wrong version.
        assert_eq!(gre(&GRE_ERSPAN_3_PLATFORM_SUBHEADER[..25]), Err(TRUNC));
        let mut b = GRE_ERSPAN_3_PLATFORM_SUBHEADER.to_vec();
        b[8] = 0x10;
        assert_eq!(gre(&b), Err(BAD));
        // An ether type that is not decoded (ARP).
        assert_eq!(gre(&[0x00, 0x00, 0x08, 0x06, 0]), Err(Skip::NotIp));
    }

    #[test]
    fn vxlan_vni_and_not_vxlan() {
        let d = vxlan(VXLAN_VNI_5001).unwrap();
        assert_eq!(d.kind, TunnelKind::Vxlan);
        assert_eq!(d.next, Next::Ether(&VXLAN_VNI_5001[8..]));
        assert_eq!(d.segment, Some(Segment::vxlan(5001)));
        // I flag clear, or too short: not VXLAN.
        let mut b = VXLAN_VNI_5001.to_vec();
        b[0] = 0;
        assert_eq!(vxlan(&b), None);
        assert_eq!(vxlan(&VXLAN_VNI_5001[..7]), None);
        assert_eq!(vxlan(&[]), None);
    }

    #[test]
    fn gtp_u_extension_headers_and_not_g_pdu() {
        // E flag, one 4-byte extension header (PDU session container), then IPv4.
        let mut b = vec![0x34, 0xff, 0x00, 0x0c, 0, 0, 0, 1, 0, 0, 0, 0x85];
        b.extend([0x01, 0x10, 0x01, 0x00]);
        b.extend(IP4);
        let d = gtp_u(&b).unwrap();
        assert_eq!((d.kind, d.next), (TunnelKind::GtpU, Next::Ip(&IP4)));
        // Extension length 0 would never end.
        let mut z = b.clone();
        z[12] = 0;
        assert_eq!(gtp_u(&z), None);
        // Cut inside the extension header.
        assert_eq!(gtp_u(&b[..14]), None);
        // Echo request, version 2, not IP inside.
        for (at, v) in [(1, 0x01), (0, 0x50)] {
            let mut e = b.clone();
            e[at] = v;
            assert_eq!(gtp_u(&e), None);
        }
        let mut n = b.clone();
        n[16] = 0x00;
        assert_eq!(gtp_u(&n), None);
    }

    #[test]
    fn mpls_stack_payloads() {
        assert_eq!(mpls(MPLS_TWO_LABELS_IPV6), Ok(Next::Ip(&[0x60, 0, 0, 0])));
        // One label, a pseudowire control word, then Ethernet.
        let b = [0x00, 0x01, 0x01, 0x40, 0, 0, 0, 0, 0x02, 0x00];
        assert_eq!(mpls(&b), Ok(Next::Ether(&[0x02, 0x00])));
        // An associated channel (first nibble 1).
        assert_eq!(mpls(&[0, 1, 1, 0x40, 0x10]), Err(Skip::NotIp));
    }

    #[test]
    fn mpls_malformed_and_truncated() {
        // No bottom of stack within the limit.
        let deep: Vec<u8> = (0..MAX_MPLS_LABELS * 4 + 8).map(|_| 0).collect();
        assert_eq!(mpls(&deep), Err(BAD));
        // Ends inside the stack, or right after it.
        assert_eq!(mpls(&MPLS_TWO_LABELS_IPV6[..6]), Err(TRUNC));
        assert_eq!(mpls(&MPLS_TWO_LABELS_IPV6[..8]), Err(TRUNC));
        // A control word cut short.
        assert_eq!(mpls(&[0, 1, 1, 0x40, 0, 0]), Err(TRUNC));
    }
}

//! The link layer: the first header of each capture link type (Ethernet, Linux SLL/SLL2, raw IP,
//! BSD loopback), then VLAN tags, PPPoE sessions and MPLS label stacks down to an IP packet.
//! Reads a few fixed fields; never looks past the IP header's start.

use super::tunnel::{self, Decap, ETH_MPLS, ETH_MPLS_MC};
use super::{be16, Ctx, DecodeLayer, Next, Skip, TunnelKind, MAX_VLANS};
use crate::capture::LinkType;

pub(super) const ETH_IPV4: u16 = 0x0800;
pub(super) const ETH_IPV6: u16 = 0x86DD;
pub(super) const ETH_VLAN: u16 = 0x8100;
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

/// The first layer of a frame of this link type.
pub(super) fn first_layer(link: LinkType, data: &[u8]) -> Result<Next<'_>, Skip> {
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

/// Walks link layers (Ethernet, VLAN tags, MPLS label stacks) down to an IP packet.
#[inline]
pub(super) fn link<'a>(next: Next<'a>, cx: &mut Ctx) -> Result<&'a [u8], Skip> {
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::*;
    use super::*;

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
}
